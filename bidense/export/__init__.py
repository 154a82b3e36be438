"""Export to Larq Compute Engine, with proof that every binary layer is binary.

    >>> from bidense import export
    >>> flatbuffer, report = export.export_model(model, "model.tflite")
    >>> print(report.to_markdown())          # op table, bconv check, size
    >>> export.compare(model, flatbuffer, images)   # LCE interpreter vs Keras
    >>> data = export.model_data(model, dataset="fashion_mnist")  # its own images
    >>> flatbuffer, report = export.export_int8(model, data.train_images(1000))

See docs/deployment.md for measured op tables, sizes and latencies.
"""

from bidense.export.checks import (
    EXPECTED_OPS,
    FloatFallbackError,
    check_conversion,
    check_int8,
    is_binary_conv,
    is_binary_layer,
)
from bidense.export.convert import (
    export_int8,
    export_model,
    predicted_int8_size_mib,
    predicted_size_mib,
    to_lce,
    to_tflite,
)
from bidense.export.flatbuffer import Op, Tensor, format_op_table, op_counts, read_ops
from bidense.export.images import ExportData, dataset_images, model_data
from bidense.export.int8 import FakeQuant, Int8Error
from bidense.export.parity import (
    Parity,
    calibrate_batchnorm,
    compare,
    fashion_mnist_images,
    random_images,
)
from bidense.export.report import ExportReport, Int8Report

__all__ = [
    "EXPECTED_OPS",
    "ExportData",
    "ExportReport",
    "FakeQuant",
    "FloatFallbackError",
    "Int8Error",
    "Int8Report",
    "Op",
    "Parity",
    "Tensor",
    "calibrate_batchnorm",
    "check_conversion",
    "check_int8",
    "compare",
    "dataset_images",
    "export_int8",
    "export_model",
    "fashion_mnist_images",
    "format_op_table",
    "is_binary_conv",
    "is_binary_layer",
    "model_data",
    "op_counts",
    "predicted_int8_size_mib",
    "predicted_size_mib",
    "random_images",
    "read_ops",
    "to_lce",
    "to_tflite",
]
