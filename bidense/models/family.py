"""The setup every model family shares: switches -> checked config -> graph -> Model.

A family module (``resnet_e``, ``densenet``) states only what is its own, in a
:class:`Family`: its defaults, its variants, how it checks its switches, how
often it halves the resolution and its graph. :func:`build` does the rest in the
same order for every family (argument checks, binary settings, input and stem,
larq-zoo weights request, input size, head, weights), and :func:`register` makes a
family's Keras-applications-style builder a registered model with the shared
docstring (:data:`bidense.models.docs.BUILDER_DOC`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from bidense import weights as weights_lib
from bidense.layers import BinarySettings, check_choice
from bidense.models import common
from bidense.models.docs import BUILDER_DOC
from bidense.registry import register_model

BUILDER_ARGS = ("input_shape", "input_tensor", "include_top", "weights", "num_classes")
DOWNSAMPLES = ("fp", "binary")
# The configuration larq-zoo's ImageNet weights were trained in, where it differs
# from the families' defaults: zero padding and, whatever the input, the ImageNet
# stem.
LARQ_ZOO = {"pad_value": 0.0, "stem": "imagenet"}


def shared_defaults(*, clip_value: float) -> dict:
    """The switches every family has, with their defaults, in model_switches order.

    The binary-layer defaults are BinarySettings' own. ``clip_value`` belongs to
    the family: larq-zoo trained ResNetE and BinaryDenseNet with different ones.
    """
    layer = {field.name: field.default for field in dataclasses.fields(BinarySettings)}
    return {
        "binary": layer["binary"],
        "fp_activation": layer["fp_activation"],
        "scaling": layer["scaling"],
        "gradient": layer["gradient"],
        "clip_value": clip_value,
        "downsample": "fp",  # the paper's full-precision downsampling
        "pad_value": None,  # see binary_settings
        "stem": None,  # from the input size, see common.resolve_stem
    }


@dataclasses.dataclass(frozen=True)
class Family:
    """What one model family adds to the shared setup of :func:`build`.

    Attributes:
        defaults: every switch the family's models share, with its default (None:
            decided at build time).
        variants: registry name -> the switches that set that model apart.
        zoo_forward_switches: the switches that change the forward pass, hence
            what larq-zoo's weights compute.
        check: validates the family's own switches of a config and returns them
            normalized (tuples), without changing the config.
        downsamplings: stride-2 steps after the stem, for a checked config.
        features: ``features(inputs, cfg, settings)``, the graph from the input
            to the last feature map, before the classifier.
        head_initializer: the classifier's kernel initializer (larq-zoo's).
        args_doc: the family's own arguments, for the builder docstring;
            ``{switch}`` stands for that switch's default.
    """

    defaults: dict
    variants: dict[str, dict]
    zoo_forward_switches: tuple[str, ...]
    check: Callable[[dict], dict]
    downsamplings: Callable[[dict], int]
    features: Callable[..., tf.Tensor]
    head_initializer: str
    args_doc: str

    def switches(self, model_name: str) -> dict:
        """Every switch of ``model_name`` with its default (``model_switches``)."""
        return {**self.defaults, **self.variants[model_name]}


def binary_settings(cfg: dict, weights) -> BinarySettings:
    """The model's BinarySettings; ``cfg`` is read, not changed.

    ``pad_value=None`` takes BinarySettings' default (1.0, what LCE fuses best),
    or 0.0 with weights="imagenet" because larq-zoo trained its weights with zero
    padding.
    """
    fields = {
        field.name: cfg[field.name] for field in dataclasses.fields(BinarySettings)
    }
    if fields["pad_value"] is None:
        if weights == "imagenet":
            fields["pad_value"] = LARQ_ZOO["pad_value"]
        else:
            del fields["pad_value"]
    return BinarySettings(**fields)


def check_switches(model_name: str, switches: dict, valid: Sequence[str]) -> None:
    unknown = sorted(set(switches) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {', '.join(unknown)} for {model_name}; valid: "
            f"{', '.join(list(BUILDER_ARGS) + sorted(valid))}."
        )


def check_weights_request(
    model_name: str,
    weights,
    include_top: bool,
    num_classes: int,
    incompatible: dict,
) -> None:
    """Validates ``weights`` before anything is built.

    ``incompatible`` maps each switch whose value differs from larq-zoo's
    configuration to that configuration's value; larq-zoo's ImageNet weights only
    mean something in that configuration.
    """
    common.check_positive_int("num_classes", num_classes)
    if not isinstance(include_top, bool):
        raise ValueError(f"Invalid include_top={include_top!r}; use True or False.")
    if weights is None or weights != "imagenet":
        if weights is not None and not isinstance(weights, str | os.PathLike):
            raise ValueError(
                f"Invalid weights={weights!r}; use None, 'imagenet' or a file path."
            )
        return
    if include_top and num_classes != 1000:
        raise ValueError(
            f"weights='imagenet' with include_top=True needs num_classes=1000, got "
            f"{num_classes}; use include_top=False to put your own head on top."
        )
    if incompatible:
        wanted = ", ".join(f"{k}={v!r}" for k, v in incompatible.items())
        raise ValueError(
            f"larq-zoo's ImageNet weights for {model_name} were trained with {wanted}; "
            "pass those values (or weights=None)."
        )


def zoo_mismatches(family: Family, model_name: str, cfg: dict) -> dict:
    """The forward-pass switches of ``cfg`` that differ from larq-zoo's model,
    mapped to larq-zoo's value."""
    zoo = {**family.switches(model_name), **LARQ_ZOO}
    zoo.update(family.check(zoo))
    return {k: zoo[k] for k in family.zoo_forward_switches if cfg[k] != zoo[k]}


