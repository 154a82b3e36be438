"""Fine-tuning: pretrained weights into a model with another head or input size.

    model = bidense.create_model("binary_densenet28", input_shape=(32, 32, 3),
                                 num_classes=5)
    report = bidense.transfer.load_pretrained(model, "imagenet")
    print(report.line())  # what was loaded, adapted and freshly initialised

Weights come from larq-zoo (``"imagenet"``), from bidense (``"fashion_mnist"``),
a train.py work dir (its ``best.keras``, else ``final.keras``) or a file (``.h5``
from ``save_weights`` or ``save``, a ``.keras`` model, a compact ``.npz``). They
are matched to the model by layer name (bidense's layer names are fixed and
hierarchical, :mod:`bidense.models.common`) and shape:

* every backbone layer must be there with the same shapes; otherwise the weights
  are of another architecture or other switches: a one-line error;
* the classifier (``head_dense``) loads when its shape fits (same number of
  classes) unless ``reset_head``; otherwise it keeps its fresh initialisation;
* the stem adapts to the input. Convolution weights do not depend on the input
  size, so a kernel of the same shape loads at any size. An RGB kernel goes
  into a one-channel model summed over its input channels: a gray image g, which
  the RGB model would see as (g, g, g), then gives the same response (timm's
  ``adapt_input_conv`` does the same); a one-channel kernel goes into a
  C-channel model repeated and divided by C. Any other stem (larq-zoo's 7x7
  ImageNet stem into the 3x3 CIFAR stem of a small input) is freshly
  initialised, and stem layers the model lacks are left out.

Switches that change what the backbone's weights compute must match what the
weights were trained with, where that is known (larq-zoo's configuration, the
Fashion-MNIST table, a work dir's config.json, a compact file's metadata): a
mismatch is a one-line error naming the switch. ``stem`` and ``pad_value`` may
differ: the stem adapts as above, and the padding value only changes the border
pixels of binary convolutions, which fine-tuning adapts to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from bidense import registry
from bidense import weights as weights_lib

HEAD = "head_dense"  # the classifier (bidense.models.common.classification_head)
STEM_PREFIX = "stem_"
# Switches that may differ from the weights' when fine-tuning (see above).
FREE_SWITCHES = ("stem", "pad_value")
ANOTHER_ARCHITECTURE = (
    "these are weights of another architecture, or of other switches (blocks, "
    "filters, growth_rate, ...)"
)


@dataclasses.dataclass
class Source:
    """Pretrained weights, read: what they are and what they were trained with.

    ``layers`` is None for a TF checkpoint prefix, which only loads whole.
    """

    name: str  # for messages: "Weights file 'w.h5'", "larq-zoo's ImageNet weights"
    model_name: str | None  # the model they are of, if known
    switches: dict | None  # the switches they were trained with, if known
    layers: dict[str, list[np.ndarray]] | None = None
    path: str | None = None


@dataclasses.dataclass
class Report:
    """What :func:`load_pretrained` did, layer by layer."""

    source: str
    model: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    adapted: dict[str, str] = dataclasses.field(default_factory=dict)
    new: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> why
    left_out: list[str] = dataclasses.field(default_factory=list)

    @property
    def pretrained(self) -> list[str]:
        """Layers whose weights came from the source (loaded or adapted)."""
        return [*self.loaded, *self.adapted]

    def line(self) -> str:
        """One line for stderr."""
        source = self.source[:1].lower() + self.source[1:]
        parts = [f"{len(self.pretrained)} layers from {source}"]
        if self.adapted:
            parts.append(
                "adapted: " + ", ".join(f"{k} ({v})" for k, v in self.adapted.items())
            )
        if self.new:
            parts.append(
                "freshly initialised: "
                + ", ".join(f"{k} ({v})" for k, v in self.new.items())
            )
        if self.left_out:
            parts.append("not used: " + ", ".join(self.left_out))
        return f"fine-tuning {self.model}: " + "; ".join(parts)


def _family(model_name: str):
    return registry.get_builder(model_name).family


def normalized_switches(model_name: str, switches: dict) -> dict:
    """``switches`` over the model's defaults, in the builder's normal form."""
    family = _family(model_name)
    merged = {**family.switches(model_name)}
    merged.update(
        {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in switches.items()
            if k in merged
        }
    )
    merged.update(family.check(merged))
    return merged


def backbone_switches(model_name: str, switches: dict) -> tuple[str, ...]:
    """The switches that change what the backbone's weights compute (those that
    must match the weights when fine-tuning)."""
    keys = [
        k for k in _family(model_name).zoo_forward_switches if k not in FREE_SWITCHES
    ]
    if switches.get("binary") is False:
        keys.append("fp_activation")  # the twin's nonlinearity
    return tuple(keys)


# -- reading the weights -----------------------------------------------------


def describe(weights, model_name: str) -> Source:
    """``weights`` without reading its arrays: its name, model and switches.

    Reads only a compact file (small, and its metadata has the switches). Raises a
    one-line ValueError for weights that do not exist.
    """
    if weights == "imagenet":
        if model_name not in weights_lib.IMAGENET_WEIGHTS:
            weights_lib.fetch_imagenet_weights(model_name, True)  # its one-line error
        family = _family(model_name)
        zoo = {**family.switches(model_name), **_larq_zoo()}
        return Source("larq-zoo's ImageNet weights", model_name, zoo)
    if weights == "fashion_mnist":
        spec = weights_lib.fashion_mnist_spec(model_name)
        return Source(
            "bidense's Fashion-MNIST weights", model_name, dict(spec.switches)
        )
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"Invalid weights={weights!r}; use None, 'imagenet', 'fashion_mnist', a "
            "train.py work dir or a weights file."
        )
    path = os.fspath(weights)
    if os.path.isdir(path) and not os.path.exists(path + ".index"):
        return _describe_workdir(path)
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise ValueError(
            f"Weights file {path!r} does not exist; pass weights=None, 'imagenet' or "
            "the path of a file saved with model.save_weights()."
        )
    source = Source(f"Weights file {path!r}", None, None, path=path)
    from bidense.pretrained import compact

    if compact.is_compact(path):
        contents = _read_compact(path, source.name)
        source.layers = contents.layers
        source.model_name, source.switches = contents.model_name, contents.switches
    return source


def _larq_zoo() -> dict:
    from bidense.models.family import LARQ_ZOO

    return dict(LARQ_ZOO)


def run_config(workdir: str | Path) -> dict | None:
    """The ``config.json`` of a train.py work dir, or None if it holds none (a
    missing, unreadable or foreign file)."""
    try:
        config = json.loads((Path(workdir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if (
        isinstance(config, dict)
        and isinstance(config.get("model_name"), str)
        and isinstance(config.get("model"), dict)
    ):
        return config
    return None


def _describe_workdir(path: str) -> Source:
    config = run_config(path)
    if config is None:
        raise ValueError(
            f"Weights {path!r} is a directory without a train.py config.json; give a "
            "finished train.py work dir or a weights file."
        )
    switches = {k: v for k, v in config["model"].items() if k != "weights"}
    return Source(
        f"work dir {path!r}",
        config["model_name"],
        switches,
        path=os.fspath(weights_lib.workdir_model_file(path)),
    )


def read(weights, model_name: str, source: Source | None = None) -> Source:
    """``weights`` read for ``model_name``: :func:`describe` (or ``source``, its
    result) plus the arrays."""
    source = source or describe(weights, model_name)
    if source.layers is not None:
        return source
    if weights == "imagenet":
        # larq-zoo's files name layers their own way; they load into bidense's
        # larq-zoo configuration by topology, which then has bidense's names.
        zoo = registry.create_model(model_name, weights="imagenet")
        source.layers = _layers_of(zoo)
        source.switches = dict(zoo.bidense_config)
        return source
    if weights == "fashion_mnist":
        path = weights_lib.fetch_fashion_mnist_weights(model_name)
        source.layers = _read_compact(path, source.name).layers
        return source
    path = source.path
    if not os.path.exists(path):  # a TF checkpoint prefix: only loads whole
        return source
    if zipfile.is_zipfile(path):  # a .keras model
        model = _load_keras(path, source.name, model_name)
        source.layers = _layers_of(model)
        source.model_name = source.model_name or _registered(model.name)
    else:
        source.layers, name = _read_h5(path, source.name, model_name)
        source.model_name = source.model_name or _registered(name)
    return source


def _registered(name: str | None) -> str | None:
    return name if name in registry.list_models() else None


def _layers_of(model: tf.keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _read_compact(path, name: str):
    from bidense.pretrained import compact

    try:
        return compact.read(path)
    except compact.CompactFileError as error:
        raise ValueError(f"{name}: {error}") from None


def _unreadable(name: str, model_name: str, error: Exception) -> ValueError:
    text = str(error).strip().splitlines()
    first = f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
    return ValueError(
        f"{name} does not fit {model_name} ({first}); it is not a whole weights "
        "file: pass one saved with model.save_weights() or model.save(), or a "
        "train.py work dir."
    )


def _load_keras(path: str, name: str, model_name: str) -> tf.keras.Model:
    import bidense  # noqa: F401  (registers bidense's layers for deserialization)

    try:
        return tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, JSON and Keras errors come in many types
        raise _unreadable(name, model_name, error) from None


def _read_h5(path: str, name: str, model_name: str):
    """Layer name -> arrays of a Keras 2 HDF5 file (``save_weights`` or ``save``),
    and the saved model's name if the file has one."""
    import h5py

    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as file:
            group = file["model_weights"] if "model_weights" in file else file
            layers = {}
            for layer in map(text, group.attrs["layer_names"]):
                names = map(text, group[layer].attrs["weight_names"])
                values = [np.asarray(group[layer][w]) for w in names]
                if values:  # Keras lists every layer, with weights or not
                    layers[layer] = values
            config = file.attrs.get("model_config")
    except Exception as error:  # h5py raises OSError, KeyError, ...
        raise _unreadable(name, model_name, error) from None
    saved_name = None
    if config is not None:
        try:
            saved_name = json.loads(text(config))["config"]["name"]
        except (ValueError, KeyError, TypeError):
            saved_name = None
    return layers, saved_name


