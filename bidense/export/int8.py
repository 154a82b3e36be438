"""int8 float layers: fake-quant "islands" calibrated on the model's own images.

The float layers of a bidense model (the stem conv, the DenseNet transition and
ResNetE shortcut convs, the classifier; Bethge et al. 2019, arXiv:1906.08637,
sections 3 and 4.2) hold most of an exported model's bytes. LCE 0.16 converts them
to int8 TFLite ops when the graph carries fake-quant nodes around them; its
converters take no representative dataset, and ``experimental_default_int8_range``
gives every tensor one fixed range (accuracy collapses). Fake-quant nodes in the
Keras graph are what the LCE maintainers recommend (larq/compute-engine#344).

The recipe:

* **Placement.** For every float ``Conv2D``/``Dense`` (not a larq layer): one
  :class:`FakeQuant` on the tensor feeding it (for the stem: the image) and one
  after the layer and the BatchNormalization/ReLU chain that follows it, when it
  is that layer's only consumer: the converter folds BN and ReLU into the int8
  conv, so the conv's int8 output is the chain's output. None on the weights (the
  converter quantizes them itself: per output channel for convs, per tensor for
  fully-connected, biases to int32), none on the softmax (TFLite's int8 softmax
  has its own fixed output scale). Binary convs keep float inputs: their
  ``LceQuantize`` reads a dequantized tensor.
* **Ranges.** The 0.01st and 99.99th percentiles of each tensor over the
  calibration images in inference mode (``percentile=100``: min and max),
  widened to contain 0 (an int8 zero point must be representable). Percentiles
  because one tensor's 256 levels are shared by all its channels: a rare
  extreme value stretches min/max and coarsens the grid for every value, which
  hurts most where a float layer's raw output feeds several consumers (a
  DenseNet stem's output is concatenated as it is; no BN folds into it). Use
  the model's *training* images (about 1,000): ranges fitted on the test split
  would leak it into the model. A range that is still empty (a tensor that is 0
  on every image, e.g. a dead ReLU) or not finite is an error
  (:class:`Int8Error`), not silently widened: its layer would compute nothing.
* **Conversion** through the same lean SavedModel path as the float export
  (:func:`bidense.export.convert.to_lce`), optionally with int8 model input and
  output.

The fake-quant model is built from a clone of the model: calling the original
layers again would give each a second inbound node, which the op check's
attribution of tensors to layers (``checks._compute_owners``) relies on not
existing.
"""

from __future__ import annotations

from collections.abc import Iterable

import larq as lq
import numpy as np
import tensorflow as tf

# Calibration ranges: the central 99.98 % of each tensor's values (see above).
DEFAULT_PERCENTILE = 99.99
# Values kept per tensor and batch for the percentiles (a seeded random sample):
# bounds the memory at ImageNet sizes, where one stem output of 1,000 images is
# hundreds of millions of values.
_SAMPLE_PER_BATCH = 100_000

# Layers the converter folds into the conv before them (int8 conv output = after them).
_FOLDABLE = (tf.keras.layers.BatchNormalization, tf.keras.layers.ReLU)
_FOLDABLE_ACTIVATIONS = ("relu", "relu6")


class Int8Error(ValueError):
    """A model or calibration that the int8 recipe cannot handle; one line."""


@tf.keras.utils.register_keras_serializable(package="bidense")
class FakeQuant(tf.keras.layers.Layer):
    """``tf.quantization.fake_quant_with_min_max_vars`` with calibrated min/max.

    Rounds its input to the 256 levels of [min, max] (a no-op for values on the
    grid), which the TFLite converter turns into a QUANTIZE/DEQUANTIZE pair, or
    into nothing where the neighbouring ops run in int8. min and max are
    non-trainable weights set by :func:`calibrate`.
    """

    def build(self, input_shape):
        self.min = self.add_weight(
            name="min", shape=(), initializer=tf.constant_initializer(-6.0),
            trainable=False,
        )  # fmt: skip
        self.max = self.add_weight(
            name="max", shape=(), initializer=tf.constant_initializer(6.0),
            trainable=False,
        )  # fmt: skip
        super().build(input_shape)

    def call(self, inputs):
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, self.min, self.max, num_bits=8
        )


def float_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The float ``Conv2D``/``Dense`` layers (not larq layers): what becomes int8."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.Conv2D | tf.keras.layers.Dense)
        and not isinstance(layer, lq.layers_base.QuantizerBase)
    ]


