"""Learning-rate schedules, stepped per batch but specified in epochs.

The paper's ablations (Bethge et al. 2019, section 5) and larq-zoo's recipes use
step decay (e.g. Adam 0.01, x0.3 at epochs 75/100/125 on CIFAR-10); the authors'
later recipes use cosine decay with a linear warm-up. Both are functions of the
optimizer's iteration counter, which the checkpoint restores, so a resumed run
continues at exactly the same point of its schedule.
"""

from __future__ import annotations

import math

import tensorflow as tf

SCHEDULES = ("step", "cosine", "constant")


@tf.keras.utils.register_keras_serializable(package="bidense")
class StepDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """``initial * factor**k`` after the k-th boundary epoch, optional warm-up."""

    def __init__(
        self, initial, steps_per_epoch, decay_epochs, factor, warmup_epochs=0.0
    ):
        self.initial = float(initial)
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay_epochs = [float(e) for e in decay_epochs if e > 0]
        self.factor = float(factor)
        self.warmup_epochs = float(warmup_epochs)

    def __call__(self, step):
        epoch = tf.cast(step, tf.float32) / self.steps_per_epoch
        passed = tf.add_n(
            [tf.constant(0.0)]
            + [tf.cast(epoch >= e, tf.float32) for e in self.decay_epochs]
        )
        lr = self.initial * tf.pow(self.factor, passed)
        return _warm_up(lr, epoch, self.warmup_epochs)

    def get_config(self):
        return {
            "initial": self.initial,
            "steps_per_epoch": self.steps_per_epoch,
            "decay_epochs": self.decay_epochs,
            "factor": self.factor,
            "warmup_epochs": self.warmup_epochs,
        }


@tf.keras.utils.register_keras_serializable(package="bidense")
class CosineWithWarmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then cosine decay to ``final_fraction * peak``."""

    def __init__(
        self, peak, steps_per_epoch, epochs, warmup_epochs=0.0, final_fraction=0.0
    ):
        self.peak = float(peak)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = float(epochs)
        self.warmup_epochs = float(warmup_epochs)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        epoch = tf.cast(step, tf.float32) / self.steps_per_epoch
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        progress = tf.clip_by_value((epoch - self.warmup_epochs) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
        lr = self.peak * (self.final_fraction + (1 - self.final_fraction) * cosine)
        return _warm_up(lr, epoch, self.warmup_epochs)

    def get_config(self):
        return {
            "peak": self.peak,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "final_fraction": self.final_fraction,
        }


def _warm_up(lr, epoch, warmup_epochs):
    if warmup_epochs <= 0:
        return lr
    # Linear ramp; the small floor keeps the very first step from being a no-op.
    ramp = tf.minimum(1.0, (epoch + 1e-6) / warmup_epochs)
    return lr * tf.maximum(ramp, 1e-3)


def make_schedule(
    schedule_cfg, learning_rate: float, epochs: int, steps_per_epoch: int
):
    """The schedule named by ``schedule_cfg.name``: "step", "cosine" or "constant"."""
    name = schedule_cfg.name
    if name == "constant":
        return StepDecay(
            learning_rate, steps_per_epoch, [], 1.0, schedule_cfg.warmup_epochs
        )
    if name == "step":
        return StepDecay(
            learning_rate,
            steps_per_epoch,
            schedule_cfg.decay_epochs,
            schedule_cfg.decay_factor,
            schedule_cfg.warmup_epochs,
        )
    if name == "cosine":
        return CosineWithWarmup(
            learning_rate,
            steps_per_epoch,
            epochs,
            schedule_cfg.warmup_epochs,
            schedule_cfg.final_fraction,
        )
    raise ValueError(
        f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}"
    )
