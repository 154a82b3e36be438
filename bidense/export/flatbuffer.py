"""Reading a converted ``.tflite`` flatbuffer: which ops it runs, and on what.

LCE can convert a model while silently leaving binary layers in float
(larq/compute-engine#53, #744, #806), so every export is inspected op by
op. The parser is TensorFlow's own generated flatbuffer schema; LCE's custom ops
(``LceBconv2d``, ``LceQuantize``, ...) appear as CUSTOM ops whose name is their
``custom_code``.
"""

from __future__ import annotations

import collections
import dataclasses

from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

# BuiltinOperator enum value -> name ("CONV_2D", ...).
_BUILTIN_NAMES = {
    value: name
    for name, value in vars(schema.BuiltinOperator).items()
    if not name.startswith("_") and isinstance(value, int)
}
# TensorType enum value -> name ("FLOAT32", "INT8", ...).
_TYPE_NAMES = {
    value: name
    for name, value in vars(schema.TensorType).items()
    if not name.startswith("_") and isinstance(value, int)
}


@dataclasses.dataclass(frozen=True)
class Tensor:
    """What an op reads or writes: the int8 check looks at types and shapes.

    Attributes:
        name: the tensor's name (see :class:`Op`).
        type: ``"FLOAT32"``, ``"INT8"``, ``"INT32"``, ...
        shape: static shape; a conv filter is (out, kh, kw, in), a
            fully-connected weight matrix (out, in).
        scales: number of quantization scales: 0 = not quantized, 1 = per
            tensor, more = per output channel.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    scales: int = 0


@dataclasses.dataclass(frozen=True)
class Op:
    """One operator of the flatbuffer's main subgraph.

    Attributes:
        type: builtin name (``"CONV_2D"``) or LCE custom code (``"LceBconv2d"``).
        inputs: names of the input tensors (None for an omitted optional input).
        outputs: names of the output tensors. The converter names a tensor after
            the TF ops fused into it, ``;``-separated and truncated to 50
            characters, e.g. ``"binary_densenet28/stage1_block1_conv/QuantConv2D"``.
        options: a custom op's options (LCE stores them as a flexbuffer map), e.g.
            LceBconv2d's ``padding`` (0 = SAME, 1 = VALID) and ``pad_values``.
        input_tensors, output_tensors: the same tensors with type, shape and
            quantization (empty for hand-written op lists).
    """

    type: str
    inputs: tuple[str | None, ...]
    outputs: tuple[str, ...]
    options: dict = dataclasses.field(default_factory=dict)
    input_tensors: tuple[Tensor | None, ...] = ()
    output_tensors: tuple[Tensor, ...] = ()

    def names(self) -> list[str]:
        """Every ``;``-separated TF op name this op's output tensors carry."""
        return [part for name in self.outputs for part in name.split(";") if part]


def _op_type(model, index: int) -> str:
    code = model.OperatorCodes(index)
    if code.CustomCode():
        return code.CustomCode().decode()
    # Schema >= 3a stores builtins >= 127 only in BuiltinCode; small ones are
    # mirrored in the deprecated int8 field. The larger of the two is the real one.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def read_ops(flatbuffer: bytes) -> list[Op]:
    """Returns the ops of the main subgraph (index 0) in execution order."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)

    def tensor(index: int) -> Tensor | None:
        if index < 0:  # an omitted optional input (e.g. a conv without bias)
            return None
        t = graph.Tensors(index)
        quantization = t.Quantization()
        return Tensor(
            name=t.Name().decode(),
            type=_TYPE_NAMES.get(t.Type(), f"TYPE_{t.Type()}"),
            shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
            scales=quantization.ScaleLength() if quantization is not None else 0,
        )

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        inputs = tuple(tensor(op.Inputs(k)) for k in range(op.InputsLength()))
        outputs = tuple(tensor(op.Outputs(k)) for k in range(op.OutputsLength()))
        ops.append(
            Op(
                type=_op_type(model, op.OpcodeIndex()),
                inputs=tuple(t and t.name for t in inputs),
                outputs=tuple(t.name for t in outputs),
                options=_custom_options(op),
                input_tensors=inputs,
                output_tensors=outputs,
            )
        )
    return ops


def _custom_options(op) -> dict:
    if op.CustomOptionsLength() == 0:
        return {}
    try:
        options = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
    except Exception:  # not a flexbuffer map: options are informative only
        return {}
    return options if isinstance(options, dict) else {}


def bconv_padding(ops: list[Op]) -> dict[str, int]:
    """How the LceBconv2d ops pad: {"same-one": n, "same-zero": n, "valid": n}.

    LCE's optimized ARM kernels run same-one padding (larq ``pad_values=1``)
    directly; same-zero needs an edge-correction pass and cannot fuse a following
    ReLU or write bit-packed output (LCE docs, "Optimizing models for Larq Compute
    Engine": docs.larq.dev/compute-engine/model_optimization_guide).
    """
    counts = collections.Counter()
    for op in ops:
        if op.type == "LceBconv2d":
            if op.options.get("padding") == 1:  # TFLite Padding enum: VALID
                counts["valid"] += 1
            elif op.options.get("pad_values") == 1:
                counts["same-one"] += 1
            else:
                counts["same-zero"] += 1
    return dict(sorted(counts.items()))


def op_counts(ops: list[Op]) -> dict[str, int]:
    """Op type -> count, most frequent first (ties by name)."""
    counts = collections.Counter(op.type for op in ops)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def format_op_table(counts: dict[str, int]) -> str:
    """A two-column Markdown table of op types and counts."""
    rows = ["| op | count |", "|---|---:|"]
    rows += [f"| {op} | {n} |" for op, n in counts.items()]
    return "\n".join(rows)


class FlatbufferError(ValueError):
    """Bytes that are not a complete TFLite model; the message is one line."""


def check_flatbuffer(flatbuffer: bytes) -> None:
    """Raises FlatbufferError unless ``flatbuffer`` is a complete TFLite model.

    TFLite's C++ loader does not verify a flatbuffer before reading it: LCE's
    interpreter (and ``tf.lite.Interpreter``) crash the process with a
    segmentation fault on a truncated file. So the whole model is unpacked here
    first, in Python, where an offset beyond the end is an exception.
    """
    if not flatbuffer:
        raise FlatbufferError("the file is empty")
    if len(flatbuffer) < 8 or not schema.Model.ModelBufferHasIdentifier(flatbuffer, 0):
        raise FlatbufferError(
            "not a TFLite flatbuffer (no 'TFL3' file identifier at byte 4)"
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    except Exception:  # struct.error, ValueError, ...: an offset past the end
        raise FlatbufferError(
            f"truncated or corrupt ({len(flatbuffer):,} bytes that do not hold a "
            "whole model)"
        ) from None
    # Models over 2 GB keep buffers after the flatbuffer, at (offset, size).
    for buffer in model.buffers or ():
        if buffer.offset > 1 and buffer.offset + buffer.size > len(flatbuffer):
            raise FlatbufferError(
                f"truncated (a buffer ends at byte {buffer.offset + buffer.size} of "
                f"{len(flatbuffer)})"
            )
    if not model.subgraphs:
        raise FlatbufferError("a TFLite model without a subgraph")
