"""Export to Larq Compute Engine, with proof that every binary layer is binary.

    >>> from bidense import export
    >>> flatbuffer, report = export.export_model(model, "model.tflite")
    >>> print(report.to_markdown())          # op table, bconv check, size
    >>> export.compare(model, flatbuffer, images)   # LCE interpreter vs Keras

See docs/deployment.md for measured op tables, sizes and latencies.
"""

from bidense.export.checks import (
    EXPECTED_OPS,
    FloatFallbackError,
    check_conversion,
    is_binary_conv,
    is_binary_layer,
)
from bidense.export.convert import export_model, predicted_size_mib, to_lce, to_tflite
from bidense.export.flatbuffer import Op, format_op_table, op_counts, read_ops
from bidense.export.parity import (
    Parity,
    calibrate_batchnorm,
    compare,
    fashion_mnist_images,
    random_images,
)
from bidense.export.report import ExportReport

__all__ = [
    "EXPECTED_OPS",
    "ExportReport",
    "FloatFallbackError",
    "Op",
    "Parity",
    "calibrate_batchnorm",
    "check_conversion",
    "compare",
    "export_model",
    "fashion_mnist_images",
    "format_op_table",
    "is_binary_conv",
    "is_binary_layer",
    "op_counts",
    "predicted_size_mib",
    "random_images",
    "read_ops",
    "to_lce",
    "to_tflite",
]
