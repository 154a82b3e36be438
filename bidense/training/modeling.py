"""The model a recipe describes: built from the registry, with its optimizer, compiled.

Kept apart from :mod:`bidense.training.experiment` (which wires data, model and work
dir together) so that evaluation and the ablation runner build models exactly as
training does.
"""

from __future__ import annotations

import sys

import ml_collections
import tensorflow as tf

import bidense
from bidense import data, transfer
from bidense.training import config as config_lib
from bidense.training import precision, recipes, schedules

OPTIMIZERS = ("adam", "sgd")


def model_kwargs(cfg: ml_collections.ConfigDict) -> dict:
    """The model switches of the config, lists turned back into tuples."""
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config_lib.to_dict(cfg.model).items()
    }


def build_model(cfg, info: data.DatasetInfo, **extra) -> tf.keras.Model:
    """``bidense.create_model`` with the input shape and classes of the dataset.

    The layers compute in ``config.precision`` ("auto": as resolved on this
    machine, bidense.training.precision).
    """
    with precision.dtype_policy(precision.resolve(cfg.precision)):
        return bidense.create_model(
            cfg.model_name,
            input_shape=data.model_input_shape(info, cfg.dataset),
            num_classes=info.num_classes,
            **{**model_kwargs(cfg), **extra},
        )


def build_training_model(cfg, info: data.DatasetInfo):
    """The model train.py trains, and what was loaded into it.

    Without ``config.model.weights`` that is :func:`build_model` (and None).
    With weights, the model is built for the dataset (its input size and
    classes) and the weights load by layer name and shape
    (:func:`bidense.transfer.load_pretrained`: a new head where the classes
    differ); what is new is said on stderr. Returns ``(model, report)``.
    """
    weights = cfg.model.get("weights")
    model = build_model(cfg, info, weights=None)
    if not weights:
        return model, None
    report = transfer.load_pretrained(
        model, weights, reset_head=cfg.finetune.reset_head
    )
    print(report.line(), file=sys.stderr)
    return model, report


def ends_with_softmax(model: tf.keras.Model) -> bool:
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def accuracy_metrics(num_classes: int) -> list:
    """Top-1 and top-5 accuracy (top-k capped at the number of classes)."""
    return [
        tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        tf.keras.metrics.SparseTopKCategoricalAccuracy(
            k=min(5, num_classes), name="top5"
        ),
    ]


def compile_model(
    model, num_classes: int, optimizer=None, jit_compile=False, label_smoothing=0.0
) -> None:
    """Cross-entropy, top-1 and top-5 accuracy, XLA if ``jit_compile``.

    ``label_smoothing`` > 0 trains on smoothed one-hot targets (Szegedy et al.
    2016), so the loss is the categorical form of the same cross-entropy.
    """
    from_logits = not ends_with_softmax(model)
    if label_smoothing:
        loss = _SmoothedSparseCrossentropy(label_smoothing, num_classes, from_logits)
    else:
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(
        optimizer=optimizer or "adam",
        loss=loss,
        metrics=accuracy_metrics(num_classes),
        jit_compile=jit_compile,
    )


class _SmoothedSparseCrossentropy(tf.keras.losses.Loss):
    """Categorical cross-entropy with label smoothing, on integer labels."""

    def __init__(self, smoothing: float, num_classes: int, from_logits: bool):
        super().__init__(name="smoothed_crossentropy")
        self.smoothing, self.num_classes = smoothing, num_classes
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        labels = tf.one_hot(labels, self.num_classes)
        return tf.keras.losses.categorical_crossentropy(
            labels,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.smoothing,
        )


def make_optimizer(cfg, steps_per_epoch: int):
    """The recipe's optimizer, its learning rate a schedule of the global step.

    The peak learning rate is the recipe's, or its fine-tuning value when the
    run starts from pretrained weights (:func:`recipes.peak_learning_rate`).
    """
    schedule = schedules.make_schedule(
        cfg.schedule, recipes.peak_learning_rate(cfg), cfg.epochs, steps_per_epoch
    )
    if cfg.optimizer.name == "sgd":
        return tf.keras.optimizers.SGD(schedule, momentum=0.9)
    return tf.keras.optimizers.Adam(schedule, epsilon=cfg.optimizer.epsilon)


def global_step(model: tf.keras.Model) -> int:
    """The optimizer's iteration counter: training steps taken, across resumes.

    ``get_value``: under a distribution strategy ``iterations`` is a
    MirroredVariable, which ``int()`` does not take.
    """
    return int(tf.keras.backend.get_value(model.optimizer.iterations))
