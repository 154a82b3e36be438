"""What an LCE conversion produced, and its Markdown rendering.

:func:`bidense.export.checks.check_conversion` fills an :class:`ExportReport`;
this module only judges and renders it (problems, size warning, op table).
"""

from __future__ import annotations

import dataclasses

from bidense.export.flatbuffer import format_op_table

# A file this much larger than the predicted size means float weights where binary
# ones were expected (larq/compute-engine#744: 25.6 MB instead of 5.4 MB).
SIZE_RATIO_WARNING = 1.25
# Plus fixed slack for what the prediction leaves out: flatbuffer metadata, about
# 200 bytes per op and tensor (names, shapes), which dominates tiny test models.
SIZE_SLACK_BYTES = 64 * 1024


@dataclasses.dataclass
class Int8Report:
    """The int8 part of an export (export.py --int8).

    Attributes:
        layers: per float layer: (name, op, input, weights, bias, output types).
        problems: one line per float layer that is not one int8 op, and per
            conv/fully-connected op that belongs to no float layer.
        int8_ops: op type -> count of float layers that became that int8 op.
        ranges: fake-quant point (the layer whose output it follows) -> (min, max).
        calibration: where the ranges came from, e.g. "1000 images of ...".
        finetune: the quantization-aware fine-tune before calibration, if any.
        predicted_mib: the size with float conv/dense kernels at 1 byte.
        input_quantization, output_quantization: (scale, zero point) of an int8
            model input/output (--int8_io), else None: float in and out.
    """

    layers: list[tuple[str, str, str, str, str, str]]
    problems: list[str]
    int8_ops: dict[str, int]
    ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    calibration: str = ""
    finetune: str = ""
    predicted_mib: float | None = None
    input_quantization: tuple[float, int] | None = None
    output_quantization: tuple[float, int] | None = None

    def to_markdown(self) -> str:
        status = (
            "every float layer is one int8 op" if not self.problems else "NOT all int8"
        )
        counts = ", ".join(f"{op} {n}" for op, n in self.int8_ops.items()) or "none"
        lines = [
            f"### int8: {status}",
            "",
            f"- int8 ops for the {len(self.layers)} float layers: {counts}",
        ]
        if self.calibration:
            lines.append(f"- ranges: {self.calibration}")
        if self.finetune:
            lines.append(f"- int8 fine-tune: {self.finetune}")
        for label, q in (
            ("input", self.input_quantization),
            ("output", self.output_quantization),
        ):
            if q is not None:
                lines.append(
                    f"- int8 {label}: scale {q[0]:.6g}, zero point {q[1]} "
                    + (
                        "(x_int8 = clip(round(x / scale) + zero_point, -128, 127))"
                        if label == "input"
                        else "(y = (y_int8 - zero_point) * scale)"
                    )
                )
        lines += [f"- PROBLEM: {p}" for p in self.problems]
        lines += [
            "",
            "| float layer | op | input | weights | bias | output |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {' | '.join(row)} |" for row in self.layers]
        if self.ranges:
            lines += ["", "| fake-quant after | min | max |", "|---|---:|---:|"]
            lines += [
                f"| {name} | {lo:.4g} | {hi:.4g} |"
                for name, (lo, hi) in self.ranges.items()
            ]
        return "\n".join(lines)