def finish_model(
    model_name: str,
    inputs,
    outputs,
    *,
    weights,
    include_top: bool,
    input_tensor,
    config: dict,
) -> tf.keras.Model:
    """Wraps the graph in a Model named ``model_name`` and loads ``weights``."""
    if input_tensor is not None:
        inputs = tf.keras.utils.get_source_inputs(input_tensor)
    model = tf.keras.Model(inputs, outputs, name=model_name)
    if weights == "imagenet":
        path = weights_lib.fetch_imagenet_weights(model_name, include_top)
        weights_lib.load_weights_file(model, path)
    elif weights is not None:
        weights_lib.load_weights_file(model, weights)
    # The resolved build arguments (pad_value from weights, stem from the input
    # size, tuples), for a caller that needs to know what was built. Keras does
    # not serialize it: a loaded model has no bidense_config.
    model.bidense_config = {"model": model_name, **config}
    return model


def build(
    family: Family,
    model_name: str,
    *,
    input_shape,
    input_tensor,
    include_top: bool,
    weights,
    num_classes: int,
    switches: dict,
) -> tf.keras.Model:
    """Builds ``model_name`` of ``family``; see ``BUILDER_DOC`` for the arguments.

    Every argument is checked before the stem and the blocks are built, so a bad
    one fails fast and names itself.
    """
    defaults = family.switches(model_name)
    check_switches(model_name, switches, defaults)
    cfg = {**defaults, **switches}
    cfg.update(family.check(cfg))
    check_choice("downsample", cfg["downsample"], DOWNSAMPLES)
    settings = binary_settings(cfg, weights)
    inputs = common.image_input(input_shape, input_tensor)
    stem = common.resolve_stem(cfg["stem"], inputs)
    cfg.update(stem=stem, pad_value=settings.pad_value)
    check_weights_request(
        model_name,
        weights,
        include_top,
        num_classes,
        zoo_mismatches(family, model_name, cfg),
    )
    downsamplings = common.STEM_DOWNSAMPLINGS[stem] + family.downsamplings(cfg)
    common.check_input_size(model_name, inputs, stem, downsamplings)

    x = family.features(inputs, cfg, settings)
    if include_top:
        x = common.classification_head(x, num_classes, family.head_initializer)
    return finish_model(
        model_name,
        inputs,
        x,
        weights=weights,
        include_top=include_top,
        input_tensor=input_tensor,
        config={"num_classes": num_classes, "include_top": include_top, **cfg},
    )


def register(family: Family, model_name: str):
    """Registers a family's builder as ``model_name``, with the shared docstring
    and its ``default_switches`` (what ``bidense.model_switches`` returns)."""

    def decorator(builder: Callable[..., tf.keras.Model]):
        variant = ", ".join(f"{k}={v}" for k, v in family.variants[model_name].items())
        builder.__doc__ = (
            f"Builds {builder.__name__} ({model_name!r}; {variant}), "
            "Bethge et al. 2019.\n\n"
            + BUILDER_DOC.format(
                family_args=family.args_doc.format(**family.defaults),
                clip_value=family.defaults["clip_value"],
            )
        )
        builder.default_switches = family.switches(model_name)
        return register_model(model_name)(builder)

    return decorator
