"""Pieces every bidense architecture shares: input, stems, head, argument checks.

The family setup that puts them together (switches, weights, Model) is in
:mod:`bidense.models.family`.

Layer names are hierarchical (``stem_conv``, ``stage2_block3_conv``,
``transition1_pool``, ``head_dense``) so that summaries, weight files and LCE
graphs stay readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from bidense.layers import check_choice

STEMS = ("imagenet", "cifar")
# larq-zoo's rule: a static input smaller than this gets the CIFAR stem.
CIFAR_STEM_BELOW = 50
# Downsamplings (stride-2 steps) inside each stem.
STEM_DOWNSAMPLINGS = {"imagenet": 2, "cifar": 0}

BN_KWARGS = {"momentum": 0.9, "epsilon": 1e-5}  # larq-zoo's BatchNormalization


def batch_norm(x, name: str):
    return tf.keras.layers.BatchNormalization(**BN_KWARGS, name=name)(x)


# -- argument checks ---------------------------------------------------------


def check_positive_int(argument: str, value) -> int:
    return check_non_negative_int(argument, value, "a positive integer", minimum=1)


def check_non_negative_int(argument: str, value, meaning: str, minimum=0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Invalid {argument}={value!r}; use {meaning}.")
    return value


def check_int_tuple(argument: str, value, length: int | None = None, minimum=1):
    """Returns ``value`` as a tuple of ints >= minimum, of ``length`` if given."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"Invalid {argument}={value!r}; use a tuple of integers.")
    values = tuple(value)
    if not values or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values
    ):
        raise ValueError(
            f"Invalid {argument}={value!r}; use a non-empty tuple of integers "
            f">= {minimum}."
        )
    if length is not None and len(values) != length:
        raise ValueError(
            f"Invalid {argument}={value!r}; it needs {length} values, one per stage."
        )
    return values


def check_float_tuple(argument: str, value, length: int, minimum: float):
    """A positive number broadcast to ``length``, or a tuple of that length."""
    values = (value,) * length if isinstance(value, int | float) else value
    try:
        values = tuple(float(v) for v in values if not isinstance(v, bool))
    except (TypeError, ValueError):
        values = ()
    if len(values) != length or any(v < minimum for v in values):
        raise ValueError(
            f"Invalid {argument}={value!r}; use a number >= {minimum} or a tuple of "
            f"{length} such numbers."
        )
    return values


# -- input and stem ----------------------------------------------------------


def image_input(input_shape, input_tensor, default_size: int = 224):
    """Returns the model's input tensor (Keras-applications semantics).

    ``input_shape`` defaults to ``(default_size, default_size, 3)``; spatial
    dimensions may be None. Any number of channels works with random weights.
    """
    if input_tensor is not None:
        if not tf.keras.backend.is_keras_tensor(input_tensor):
            shape = input_shape or tuple(input_tensor.shape[1:])
            return tf.keras.layers.Input(tensor=input_tensor, shape=shape)
        if len(input_tensor.shape) != 4:
            raise ValueError(
                f"Invalid input_tensor of shape {tuple(input_tensor.shape)}; models "
                "need images shaped (batch, height, width, channels)."
            )
        return input_tensor
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    if (
        isinstance(input_shape, str)
        or not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
            for d in input_shape
        )
        or input_shape[2] is None
    ):
        raise ValueError(
            f"Invalid input_shape={input_shape!r}; use (height, width, channels), "
            "e.g. (224, 224, 3) or (28, 28, 1); height and width may be None."
        )
    return tf.keras.layers.Input(shape=tuple(input_shape), name="image")


def resolve_stem(stem, inputs) -> str:
    """``None`` picks larq-zoo's default: CIFAR stem below 50 pixels."""
    if stem is None:
        height = inputs.shape[1]
        return (
            "cifar" if height is not None and height < CIFAR_STEM_BELOW else "imagenet"
        )
    check_choice("stem", stem, STEMS)
    return stem


def check_input_size(model_name: str, inputs, stem: str, downsamplings: int) -> None:
    """Fails at build time when the input is too small for the architecture.

    Every stride-2 step must halve a map of at least 2 pixels, so an input needs
    ``2 ** downsamplings`` pixels per side.
    """
    minimum = 2**downsamplings
    height, width = inputs.shape[1], inputs.shape[2]
    for size in (height, width):
        if size is not None and size < minimum:
            raise ValueError(
                f"{model_name} with stem={stem!r} needs inputs of at least "
                f"{minimum}x{minimum} pixels (it halves the resolution "
                f"{downsamplings} times); got {height}x{width}."
            )


def imagenet_stem(x, filters: int):
    """FP conv 7x7/2 -> BN -> ReLU -> max-pool 3x3/2 (paper section 3; larq-zoo)."""
    x = tf.keras.layers.Conv2D(
        filters,
        7,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name="stem_conv",
    )(x)
    x = batch_norm(x, "stem_bn")
    x = tf.keras.layers.Activation("relu", name="stem_relu")(x)
    return tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)


def stem(x, kind: str, filters: int):
    """The ``kind`` ("imagenet" or "cifar") stem with ``filters`` channels."""
    return imagenet_stem(x, filters) if kind == "imagenet" else cifar_stem(x, filters)


def cifar_stem(x, filters: int):
    """One FP conv 3x3/1, no BN and no pooling (the authors' CIFAR stem)."""
    return tf.keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name="stem_conv",
    )(x)


# -- head --------------------------------------------------------------------


def classification_head(x, num_classes: int, kernel_initializer: str):
    """Average pool -> FP dense -> softmax.

    With a static map, AveragePooling2D over the whole map plus Flatten replaces
    GlobalAveragePooling2D: LCE runs it much faster (larq-zoo's ``global_pool``).
    """
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None:
        x = tf.keras.layers.AveragePooling2D((height, width), name="head_pool")(x)
        x = tf.keras.layers.Flatten(name="head_flatten")(x)
    else:
        x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = tf.keras.layers.Dense(
        num_classes, kernel_initializer=kernel_initializer, name="head_dense"
    )(x)
    # float32 softmax keeps the probabilities exact under mixed precision.
    return tf.keras.layers.Activation("softmax", dtype="float32", name="head_softmax")(
        x
    )


def reduced_filters(channels: int, reduction: float) -> int:
    """Transition width: ``32 * round(floor(C / r) / 32)``, at least 32.

    Multiples of 32 bit-pack into whole words on LCE (paper code and larq-zoo use
    Python's round, half to even). The floor of 32 only matters for tiny widths.
    """
    return max(1, round(math.floor(channels // reduction) / 32)) * 32