@dataclasses.dataclass
class ExportReport:
    """What a conversion produced, and whether every binary layer is binary.

    Attributes:
        model_name: the Keras model's name.
        op_counts: op type -> count in the flatbuffer.
        binary_convs: number of ``QuantConv2D`` layers with an input quantizer.
        binary_layers: names of all larq layers with an input quantizer.
        bconv_ops: number of ``LceBconv2d`` ops.
        fallbacks: (binary layer, what it became) for each layer without a bconv.
        unexpected: (op type, tensor name, reason) for ops outside EXPECTED_OPS.
        float_layers: (layer, class, why it is float, its op types) per float layer.
        file_bytes: size of the flatbuffer.
        predicted_mib: ``bidense.model_stats`` size (1-bit binary weights), if known.
        bconv_padding: LceBconv2d count per padding kind (see flatbuffer.py).
        int8: the int8 check of an int8 export, else None.
    """

    model_name: str
    op_counts: dict[str, int]
    binary_convs: int
    binary_layers: list[str]
    bconv_ops: int
    fallbacks: list[tuple[str, str]]
    unexpected: list[tuple[str, str, str]]
    float_layers: list[tuple[str, str, str, str]]
    file_bytes: int
    predicted_mib: float | None = None
    bconv_padding: dict[str, int] = dataclasses.field(default_factory=dict)
    int8: Int8Report | None = None

    @property
    def ok(self) -> bool:
        """True when every binary layer is one LceBconv2d and no op is unexpected
        (and, for an int8 export, every float layer one int8 op)."""
        return (
            not self.fallbacks
            and not self.unexpected
            and self.bconv_ops == len(self.binary_layers)
            and not (self.int8 and self.int8.problems)
        )

    @property
    def file_mib(self) -> float:
        return self.file_bytes / 2**20

    def problems(self) -> list[str]:
        """One line per reason the model is not fully binary."""
        lines = []
        if self.bconv_ops != len(self.binary_layers):
            lines.append(
                f"{self.bconv_ops} LceBconv2d ops for {len(self.binary_layers)} binary "
                f"layers ({self.binary_convs} binary convs)"
            )
        lines += [
            f"binary layer {n!r} stayed float: {what}" for n, what in self.fallbacks
        ]
        lines += [
            f"unexpected op {t} at {name!r}: {why}" for t, name, why in self.unexpected
        ]
        if self.int8:
            lines += self.int8.problems
        return lines

    @property
    def expected_mib(self) -> float | None:
        """The prediction the file is held to: int8 when it is an int8 export."""
        if self.int8 and self.int8.predicted_mib:
            return self.int8.predicted_mib
        return self.predicted_mib

    def size_warning(self) -> str | None:
        expected = self.expected_mib
        if (
            expected
            and self.file_bytes
            > SIZE_RATIO_WARNING * expected * 2**20 + SIZE_SLACK_BYTES
        ):
            ratio = self.file_mib / expected
            return (
                f"file is {self.file_mib:.2f} MiB, {ratio:.1f}x the predicted "
                f"{expected:.2f} MiB: weights stayed float"
            )
        return None

    def to_markdown(self) -> str:
        """The full human-readable report (op table, check, size, float layers)."""
        if not self.ok:
            status = "NOT fully binary" + (" and int8" if self.int8 else "")
        elif self.int8:
            status = "OK: every binary layer is an LceBconv2d, every float layer int8"
        else:
            status = "OK: every binary layer is an LceBconv2d"
        predicted = (
            f" (model_stats predicts {self.predicted_mib:.2f} MiB, "
            f"ratio {self.file_mib / self.predicted_mib:.3f})"
            if self.predicted_mib
            else ""
        )
        if self.int8 and self.int8.predicted_mib:
            predicted = (
                f" (model_stats predicts {self.predicted_mib:.2f} MiB in float, "
                f"{self.int8.predicted_mib:.2f} MiB with int8 float layers, "
                f"ratio {self.file_mib / self.int8.predicted_mib:.3f})"
            )
        lines = [
            f"## {self.model_name}: {status}",
            "",
            f"- LceBconv2d ops: {self.bconv_ops}; binary layers in Keras: "
            f"{len(self.binary_layers)} ({self.binary_convs} binary convs)",
            f"- file: {self.file_bytes:,} bytes = {self.file_mib:.2f} MiB{predicted}",
        ]
        if self.bconv_padding:
            padding = ", ".join(f"{k} {n}" for k, n in self.bconv_padding.items())
            lines.append(f"- LceBconv2d padding: {padding}")
            if self.bconv_padding.get("same-zero"):
                lines.append(
                    "- NOTE: same-zero padding (pad_value=0) runs on ARM with an "
                    "edge-correction pass and no fused ReLU/bit-packed output; "
                    "pad_value=1 avoids both"
                )
        lines += [f"- PROBLEM: {p}" for p in self.problems()]
        if self.size_warning():
            lines.append(f"- WARNING: {self.size_warning()}")
        lines += ["", format_op_table(self.op_counts), ""]
        if self.float_layers:
            lines += ["| float layer | class | why float | ops |", "|---|---|---|---|"]
            lines += [
                f"| {n} | {c} | {why} | {o} |" for n, c, why, o in self.float_layers
            ]
        if self.int8:
            lines += ["", self.int8.to_markdown()]
        return "\n".join(lines)