# -- checking and loading ----------------------------------------------------


def check_source(model: tf.keras.Model, source: Source) -> None:
    """One-line errors for weights of another model, or of other switches."""
    if source.model_name and source.model_name != model.name:
        raise ValueError(
            f"{source.name} does not fit {model.name}: it holds {source.model_name} "
            f"weights; fine-tune from weights of {model.name}."
        )
    built = getattr(model, "bidense_config", None)
    if not (built and source.switches and model.name in registry.list_models()):
        return
    try:
        theirs = normalized_switches(model.name, source.switches)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{source.name}: its switches do not build {model.name} ({error})"
        ) from None
    for key in backbone_switches(model.name, theirs):
        if theirs[key] != built[key]:
            raise ValueError(
                f"{source.name} were trained with {key}={theirs[key]!r}, not "
                f"{key}={built[key]!r} as this {model.name} has; use that value "
                f"(in train.py: --config.model.{key}) or leave the switch out."
            )


def load_pretrained(model: tf.keras.Model, weights, *, reset_head=False) -> Report:
    """Loads ``weights`` into ``model`` by layer name and shape (module docstring).

    Args:
        model: a bidense model, of any input size and number of classes.
        weights: "imagenet", "fashion_mnist", a train.py work dir or a file.
        reset_head: keep the classifier freshly initialised even when its shape
            fits the weights (new classes of the same number).

    Returns:
        A :class:`Report` of what was loaded, adapted and freshly initialised.

    Raises:
        ValueError: one line, for weights that do not exist, cannot be read, or
            are of another model or of other backbone switches.
    """
    source = describe(weights, model.name)
    check_source(model, source)  # before a large file is fetched or read
    source = read(weights, model.name, source)
    check_source(model, source)  # what the file itself says
    if source.layers is None:
        weights_lib.load_weights_file(model, source.path)
        return Report(source.name, model.name, loaded=list(_layers_of(model)))
    return copy_layers(model, source, reset_head=reset_head)


