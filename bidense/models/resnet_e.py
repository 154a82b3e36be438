"""ResNetE: ResNet with Extra shortcuts (Bethge et al. 2019, arXiv:1906.08637).

Each ResNet basic block is split into two one-conv blocks, each with its own
shortcut, so information flows around every binary convolution (paper section
4.1; the authors' hpi-xnor/BMXNet-v2-examples ``binary_models/resnet_e.py``;
larq-zoo's ``larq_zoo/literature/resnet_e.py``). A block is

    out = BN(BinaryConv3x3(sign(x))) + shortcut(x)

with no activation in the residual stream. Where the resolution halves, the
shortcut is AvgPool 2x2/2 -> 1x1 conv (full precision by default, the paper's
"FP downsampling") -> BN.
"""

from __future__ import annotations

import tensorflow as tf

from bidense.models import common, family

# Registry name -> blocks: ResNet basic blocks per stage (the ResNet-18 and
# ResNet-34 layouts), each split into two one-conv blocks.
VARIANTS = {
    "binary_resnet_e18": {"blocks": (2, 2, 2, 2)},
    "binary_resnet_e34": {"blocks": (3, 4, 6, 3)},
}
DEFAULTS = {
    "filters": (64, 128, 256, 512),
    **family.shared_defaults(clip_value=1.25),  # larq-zoo's value for ResNetE18
}
# Switches that change the forward pass, hence what larq-zoo's weights compute.
ZOO_FORWARD_SWITCHES = (
    "blocks",
    "filters",
    "binary",
    "scaling",
    "downsample",
    "pad_value",
    "stem",
)


def shortcut(x, *, filters: int, strides: int, downsample: str, settings, name: str):
    """Identity, or AvgPool 2x2/2 -> 1x1 conv -> BN where the shape changes."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    if strides != 1:
        # "same" keeps odd maps (e.g. 7x7 from 28x28 inputs) aligned with the
        # strided conv; on even maps it equals larq-zoo's "valid".
        x = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(x)
    if downsample == "binary":
        x = settings.conv(x, filters, 1, name=f"{name}_conv")
    else:
        x = tf.keras.layers.Conv2D(
            filters,
            1,
            use_bias=False,
            kernel_initializer="glorot_normal",
            name=f"{name}_conv",
        )(x)
    return common.batch_norm(x, f"{name}_bn")


def resnet_e_block(
    x, *, filters: int, strides: int, downsample: str, settings, name: str
):
    """One binary conv with its own shortcut (the "E" of ResNetE)."""
    residual = shortcut(
        x,
        filters=filters,
        strides=strides,
        downsample=downsample,
        settings=settings,
        name=f"{name}_shortcut",
    )
    y = settings.conv(x, filters, 3, strides=strides, name=f"{name}_conv")
    y = common.batch_norm(y, f"{name}_bn")
    return tf.keras.layers.Add(name=f"{name}_add")([y, residual])


def check(cfg: dict) -> dict:
    """Checks ResNetE's own switches; returns blocks and filters as tuples."""
    blocks = common.check_int_tuple("blocks", cfg["blocks"])
    filters = common.check_int_tuple("filters", cfg["filters"], len(blocks))
    return {"blocks": blocks, "filters": filters}


def features(inputs, cfg: dict, settings) -> tf.Tensor:
    """Stem -> stages of one-conv blocks -> ReLU (no BN: larq-zoo's tail)."""
    x = common.stem(inputs, cfg["stem"], cfg["filters"][0])
    if cfg["stem"] == "imagenet":
        x = common.batch_norm(x, "stem_bn2")  # ResNetE's extra BN (larq-zoo, E1)
    for stage, (num_blocks, width) in enumerate(
        zip(cfg["blocks"], cfg["filters"], strict=True)
    ):
        for block in range(2 * num_blocks):
            x = resnet_e_block(
                x,
                filters=width,
                strides=2 if stage > 0 and block == 0 else 1,
                downsample=cfg["downsample"],
                settings=settings,
                name=f"stage{stage + 1}_block{block + 1}",
            )
    return tf.keras.layers.Activation("relu", name="head_relu")(x)


RESNET_E_ARGS_DOC = """\
        blocks: ResNet basic blocks per stage, each split into two one-conv blocks
            with their own shortcuts: (2, 2, 2, 2) for ResNetE18.
        filters: channels per stage, default {filters}; the stem has
            filters[0]. Smaller widths give CPU-sized models.
        downsample: "fp" (default; full-precision 1x1 conv in the AvgPool
            shortcut: +0.4 to +1.2 pp on CIFAR-10 in the paper) or "binary"."""

FAMILY = family.Family(
    defaults=DEFAULTS,
    variants=VARIANTS,
    zoo_forward_switches=ZOO_FORWARD_SWITCHES,
    check=check,
    downsamplings=lambda cfg: len(cfg["blocks"]) - 1,  # every stage after the first
    features=features,
    head_initializer="glorot_normal",
    args_doc=RESNET_E_ARGS_DOC,
)


# The registered builders (Keras-applications signature; docstring from
# family.register).


@family.register(FAMILY, "binary_resnet_e18")
def BinaryResNetE18(
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
        "binary_resnet_e18",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )


@family.register(FAMILY, "binary_resnet_e34")
def BinaryResNetE34(
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
        "binary_resnet_e34",
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        weights=weights,
        num_classes=num_classes,
        switches=switches,
    )
