"""Training: recipes and overrides, schedules, strategies, checkpoints, the loop."""