def copy_layers(model: tf.keras.Model, source: Source, *, reset_head=False) -> Report:
    """Sets ``model``'s layers from ``source.layers`` (the module's rules)."""
    report = Report(source.name, model.name)
    ours = [layer for layer in model.layers if layer.weights]

    def fail(detail: str) -> ValueError:
        return ValueError(
            f"{source.name} does not fit {model.name}: {detail}; "
            f"{ANOTHER_ARCHITECTURE}."
        )

    for layer in ours:
        values = source.layers.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        theirs = None if values is None else [tuple(np.shape(v)) for v in values]
        if layer.name == HEAD:
            if reset_head:
                report.new[layer.name] = "reset_head"
            elif theirs is None:
                report.new[layer.name] = "not in the weights"
            elif theirs != shapes:
                report.new[layer.name] = (
                    f"{shapes[0][-1]} classes, the weights have {theirs[0][-1]}"
                )
            else:
                layer.set_weights(values)
                report.loaded.append(layer.name)
            continue
        if layer.name.startswith(STEM_PREFIX) and theirs != shapes:
            adapted = None if values is None else _adapt_stem(values, shapes)
            if adapted is not None:
                layer.set_weights(adapted[0])
                report.adapted[layer.name] = adapted[1]
            elif values is None:
                report.new[layer.name] = "not in the weights"
            else:
                report.new[layer.name] = f"kernel {shapes[0]}, the weights' {theirs[0]}"
            continue
        if values is None:
            raise fail(f"the weights have no layer {layer.name}")
        if theirs != shapes:
            raise fail(f"layer {layer.name} has shapes {theirs} there, {shapes} here")
        layer.set_weights(values)
        report.loaded.append(layer.name)

    names = {layer.name for layer in ours}
    for name in source.layers:
        if name in names:
            continue
        if name != HEAD and not name.startswith(STEM_PREFIX):
            raise fail(f"the weights have a layer {name} that the model lacks")
        report.left_out.append(name)
    return report


def _adapt_stem(values: list[np.ndarray], shapes: list[tuple]):
    """A stem conv kernel for another number of input channels, or None."""
    if len(values) != 1 or len(shapes) != 1 or len(shapes[0]) != 4:
        return None
    kernel, shape = np.asarray(values[0]), shapes[0]
    if kernel.ndim != 4 or kernel.shape[:2] != shape[:2] or kernel.shape[3] != shape[3]:
        return None
    have, want = kernel.shape[2], shape[2]
    if have == 3 and want == 1:
        return [kernel.sum(axis=2, keepdims=True)], "RGB kernel summed for 1 channel"
    if have == 1:
        return (
            [np.repeat(kernel, want, axis=2) / want],
            f"1-channel kernel spread over {want} channels",
        )
    return None
