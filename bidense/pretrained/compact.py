"""bidense's compact weights file: binary kernels as sign bits, the rest float32.

A binary convolution's output depends on its kernel only through the quantized
kernel: larq's ``QuantConv2D`` reads ``kernel`` inside ``quantized_scope(True)``,
where the ``QuantizedVariable`` returns ``kernel_quantizer(latent)``. For the
paper's sign (``SteSign``; ``larq.math.sign``: +1 where the latent weight is
>= 0, else -1) that is the sign of each latent weight, nothing more. So a binary
kernel is stored as its signs, one bit per weight (``np.packbits``), plus one
float32 per output channel, the mean |latent weight|; reading rebuilds the
latent kernel as sign * mean. The quantized kernel is the same bit for bit, so
is every output, and fine-tuning starts from latent weights of the right size
(their exact values are lost; a train.py work dir keeps them).

Before a kernel is stored as bits, its quantizer is applied to the original and
to the rebuilt kernel and the two must be equal: XNOR-Net's and Bi-Real's
magnitude-aware quantizers (``scaling="xnor"``/``"magnitude"``) use the latent
magnitudes, so their kernels stay float32. Everything else (stem, downsampling
and transition convs, BatchNormalization, classifier) is float32.

The file is a compressed ``.npz`` (a zip of ``.npy`` arrays) read with
``allow_pickle=False``: ``meta.json`` (format, model name, switches, input
shape, classes, and per layer the shape and encoding of each weight), then
``<layer>/<i>`` (float32) or ``<layer>/<i>/signs`` and ``<layer>/<i>/scale``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

FORMAT = "bidense-compact-weights"
VERSION = 1
META = "meta.json"


class CompactFileError(ValueError):
    """A file is not a readable compact weights file; one-line message."""


@dataclasses.dataclass(frozen=True)
class CompactWeights:
    """A compact file's contents: layer name -> weights (in ``layer.weights``
    order, float32), and the metadata it was written with."""

    layers: dict[str, list[np.ndarray]]
    meta: dict

    @property
    def model_name(self) -> str | None:
        return self.meta.get("model")

    @property
    def switches(self) -> dict | None:
        return self.meta.get("switches")


def binary_kernel_index(layer) -> int | None:
    """Index in ``layer.weights`` of a binary (1-bit quantized) kernel, or None."""
    quantizer = getattr(layer, "kernel_quantizer", None)
    if getattr(quantizer, "precision", None) != 1:
        return None
    kernel = getattr(layer, "kernel", None)
    for index, weight in enumerate(layer.weights):
        if weight is kernel:
            return index
    return None


def _signs_and_scale(kernel: np.ndarray):
    """``(packed sign bits, per-output-channel mean |w|)`` of a kernel (HWIO)."""
    positive = kernel >= 0  # larq.math.sign: +1 where x >= 0 (-0.0 too), else -1
    scale = np.abs(kernel).reshape(-1, kernel.shape[-1]).mean(axis=0)
    return np.packbits(positive.ravel()), scale.astype(np.float32)


def _rebuild(signs: np.ndarray, scale: np.ndarray, shape) -> np.ndarray:
    count = int(np.prod(shape))
    positive = np.unpackbits(signs, count=count).reshape(shape).astype(bool)
    return np.where(positive, scale, -scale).astype(np.float32)


def _same_quantized(quantizer, original: np.ndarray, rebuilt: np.ndarray) -> bool:
    ours, theirs = (quantizer(tf.constant(k)).numpy() for k in (original, rebuilt))
    return ours.tobytes() == theirs.tobytes()


def encode(model: tf.keras.Model, meta: dict) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the metadata of ``model``'s compact file (not written)."""
    arrays: dict[str, np.ndarray] = {}
    layers: dict[str, list] = {}
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        binary = binary_kernel_index(layer)
        entries = []
        for index, value in enumerate(values):
            key = f"{layer.name}/{index}"
            value = np.asarray(value, np.float32)
            if index == binary:
                signs, scale = _signs_and_scale(value)
                rebuilt = _rebuild(signs, scale, value.shape)
                if _same_quantized(layer.kernel_quantizer, value, rebuilt):
                    arrays[f"{key}/signs"], arrays[f"{key}/scale"] = signs, scale
                    entries.append([list(value.shape), "signs"])
                    continue
            arrays[key] = value
            entries.append([list(value.shape), "float32"])
        layers[layer.name] = entries
    meta = {"format": FORMAT, "version": VERSION, **meta, "layers": layers}
    return arrays, meta


def save(model: tf.keras.Model, path: str | Path, meta: dict) -> dict:
    """Writes ``model``'s compact file to ``path`` (atomically); returns its metadata.

    ``meta`` should name the model (``model``), its ``switches``,
    ``input_shape`` and ``num_classes``; the layer table is added here.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: a compact weights file ends in .npz")
    arrays, meta = encode(model, meta)
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as file:  # a file object: numpy adds no suffix
            np.savez_compressed(file, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return meta


def is_compact(path: str | Path) -> bool:
    """Whether ``path`` is to be read as a compact file: named ``.npz`` (a
    damaged one then fails with :func:`read`'s message, not Keras's), or a zip
    holding a compact file's ``meta.json``."""
    if Path(path).suffix == ".npz" and Path(path).is_file():
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{META}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read(path: str | Path) -> CompactWeights:
    """Reads a compact file; CompactFileError (one line) if it is not one."""
    path = Path(path)
    hint = "write it again with python -m bidense.pretrained"
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(arrays.pop(META).tobytes())
    except KeyError:
        raise CompactFileError(
            f"{path} has no {META}: not a compact weights file"
        ) from None
    except Exception as error:  # zip, npy and JSON errors come in many types
        text = str(error).strip().splitlines()
        reason = (
            f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
        )
        raise CompactFileError(f"cannot read {path} ({reason}); {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CompactFileError(f"{path} is not a {FORMAT} file; {hint}")
    if meta.get("version") != VERSION:
        raise CompactFileError(
            f"{path} is version {meta.get('version')} of the compact format; this "
            f"bidense reads version {VERSION}: upgrade bidense, or {hint}"
        )
    try:
        layers = {
            name: [
                _decode(arrays, f"{name}/{index}", shape, encoding)
                for index, (shape, encoding) in enumerate(entries)
            ]
            for name, entries in meta["layers"].items()
        }
    except (KeyError, TypeError, ValueError) as error:
        raise CompactFileError(
            f"{path} is damaged ({type(error).__name__}: {error}); {hint}"
        ) from None
    return CompactWeights(layers, {k: v for k, v in meta.items() if k != "layers"})


def _decode(arrays, key: str, shape, encoding: str) -> np.ndarray:
    if encoding == "signs":
        return _rebuild(arrays[f"{key}/signs"], arrays[f"{key}/scale"], tuple(shape))
    if encoding != "float32":
        raise ValueError(f"unknown encoding {encoding!r} of {key}")
    value = arrays[key]
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{key} has shape {value.shape}, the table says {shape}")
    return value