def check_supported(model: tf.keras.Model) -> None:
    """Raises Int8Error for models the recipe does not cover, before any work."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            raise Int8Error(
                f"--int8 needs a flat functional model; {model.name} nests the model "
                f"{layer.name!r}"
            )
        if "xnor" in type(layer).__name__.lower():
            # The XNOR-Net scaling's k x k box filter is a float conv computed
            # inside the layer (tf.nn.conv2d), with no fake-quant point around it:
            # it would stay a float CONV_2D, which the int8 check rejects.
            raise Int8Error(
                f"--int8 does not support scaling='xnor' (layer {layer.name!r}: its "
                "box filter is a float conv inside the binary layer); export this "
                "model without --int8, or use scaling='none' or 'magnitude'"
            )
    if not float_layers(model):
        raise Int8Error(f"{model.name} has no float Conv2D or Dense layer to make int8")


def _inbound(layer) -> list[tf.keras.layers.Layer]:
    return tf.nest.flatten(layer.inbound_nodes[0].inbound_layers)


def _consumers(model: tf.keras.Model) -> dict[str, list[tf.keras.layers.Layer]]:
    """Layer name -> the layers reading its output (first inbound node only)."""
    consumers = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        if layer.inbound_nodes:
            for source in _inbound(layer):
                consumers[source.name].append(layer)
    return consumers


def _folds(layer) -> bool:
    if isinstance(layer, _FOLDABLE):
        return True
    return (
        isinstance(layer, tf.keras.layers.Activation)
        and layer.get_config()["activation"] in _FOLDABLE_ACTIVATIONS
    )


def island_points(model: tf.keras.Model) -> dict[str, tuple[str, str]]:
    """Float layer name -> (layer whose output feeds it, layer whose output it ends at).

    The fake-quant points are these layer outputs (an ``InputLayer`` stands for
    the model input); see the module docstring for the rule.
    """
    consumers = _consumers(model)
    points = {}
    for layer in float_layers(model):
        sources = _inbound(layer)
        if len(sources) != 1:
            raise Int8Error(
                f"float layer {layer.name!r} has {len(sources)} inputs; int8 needs one"
            )
        last = layer
        while len(consumers[last.name]) == 1 and _folds(consumers[last.name][0]):
            last = consumers[last.name][0]
        points[layer.name] = (sources[0].name, last.name)
    return points


def fake_quant_model(
    model: tf.keras.Model, points: Iterable[str]
) -> tuple[tf.keras.Model, dict[str, FakeQuant]]:
    """A copy of ``model`` (same weights) with a :class:`FakeQuant` after each of
    the layers named in ``points``.

    Returns the new model and its FakeQuant layers by the name of the layer they
    follow. Every consumer of such a layer reads the fake-quantized tensor.
    """
    points = set(points)
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    unknown = points - {layer.name for layer in clone.layers}
    if unknown:
        raise Int8Error(f"no layers {sorted(unknown)} in {model.name}")
    fake_quants: dict[str, FakeQuant] = {}
    tensors: dict[int, tf.Tensor] = {}  # id(clone's tensor) -> new tensor

    def quantized(name: str, tensor):
        if name not in points:
            return tensor
        fake_quants[name] = FakeQuant(name=f"{name}_fq")
        return fake_quants[name](tensor)

    (image,) = clone.inputs
    new_input = tf.keras.Input(
        batch_shape=image.shape, dtype=image.dtype, name=clone.input_names[0]
    )
    tensors[id(image)] = quantized(clone.input_names[0], new_input)

    def mapped(value):
        # Only the clone's tensors are keys (and alive), so no other object's id
        # can match one.
        return tf.nest.map_structure(lambda t: tensors.get(id(t), t), value)

    pending = [
        layer for layer in clone.layers if layer.inbound_nodes and _inbound(layer)
    ]
    while pending:  # graph order, whatever order clone.layers has
        ready = [
            layer
            for layer in pending
            if all(
                id(t) in tensors
                for t in tf.nest.flatten(layer.inbound_nodes[0].input_tensors)
            )
        ]
        if not ready:
            raise Int8Error(f"cannot rebuild {model.name}'s graph for fake-quant")
        for layer in ready:
            node = layer.inbound_nodes[0]
            out = layer(*mapped(node.call_args), **mapped(node.call_kwargs))
            out = quantized(layer.name, out)
            for old, new in zip(
                tf.nest.flatten(node.outputs), tf.nest.flatten(out), strict=True
            ):
                tensors[id(old)] = new
            pending.remove(layer)
    outputs = [tensors[id(t)] for t in clone.outputs]
    rebuilt = tf.keras.Model(
        new_input, outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )
    return rebuilt, fake_quants


def image_batches(images, batch_size: int = 32):
    """Arrays of images from an array, or from an iterable of arrays/(x, y) pairs,
    or from a callable returning such an iterable (read anew at every call)."""
    if callable(images):
        images = images()
    if isinstance(images, np.ndarray):
        for i in range(0, len(images), batch_size):
            yield images[i : i + batch_size]
        return
    for batch in images:
        if isinstance(batch, tuple | list):
            batch = batch[0]
        yield np.asarray(batch)


def check_percentile(percentile: float) -> None:
    if not 50 < percentile <= 100:
        raise Int8Error(
            f"int8 calibration percentile must be in (50, 100], got {percentile}; "
            f"{DEFAULT_PERCENTILE} is the default, 100 takes min and max"
        )


def calibrate(
    model: tf.keras.Model,
    points: Iterable[str],
    images,
    percentile: float = DEFAULT_PERCENTILE,
) -> tuple[dict[str, tuple[float, float]], int]:
    """The range of each point's tensor over ``images`` (inference mode).

    ``images``: an array, an iterable of batches (arrays or (images, labels)),
    or a callable returning such an iterable.
    ``percentile``: the range is [the (100 - p)th, the pth] percentile of the
    values (from a seeded sample of each batch); 100 takes min and max exactly.
    Returns ({point: (low, high)} widened to contain 0, number of images). Raises
    Int8Error for an empty or non-finite range, naming the point.
    """
    check_percentile(percentile)
    rng = np.random.default_rng(0)
    samples = {}
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    points = sorted(points, key=lambda p: order.get(p, -1))  # graph order
    inputs = set(model.input_names)
    inner = [p for p in points if p not in inputs]
    probe = tf.keras.Model(model.inputs, [model.get_layer(p).output for p in inner])
    low = {p: np.inf for p in points}
    high = {p: -np.inf for p in points}
    count = 0
    for batch in image_batches(images):
        count += len(batch)
        values = probe(batch, training=False) if inner else []
        values = values if isinstance(values, list) else [values]
        named = dict(zip(inner, values, strict=True))
        named.update({p: batch for p in points if p in inputs})
        for p, v in named.items():
            v = np.asarray(v, dtype=np.float32).ravel()
            low[p] = min(low[p], float(v.min()))
            high[p] = max(high[p], float(v.max()))
            if percentile < 100:
                if v.size > _SAMPLE_PER_BATCH:
                    v = v[rng.integers(0, v.size, _SAMPLE_PER_BATCH)]
                samples.setdefault(p, []).append(v)
    if count == 0:
        raise Int8Error("no calibration images: the training split is empty")
    ranges = {}
    for p in points:
        lo, hi = min(low[p], 0.0), max(high[p], 0.0)
        if percentile < 100 and np.isfinite(lo) and np.isfinite(hi):
            values = np.concatenate(samples[p])
            plo, phi = np.percentile(values, [100 - percentile, percentile])
            plo, phi = min(float(plo), 0.0), max(float(phi), 0.0)
            if phi - plo > 1e-8:  # else (almost all 0): min/max, empty or not
                lo, hi = plo, phi
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise Int8Error(
                f"int8 calibration: {p!r} reaches {lo} .. {hi} on {count} images; "
                "the model does not compute finite values"
            )
        if not hi - lo > 1e-8:
            raise Int8Error(
                f"int8 calibration: {p!r} is 0 on all {count} calibration images, so "
                "its int8 range is empty; calibrate on more images "
                "(--int8_calibration_images) or export without --int8"
            )
        ranges[p] = (lo, hi)
    return ranges, count


def quantize(
    model: tf.keras.Model,
    images,
    points: Iterable[str] | None = None,
    percentile: float = DEFAULT_PERCENTILE,
) -> tuple[tf.keras.Model, dict[str, tuple[float, float]], int]:
    """The calibrated fake-quant copy of ``model``.

    Args:
        model: a float32 bidense (or any flat functional larq) model.
        images: calibration images (see :func:`calibrate`): its training data.
        points: fake-quant points; default: :func:`island_points`' (tests drop
            one to see the op check fail).
        percentile: the calibration ranges' percentile (see :func:`calibrate`).

    Returns:
        (fake-quant model, {point: (min, max)}, number of calibration images).
    """
    check_supported(model)
    if points is None:
        points = {p for pair in island_points(model).values() for p in pair}
    ranges, count = calibrate(model, points, images, percentile)
    return with_ranges(model, ranges), ranges, count


def with_ranges(
    model: tf.keras.Model, ranges: dict[str, tuple[float, float]]
) -> tf.keras.Model:
    """:func:`fake_quant_model` at the points of ``ranges``, set to them."""
    quantized, fake_quants = fake_quant_model(model, ranges)
    for name, (lo, hi) in ranges.items():
        fake_quants[name].min.assign(lo)
        fake_quants[name].max.assign(hi)
    return quantized
