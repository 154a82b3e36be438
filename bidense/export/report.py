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

    @property
    def ok(self) -> bool:
        """True when every binary layer is one LceBconv2d and no op is unexpected."""
        return (
            not self.fallbacks
            and not self.unexpected
            and self.bconv_ops == len(self.binary_layers)
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
        return lines

    def size_warning(self) -> str | None:
        if (
            self.predicted_mib
            and self.file_bytes
            > SIZE_RATIO_WARNING * self.predicted_mib * 2**20 + SIZE_SLACK_BYTES
        ):
            ratio = self.file_mib / self.predicted_mib
            return (
                f"file is {self.file_mib:.2f} MiB, {ratio:.1f}x the predicted "
                f"{self.predicted_mib:.2f} MiB: weights stayed float"
            )
        return None

    def to_markdown(self) -> str:
        """The full human-readable report (op table, check, size, float layers)."""
        status = (
            "OK: every binary layer is an LceBconv2d" if self.ok else "NOT fully binary"
        )
        predicted = (
            f" (model_stats predicts {self.predicted_mib:.2f} MiB, "
            f"ratio {self.file_mib / self.predicted_mib:.3f})"
            if self.predicted_mib
            else ""
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
        return "\n".join(lines)
