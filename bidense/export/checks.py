"""Proof that a converted model runs every binary layer as a binary op.

This module matches the Keras model's layers with the flatbuffer's op list and
records the outcome in an :class:`~bidense.export.report.ExportReport` (that
module judges and renders it). The check asks that:

* every binary layer (a larq layer with an ``input_quantizer``) owns exactly
  one ``LceBconv2d`` op: LCE only has a binary *convolution*, so a binary conv
  without a sign-type kernel quantizer, a ``QuantDense`` or a ``QuantDepthwise``
  stays in float (larq/compute-engine#53, #806) and is named here;
* the number of ``LceBconv2d`` ops equals the number of binary layers;
* every op type is one bidense graphs are expected to contain
  (:data:`EXPECTED_OPS`); e.g. ``LceDequantize`` means a sign output was turned
  back into float for a float op, and ``SPACE_TO_BATCH_ND`` is how old LCE
  versions left dilated binary convs in float (larq/compute-engine#385).

Ops are attributed to Keras layers through tensor names: the converter names
each output tensor after the TF ops fused into it, all under
``<model name>/<layer name>/``.
"""

from __future__ import annotations

import collections

import larq as lq
import tensorflow as tf

from bidense.export.flatbuffer import Op, bconv_padding, op_counts
from bidense.export.report import ExportReport, Int8Report

BCONV = "LceBconv2d"
# Ops a bidense graph may contain, with what they do there.
EXPECTED_OPS = {
    "LceBconv2d": "binary 3x3 / 1x1 conv (BN after it folds into its multiplier)",
    "LceQuantize": "sign activation, bit-packed 32 channels per int32",
    "LceBMaxPool2d": "max-pool on bit-packed signs",
    "CONV_2D": "float conv: stem, downsampling convs, XNOR box filter",
    "DEPTHWISE_CONV_2D": "float depthwise conv",
    "FULLY_CONNECTED": "float classifier",
    "MUL": "BN scale that did not fold; XNOR scaling",
    "ADD": "BN shift that did not fold; residual adds",
    "SUB": "BN shift",
    "CONCATENATION": "DenseNet feature concatenation",
    "MAX_POOL_2D": "float max-pool (stem, transitions)",
    "AVERAGE_POOL_2D": "global pool (head), ResNetE shortcut pool",
    "MEAN": "XNOR channel mean |x|; global average pool",
    "ABS": "XNOR |x|",
    "RELU": "float ReLU",
    "RELU6": "float ReLU6",
    "TANH": "float tanh (full-precision twin)",
    "RESHAPE": "flatten before the classifier",
    "SOFTMAX": "output probabilities",
    "PAD": "explicit padding",
}
# Further ops of an int8 export (export.py --int8).
INT8_EXPECTED_OPS = {
    "QUANTIZE": "float -> int8 where an int8 island begins (and the model input)",
    "DEQUANTIZE": "int8 -> float where an island ends (binary layers read float)",
}
# What a float layer may become in an int8 export.
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Ops that mean part of a binary layer runs in float, with the reason.
FALLBACK_OPS = {
    "LceDequantize": "a sign activation is unpacked back to float for a float op",
    "SPACE_TO_BATCH_ND": "a dilated conv lowered to float (larq/compute-engine#385)",
    "BATCH_TO_SPACE_ND": "a dilated conv lowered to float (larq/compute-engine#385)",
    "SIGN": "a sign computed in float instead of LceQuantize",
}


class FloatFallbackError(ValueError):
    """A binary layer stayed in float, or the graph contains an unexpected op."""


def is_binary_layer(layer: tf.keras.layers.Layer) -> bool:
    """A larq quantized layer whose inputs are quantized (i.e. binarized here)."""
    return isinstance(layer, lq.layers_base.QuantizerBase) and (
        getattr(layer, "input_quantizer", None) is not None
    )


