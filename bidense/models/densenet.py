"""BinaryDenseNet (Bethge et al. 2019, arXiv:1906.08637; ICCV-W 2019).

A dense layer is ``BN -> sign -> binary conv 3x3 (growth_rate filters) -> concat``:
every binary conv sees all earlier features, and its output is appended rather
than added, which the paper finds keeps more information flowing than ResNet
shortcuts. Full-precision transitions between stages reduce the channels by
``reduction`` and halve the resolution (paper section 4.2; larq-zoo).
"""

from __future__ import annotations

import tensorflow as tf

from bidense.layers import check_choice
from bidense.models import common, family

# "pool_first": BN -> MaxPool -> ReLU -> 1x1 conv (larq-zoo, and the authors' 2020
# code; the conv runs on 4x fewer positions). "conv_first": BN -> ReLU -> 1x1 conv ->
# AvgPool (the authors' June-2019 code, behind the paper's logged runs).
TRANSITIONS = ("pool_first", "conv_first")

# Registry name -> what sets the model apart (the paper's models; larq-zoo).
VARIANTS = {
    "binary_densenet28": {"blocks": (6, 6, 6, 5), "reduction": (2.7, 2.7, 2.2)},
    "binary_densenet37": {"blocks": (6, 8, 12, 6), "reduction": (3.3, 3.3, 4.0)},
    "binary_densenet37_dilated": {
        "blocks": (6, 8, 12, 6),
        "reduction": (3.3, 3.3, 4.0),
        # Stages 3 and 4 dilate instead of downsampling: maps stay 28x28.
        "dilation": (1, 1, 2, 4),
    },
    "binary_densenet45": {"blocks": (6, 12, 14, 8), "reduction": (2.7, 3.3, 4.0)},
}
DEFAULTS = {
    "growth_rate": 64,
    "initial_filters": 64,
    "dilation": None,  # all 1
    "bottleneck": 0,  # the paper's final models use none
    "transition": "pool_first",
    **family.shared_defaults(clip_value=1.3),  # larq-zoo's value for BinaryDenseNet
}
# Switches that change the forward pass, hence what larq-zoo's weights compute.
ZOO_FORWARD_SWITCHES = (
    "blocks",
    "reduction",
    "dilation",
    "growth_rate",
    "initial_filters",
    "bottleneck",
    "transition",
    "binary",
    "scaling",
    "downsample",
    "pad_value",
    "stem",
)


def dense_layer(x, *, growth_rate, dilation, bottleneck, settings, name: str):
    """BN -> sign -> binary conv 3x3 -> concatenate (optionally a 1x1 bottleneck)."""
    y = common.batch_norm(x, f"{name}_bn")
    if bottleneck:
        y = settings.conv(y, bottleneck * growth_rate, 1, name=f"{name}_bottleneck")
        y = common.batch_norm(y, f"{name}_bottleneck_bn")
    y = settings.conv(y, growth_rate, 3, dilation_rate=dilation, name=f"{name}_conv")
    return tf.keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(x, *, filters, pool, order, downsample, settings, name: str):
    """Reduces channels to ``filters`` and, if ``pool``, halves the resolution."""
    x = common.batch_norm(x, f"{name}_bn")
    if order == "pool_first" and pool:
        x = tf.keras.layers.MaxPool2D(2, strides=2, name=f"{name}_pool")(x)
    if downsample == "binary":
        # No ReLU before a sign: sign(relu(x)) would be +1 everywhere.
        x = settings.conv(x, filters, 1, name=f"{name}_conv")
    else:
        x = tf.keras.layers.Activation("relu", name=f"{name}_relu")(x)
        x = tf.keras.layers.Conv2D(
            filters,
            1,
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_conv",
        )(x)
    if order == "conv_first" and pool:
        x = tf.keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
    return x


