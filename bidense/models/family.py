"""The setup every model family shares: switches -> checked config -> graph -> Model.

A family module (``resnet_e``, ``densenet``) states only what is its own, in a
:class:`Family`: its defaults, its variants, how it checks its switches, how
often it halves the resolution and its graph. :func:`build` does the rest in the
same order for every family (argument checks, binary settings, input and stem,
named weights request, input size, head, weights), and :func:`register` makes a
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
# The builders' num_classes default (ImageNet's); with weights="fashion_mnist" it
# stands for the weights' own classes.
DEFAULT_NUM_CLASSES = 1000
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

    ``incompatible`` maps each switch whose value differs from the configuration
    the named weights ("imagenet": larq-zoo's, "fashion_mnist": the table's) were
    trained in to that configuration's value; the weights only mean something
    in that configuration.
    """
    common.check_positive_int("num_classes", num_classes)
    if not isinstance(include_top, bool):
        raise ValueError(f"Invalid include_top={include_top!r}; use True or False.")
    if weights is None or weights not in weights_lib.NAMED_WEIGHTS:
        if weights is not None and not isinstance(weights, str | os.PathLike):
            raise ValueError(
                f"Invalid weights={weights!r}; use None, 'imagenet', 'fashion_mnist' "
                "or a file path."
            )
        return
    if weights == "imagenet":
        classes, whose = 1000, "larq-zoo's ImageNet weights"
    else:
        classes = weights_lib.fashion_mnist_spec(model_name).num_classes
        whose = "bidense's Fashion-MNIST weights"
    if include_top and num_classes != classes:
        raise ValueError(
            f"weights={weights!r} with include_top=True needs num_classes={classes}, "
            f"got {num_classes}; use include_top=False to put your own head on top "
            "(train.py fine-tunes with a new head)."
        )
    if incompatible:
        wanted = ", ".join(f"{k}={v!r}" for k, v in incompatible.items())
        raise ValueError(
            f"{whose} for {model_name} were trained with {wanted}; "
            "pass those values (or weights=None)."
        )


def trained_switches(family: Family, model_name: str, weights) -> dict | None:
    """The switches the named ``weights`` were trained with (checked, normalized),
    or None for weights without such a configuration."""
    if weights == "imagenet":
        trained = {**family.switches(model_name), **LARQ_ZOO}
    elif weights == "fashion_mnist":
        spec = weights_lib.fashion_mnist_spec(model_name)
        trained = {**family.switches(model_name), **spec.switches}
    else:
        return None
    trained = {k: tuple(v) if isinstance(v, list) else v for k, v in trained.items()}
    trained.update(family.check(trained))
    return trained


def forward_mismatches(family: Family, cfg: dict, trained: dict | None) -> dict:
    """The forward-pass switches of ``cfg`` that differ from ``trained``, mapped to
    the trained value (the twin's nonlinearity counts for a full-precision twin)."""
    if trained is None:
        return {}
    keys = list(family.zoo_forward_switches)
    if not trained["binary"]:
        keys.append("fp_activation")
    return {k: trained[k] for k in keys if cfg[k] != trained[k]}


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
    elif weights == "fashion_mnist":
        path = weights_lib.fetch_fashion_mnist_weights(model_name)
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
    if weights == "fashion_mnist":
        # bidense's weights set the defaults: their switches (None = "builder
        # decides" = the weights decide), input shape and classes.
        spec = weights_lib.fashion_mnist_spec(model_name)
        given = {k: v for k, v in switches.items() if v is not None}
        cfg = {**defaults, **spec.switches, **given}
        if input_shape is None and input_tensor is None:
            input_shape = tuple(spec.input_shape)
        if num_classes == DEFAULT_NUM_CLASSES:
            num_classes = spec.num_classes
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
        forward_mismatches(family, cfg, trained_switches(family, model_name, weights)),
    )
    if weights == "fashion_mnist" and inputs.shape[-1] != spec.input_shape[-1]:
        raise ValueError(
            f"bidense's Fashion-MNIST weights for {model_name} take "
            f"{spec.input_shape[-1]}-channel images, not {inputs.shape[-1]}; "
            "build the model without weights and fine-tune (bidense.transfer)."
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
        builder.family = family
        return register_model(model_name)(builder)

    return decorator