def is_binary_conv(layer: tf.keras.layers.Layer) -> bool:
    """A ``QuantConv2D`` with an input quantizer: what LCE turns into LceBconv2d."""
    return isinstance(layer, lq.layers.QuantConv2D) and is_binary_layer(layer)


def _leaf_layers(model: tf.keras.Model):
    """Every non-model layer, nested models flattened, in graph order."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _float_weight_layers(model: tf.keras.Model):
    """Layers doing float arithmetic with weights, plus XNOR scaling layers."""
    for layer in _leaf_layers(model):
        if is_binary_layer(layer):
            continue
        if (
            isinstance(
                layer,
                tf.keras.layers.Conv2D | tf.keras.layers.Dense,
            )
            or "xnor" in type(layer).__name__.lower()
        ):
            yield layer


def _mentions(name: str, layer_name: str) -> bool:
    """Does the TF op name ``name`` lie inside the Keras layer ``layer_name``?"""
    return (
        f"/{layer_name}/" in name
        or name.endswith(f"/{layer_name}")
        or name.startswith(f"{layer_name}/")
    )


# Layers LCE/TFLite fold into the op before them; their tensor names then stand
# for that op (e.g. ResNetE's bconv output is named ``stage1_block1_bn/...``).
_FOLDED = (
    tf.keras.layers.BatchNormalization,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
)


def _compute_owners(layers, compute_ids: set[int]) -> dict[str, str]:
    """Layer name -> name of the compute layer whose op carries its tensors.

    Compute layers own themselves; a folded layer (BN, activation) with a single
    input owns what that input's layer owns; other layers own nothing.
    """
    owners = {}
    for layer in layers:  # graph order: a layer's inputs come before it
        if id(layer) in compute_ids:
            owners[layer.name] = layer.name
        elif isinstance(layer, _FOLDED) and len(layer.inbound_nodes) == 1:
            inbound = tf.nest.flatten(layer.inbound_nodes[0].inbound_layers)
            if len(inbound) == 1 and inbound[0].name in owners:
                owners[layer.name] = owners[inbound[0].name]
    return owners


def _mentioned(names: list[str], owners: dict[str, str]) -> list[str]:
    """Compute layers that the TF op names ``names`` belong to, first mention first."""
    found = []
    for part in names:
        for layer_name, owner in owners.items():
            if _mentions(part, layer_name) and owner not in found:
                found.append(owner)
    return found


def _match_bconvs(
    ops: list[Op], owners: dict[str, str], binary: set[str]
) -> dict[str, int]:
    """Binary layer -> index of the LceBconv2d op that implements it.

    A bconv's tensor names may mention more than one layer: with ``pad_value=1``
    LCE fuses the *next* layer's sign into the bconv (bit-packed output), so its
    output is named after both. Each bconv may implement only one layer, so this is
    a bipartite matching (Kuhn's augmenting paths; graphs have < 100 bconvs).
    """
    candidates = {}
    for i, op in enumerate(ops):
        if op.type == BCONV:
            first_input = [op.inputs[0]] if op.inputs and op.inputs[0] else []
            names = op.names() + [p for n in first_input for p in n.split(";")]
            # Only binary layers can own a bconv (its names may also mention a
            # float layer, e.g. the transition conv feeding its BN).
            candidates[i] = [n for n in _mentioned(names, owners) if n in binary]
    layer_of_op: dict[int, str] = {}

    def augment(i: int, visited: set[str]) -> bool:
        for layer_name in candidates[i]:
            if layer_name in visited:
                continue
            visited.add(layer_name)
            holder = next((j for j, n in layer_of_op.items() if n == layer_name), None)
            # Free, or its holder can move to another layer (which overwrites
            # the holder's entry): take it.
            if holder is None or augment(holder, visited):
                layer_of_op[i] = layer_name
                return True
        return False

    for i in candidates:
        augment(i, set())
    return {name: i for i, name in layer_of_op.items()}


# Why a float layer stays float, by name fragment (bidense names its layers
# stem_*, stage*_block*, transition*, head_*; see bidense.models.common).
_ROLES = (
    (
        "xnor",
        "XNOR-Net activation scaling K (paper's scaling ablation), float by design",
    ),
    ("stem", "stem: the first conv sees the raw image; kept float (paper section 3)"),
    ("transition", "downsampling conv kept float (paper section 4.2)"),
    ("shortcut", "downsampling conv kept float (paper section 4.2)"),
    ("downsample", "downsampling conv kept float (paper section 4.2)"),
    ("head", "classifier kept float (paper section 3)"),
)


def _role(layer, seen_binary: bool) -> str:
    for fragment, role in _ROLES:
        if fragment in layer.name:
            return role
    # Layers without a descriptive name (e.g. larq-zoo's conv2d_3): by position.
    if isinstance(layer, tf.keras.layers.Dense):
        return "classifier kept float (paper section 3)"
    if not seen_binary:
        return "stem: the first conv sees the raw image; kept float (paper section 3)"
    return "downsampling conv kept float (paper section 4.2)"


def check_conversion(
    model: tf.keras.Model,
    ops: list[Op],
    file_bytes: int,
    predicted_mib: float | None = None,
    *,
    int8: bool = False,
) -> ExportReport:
    """Compares ``model`` with the ops LCE produced for it (see module docstring).

    ``int8``: ``ops`` come from an int8 export (bidense.export.int8): QUANTIZE and
    DEQUANTIZE are expected too, and :func:`check_int8` fills ``report.int8``.
    """
    layers = list(_leaf_layers(model))
    binary = [layer for layer in layers if is_binary_layer(layer)]
    binary_names = [layer.name for layer in binary]
    float_layers = list(_float_weight_layers(model))
    float_ids = {id(layer) for layer in float_layers}
    owners = _compute_owners(layers, {id(x) for x in binary} | float_ids)
    bconv_of = _match_bconvs(ops, owners, set(binary_names))

    # For the report: each op under the first layer its output names mention.
    ops_of: dict[str, list[str]] = {}
    for op in ops:
        mentioned = _mentioned(op.names(), owners)
        if mentioned:
            ops_of.setdefault(mentioned[0], []).append(op.type)
    fallbacks = []
    for layer in binary:
        if layer.name not in bconv_of:
            types = [t for t in ops_of.get(layer.name, []) if t != BCONV]
            became = ", ".join(dict.fromkeys(types)) or "no op named after it"
            fallbacks.append((layer.name, f"{type(layer).__name__} -> {became}"))

    unexpected = []
    expected = {**EXPECTED_OPS, **INT8_EXPECTED_OPS} if int8 else EXPECTED_OPS
    for op in ops:
        if op.type not in expected:
            reason = FALLBACK_OPS.get(op.type, "not expected in a bidense graph")
            unexpected.append((op.type, op.outputs[0] if op.outputs else "", reason))

    float_rows, seen_binary = [], False
    binary_ids = {id(layer) for layer in binary}
    for layer in layers:
        if id(layer) in binary_ids:
            seen_binary = True
        elif id(layer) in float_ids:
            types = ", ".join(dict.fromkeys(ops_of.get(layer.name, []))) or "-"
            float_rows.append(
                (layer.name, type(layer).__name__, _role(layer, seen_binary), types)
            )

    return ExportReport(
        model_name=model.name,
        op_counts=op_counts(ops),
        binary_convs=sum(is_binary_conv(layer) for layer in binary),
        binary_layers=binary_names,
        bconv_ops=sum(op.type == BCONV for op in ops),
        fallbacks=fallbacks,
        unexpected=unexpected,
        float_layers=float_rows,
        file_bytes=file_bytes,
        predicted_mib=predicted_mib,
        bconv_padding=bconv_padding(ops),
        int8=check_int8(model, ops) if int8 else None,
    )


def _tflite_weight_shape(layer) -> tuple[int, ...]:
    """Keras kernel shape as TFLite stores it: conv (kh, kw, in, out) ->
    (out, kh, kw, in); dense (in, out) -> (out, in)."""
    shape = tuple(layer.kernel.shape)
    if len(shape) == 4:
        return (shape[3], shape[0], shape[1], shape[2])
    return (shape[1], shape[0])


def _weight_names(op: Op) -> list[str]:
    """The TF op names of an op's weights tensor (its second input)."""
    name = op.inputs[1] if len(op.inputs) > 1 else None
    return [part for part in (name or "").split(";") if part]


def check_int8(model: tf.keras.Model, ops: list[Op]) -> Int8Report:
    """Proof that every float layer of ``model`` runs as one int8 op in ``ops``.

    Each float ``Conv2D``/``Dense`` must own exactly one CONV_2D,
    DEPTHWISE_CONV_2D or FULLY_CONNECTED op, found by name (the tensor names of
    the op mention the layer, as for the bconvs above) *and* by its weights'
    shape, whose input, weights and output are INT8 and whose bias (if any) is
    INT32. A conv or fully-connected op that belongs to no float layer (e.g. the
    XNOR box filter) is a problem as well. The binary side (one LceBconv2d per
    binary layer) is :func:`check_conversion`'s.
    """
    layers = list(_leaf_layers(model))
    binary = [layer for layer in layers if is_binary_layer(layer)]
    float_layers = [
        layer
        for layer in _float_weight_layers(model)
        if isinstance(layer, tf.keras.layers.Conv2D | tf.keras.layers.Dense)
    ]
    owners = _compute_owners(
        layers, {id(x) for x in binary} | {id(x) for x in float_layers}
    )
    rows, problems, used = [], [], set()
    int8_ops = collections.Counter()  # op type -> float layers proven int8
    for layer in float_layers:
        want = _tflite_weight_shape(layer)
        named = [
            i
            for i, op in enumerate(ops)
            if op.type in (*INT8_OPS, BCONV)
            and layer.name in _mentioned(op.names() + _weight_names(op), owners)
        ]
        shaped = [
            i
            for i in named
            if len(ops[i].input_tensors) > 1
            and ops[i].input_tensors[1] is not None
            and ops[i].input_tensors[1].shape == want
        ]
        if len(shaped) != 1:
            found = ", ".join(ops[i].type for i in named) or "none"
            problems.append(
                f"float layer {layer.name!r}: {len(shaped)} ops named after it with "
                f"weights {want} (ops named after it: {found})"
            )
            rows.append((layer.name, "-", "-", "-", "-", "-"))
            continue
        used.add(shaped[0])
        op = ops[shaped[0]]
        x, w, *rest = op.input_tensors
        b = rest[0] if rest else None
        y = op.output_tensors[0]
        types = {
            "input": (x.type if x else "-", "INT8"),
            "weights": (w.type, "INT8"),
            "bias": (b.type if b else "-", "INT32" if b else "-"),
            "output": (y.type, "INT8"),
        }
        bad = [f"{k} {got}" for k, (got, need) in types.items() if got != need]
        if op.type not in INT8_OPS:
            bad.insert(0, f"op {op.type}")
        if bad:
            problems.append(
                f"float layer {layer.name!r} -> {op.type} is not int8: {', '.join(bad)}"
            )
        else:
            int8_ops[op.type] += 1
        weights = w.type + (f" ({w.scales} scales)" if w.scales > 1 else "")
        rows.append(
            (layer.name, op.type, types["input"][0], weights, types["bias"][0], y.type)
        )
    for i, op in enumerate(ops):
        if op.type in INT8_OPS and i not in used:
            x, y = op.input_tensors[:1], op.output_tensors[:1]
            kinds = f"{x[0].type if x and x[0] else '?'} -> {y[0].type if y else '?'}"
            problems.append(
                f"{op.type} at {op.outputs[0]!r} belongs to no float layer ({kinds})"
            )
    return Int8Report(
        layers=rows, problems=problems, int8_ops=dict(sorted(int8_ops.items()))
    )