def check(cfg: dict) -> dict:
    """Checks BinaryDenseNet's own switches; returns the normalized tuples."""
    blocks = common.check_int_tuple("blocks", cfg["blocks"])
    stages = len(blocks)
    dilation = common.check_int_tuple(
        "dilation", cfg["dilation"] or (1,) * stages, stages
    )
    reduction = common.check_float_tuple(
        "reduction", cfg["reduction"], stages - 1, minimum=1.0
    )
    common.check_positive_int("growth_rate", cfg["growth_rate"])
    common.check_positive_int("initial_filters", cfg["initial_filters"])
    common.check_non_negative_int(
        "bottleneck", cfg["bottleneck"], "0 (none) or a width factor >= 1"
    )
    check_choice("transition", cfg["transition"], TRANSITIONS)
    return {"blocks": blocks, "dilation": dilation, "reduction": reduction}


def pools(dilation: tuple[int, ...]) -> list[bool]:
    """Which transitions pool: those into an undilated stage (larq-zoo's dilated
    model keeps its maps 28x28 from stage 3 on)."""
    return [rate == 1 for rate in dilation[1:]]


def features(inputs, cfg: dict, settings) -> tf.Tensor:
    """Stem -> dense stages with transitions -> BN -> ReLU."""
    x = common.stem(inputs, cfg["stem"], cfg["initial_filters"])
    pool = pools(cfg["dilation"])
    for stage, num_layers in enumerate(cfg["blocks"]):
        for layer in range(num_layers):
            x = dense_layer(
                x,
                growth_rate=cfg["growth_rate"],
                dilation=cfg["dilation"][stage],
                bottleneck=cfg["bottleneck"],
                settings=settings,
                name=f"stage{stage + 1}_layer{layer + 1}",
            )
        if stage < len(pool):
            x = transition(
                x,
                filters=common.reduced_filters(x.shape[-1], cfg["reduction"][stage]),
                pool=pool[stage],
                order=cfg["transition"],
                downsample=cfg["downsample"],
                settings=settings,
                name=f"transition{stage + 1}",
            )
    x = common.batch_norm(x, "head_bn")
    return tf.keras.layers.Activation("relu", name="head_relu")(x)


DENSENET_ARGS_DOC = """\
        blocks: dense layers per stage, e.g. (6, 6, 6, 5) for BinaryDenseNet28.
        growth_rate: filters of each binary 3x3 conv (k); default {growth_rate}.
        initial_filters: stem channels; default {initial_filters}.
        reduction: channel reduction of each transition (one number, or one per
            transition), rounded to a multiple of 32 channels.
        dilation: dilation rate per stage; a transition into a dilated stage does
            not pool. Default all 1 ((1, 1, 2, 4) for the dilated variant).
        bottleneck: 0 (default; the paper advises against bottlenecks) or a width
            factor b: a binary 1x1 conv to b * growth_rate channels before each 3x3.
        transition: "pool_first" (default; BN, MaxPool, ReLU, 1x1 conv: larq-zoo)
            or "conv_first" (BN, ReLU, 1x1 conv, AvgPool: the 2019 code).
        downsample: "fp" (default; full-precision transition convs) or "binary"."""

FAMILY = family.Family(
    defaults=DEFAULTS,
    variants=VARIANTS,
    zoo_forward_switches=ZOO_FORWARD_SWITCHES,
    check=check,
    downsamplings=lambda cfg: sum(pools(cfg["dilation"])),
    features=features,
    head_initializer="he_normal",
    args_doc=DENSENET_ARGS_DOC,
)


# The registered builders (Keras-applications signature; docstring from
# family.register).


@family.register(FAMILY, "binary_densenet28")
def BinaryDenseNet28(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    **switches,
) -> tf.keras.Model:
    return family.build(
        FAMILY,
        "binary_densenet28",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )


@family.register(FAMILY, "binary_densenet37")
def BinaryDenseNet37(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    **switches,
) -> tf.keras.Model:
    return family.build(
        FAMILY,
        "binary_densenet37",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )


@family.register(FAMILY, "binary_densenet37_dilated")
def BinaryDenseNet37Dilated(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    **switches,
) -> tf.keras.Model:
    return family.build(
        FAMILY,
        "binary_densenet37_dilated",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )


@family.register(FAMILY, "binary_densenet45")
def BinaryDenseNet45(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    **switches,
) -> tf.keras.Model:
    return family.build(
        FAMILY,
        "binary_densenet45",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )
