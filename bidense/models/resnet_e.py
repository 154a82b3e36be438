"""ResNetE: ResNet with Extra shortcuts (Bethge et al. 2019, arXiv:1906.08637).

Each ResNet basic block is split into two one-conv blocks, each with its own
shortcut, so information flows around every binary convolution (paper section
4.1, the authors' ``resnet_e.py``, larq-zoo's ``BinaryResNetE18``). A block is

    out = BN(BinaryConv3x3(sign(x))) + shortcut(x)

with no activation in the residual stream. Where the resolution halves, the
shortcut is AvgPool 2x2/2 -> 1x1 conv (full precision by default, the paper's
"FP downsampling") -> BN.
"""

from __future__ import annotations

import tensorflow as tf

from bidense.layers import check_choice
from bidense.models import common

DOWNSAMPLES = ("fp", "binary")

# blocks = ResNet basic blocks per stage; each becomes two one-conv blocks.
VARIANTS = {
    "binary_resnet_e18": {"blocks": (2, 2, 2, 2)},
    "binary_resnet_e34": {"blocks": (3, 4, 6, 3)},
}
DEFAULTS = {
    "filters": (64, 128, 256, 512),
    "binary": True,
    "fp_activation": "relu",
    "scaling": "none",
    "gradient": "ste",
    "clip_value": 1.25,  # larq-zoo's value for ResNetE18
    "downsample": "fp",
    "pad_value": None,  # 1.0, or 0.0 with weights="imagenet"
    "stem": None,  # from the input size
}
SWITCHES = ("blocks", *DEFAULTS)
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


def shortcut(x, filters: int, strides: int, settings, downsample: str, name: str):
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


def resnet_e_block(x, filters: int, strides: int, settings, downsample, name: str):
    """One binary conv with its own shortcut (the "E" of ResNetE)."""
    residual = shortcut(x, filters, strides, settings, downsample, f"{name}_shortcut")
    y = settings.conv(x, filters, 3, strides=strides, name=f"{name}_conv")
    y = common.batch_norm(y, f"{name}_bn")
    return tf.keras.layers.Add(name=f"{name}_add")([y, residual])


def binary_resnet_e(
    model_name: str,
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights=None,
    num_classes: int = 1000,
    **switches,
) -> tf.keras.Model:
    """Builds a ResNetE family member; see ``BUILDER_DOC`` for the arguments."""
    common.check_switches(model_name, switches, SWITCHES)
    variant = VARIANTS[model_name]
    cfg = {**DEFAULTS, **variant, **switches}
    blocks = common.check_int_tuple("blocks", cfg["blocks"])
    filters = common.check_int_tuple("filters", cfg["filters"], len(blocks))
    check_choice("downsample", cfg["downsample"], DOWNSAMPLES)
    settings = common.binary_settings(cfg, weights)
    inputs = common.image_input(input_shape, input_tensor)
    stem = common.resolve_stem(cfg["stem"], inputs)
    cfg.update(blocks=blocks, filters=filters, stem=stem, pad_value=settings.pad_value)
    zoo = {**DEFAULTS, **variant, "pad_value": 0.0, "stem": "imagenet"}
    common.check_weights_request(
        model_name,
        weights,
        include_top,
        num_classes,
        common.mismatches(cfg, zoo, ZOO_FORWARD_SWITCHES),
    )
    downsamplings = common.STEM_DOWNSAMPLINGS[stem] + len(blocks) - 1
    common.check_input_size(model_name, inputs, stem, downsamplings)

    if stem == "imagenet":
        x = common.imagenet_stem(inputs, filters[0])
        x = common.batch_norm(x, "stem_bn2")  # ResNetE's extra BN (larq-zoo, E1)
    else:
        x = common.cifar_stem(inputs, filters[0])

    for stage, (num_blocks, width) in enumerate(zip(blocks, filters, strict=True)):
        for block in range(2 * num_blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage + 1}_block{block + 1}"
            x = resnet_e_block(x, width, strides, settings, cfg["downsample"], name)

    x = tf.keras.layers.Activation("relu", name="head_relu")(x)
    if include_top:
        x = common.classification_head(x, num_classes, "glorot_normal")
    return common.finish_model(
        model_name,
        inputs,
        x,
        weights=weights,
        include_top=include_top,
        input_tensor=input_tensor,
        config={"num_classes": num_classes, "include_top": include_top, **cfg},
    )


RESNET_E_ARGS_DOC = """\
        blocks: ResNet basic blocks per stage, each split into two one-conv blocks
            with their own shortcuts: (2, 2, 2, 2) for ResNetE18.
        filters: channels per stage, default (64, 128, 256, 512); the stem has
            filters[0]. Smaller widths give CPU-sized models.
        downsample: "fp" (default; full-precision 1x1 conv in the AvgPool
            shortcut: +0.4 to +1.2 pp on CIFAR-10 in the paper) or "binary"."""

_DOC = {"family_doc": RESNET_E_ARGS_DOC, "defaults": DEFAULTS}
BinaryResNetE18 = common.make_builder(
    binary_resnet_e, "binary_resnet_e18", "BinaryResNetE18", VARIANTS, **_DOC
)
BinaryResNetE34 = common.make_builder(
    binary_resnet_e, "binary_resnet_e34", "BinaryResNetE34", VARIANTS, **_DOC
)
