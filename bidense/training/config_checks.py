"""Checks of a recipe's training values, before anything slow starts.

Keras would reject most of these values only much later (after the data is
prepared) and obscurely; train.py turns the ConfigError into one line.
"""

from __future__ import annotations

import ml_collections

from bidense.data import subset
from bidense.training import config as config_lib
from bidense.training import finetune, precision
from bidense.training.modeling import OPTIMIZERS
from bidense.training.schedules import SCHEDULES

# Training keys and their types. Overrides keep the recipe's types, except that
# "none" sets any key to None (model switches may mean "builder decides"); these
# keys have no such meaning, and None would be a TypeError deep in Keras.
_TYPED_KEYS = {
    int: (
        "epochs", "batch_size", "validation_freq", "steps_per_epoch", "eval_steps",
        "checkpoint_every_steps", "seed", "verbose", "dataset.image_size",
        "dataset.crop_padding", "dataset.shuffle_buffer",
        "dataset.validation_examples", "dataset.channels",
        "dataset.train_examples", "finetune.freeze_epochs",
    ),
    float: (
        "optimizer.learning_rate", "optimizer.epsilon", "schedule.decay_factor",
        "schedule.warmup_epochs", "schedule.final_fraction",
        "loss.label_smoothing", "distill.alpha", "distill.temperature",
        "dataset.validation_fraction", "dataset.test_fraction",
        "finetune.learning_rate",
    ),
    bool: (
        "jit_compile", "deterministic", "dataset.flip", "finetune.reset_head",
        "finetune.freeze_bn",
    ),
    list: ("schedule.decay_epochs", "dataset.classes"),
}  # fmt: skip
_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
}


def _check_types(cfg: ml_collections.ConfigDict) -> None:
    for kind, keys in _TYPED_KEYS.items():
        for key in keys:
            node = cfg
            for part in key.split("."):
                node = node[part]
            if kind is bool or kind is list:
                ok = isinstance(node, bool if kind is bool else list | tuple)
            else:
                number = int | float if kind is float else int
                ok = isinstance(node, number) and not isinstance(node, bool)
            if not ok:
                raise config_lib.ConfigError(
                    f"config.{key} must be {_TYPE_NAMES[kind]}, got {node!r}"
                )


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Checks recipe values that Keras would only reject (obscurely) much later."""
    _check_types(cfg)
    for key in ("epochs", "batch_size", "validation_freq"):
        if cfg[key] < 1:
            raise config_lib.ConfigError(f"config.{key} must be >= 1, got {cfg[key]}")
    for key in ("steps_per_epoch", "eval_steps", "checkpoint_every_steps"):
        if cfg[key] < 0:
            raise config_lib.ConfigError(f"config.{key} must be >= 0, got {cfg[key]}")
    if cfg.optimizer.learning_rate <= 0:
        raise config_lib.ConfigError("config.optimizer.learning_rate must be > 0")
    if cfg.optimizer.name not in OPTIMIZERS:
        raise config_lib.ConfigError(
            f"config.optimizer.name must be one of {', '.join(OPTIMIZERS)}, "
            f"got {cfg.optimizer.name!r}"
        )
    if cfg.precision not in precision.CHOICES:
        raise config_lib.ConfigError(
            f"config.precision must be one of {', '.join(precision.CHOICES)}, "
            f"got {cfg.precision!r}"
        )
    if cfg.schedule.name not in SCHEDULES:
        raise config_lib.ConfigError(
            f"config.schedule.name must be one of {', '.join(SCHEDULES)}, "
            f"got {cfg.schedule.name!r}"
        )
    if not 0.0 <= cfg.loss.label_smoothing < 1.0:
        raise config_lib.ConfigError(
            "config.loss.label_smoothing must be in [0, 1), got "
            f"{cfg.loss.label_smoothing}"
        )
    finetune.validate(cfg)
    subset.validate(cfg.dataset)
    if cfg.distill.teacher:
        if cfg.loss.label_smoothing:
            raise config_lib.ConfigError(
                "config.loss.label_smoothing and config.distill.teacher do not "
                "combine (the teacher's soft targets replace smoothed labels); "
                "set one of them"
            )
        if not 0.0 <= cfg.distill.alpha <= 1.0:
            raise config_lib.ConfigError(
                f"config.distill.alpha must be in [0, 1], got {cfg.distill.alpha}"
            )
        if cfg.distill.temperature <= 0:
            raise config_lib.ConfigError(
                f"config.distill.temperature must be > 0, got {cfg.distill.temperature}"
            )
