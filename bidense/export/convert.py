"""Converting Keras models to TFLite flatbuffers, checked.

Binary models go through LCE's converter (``convert_keras_model``), which turns
larq's sign quantizers and binary convs into ``LceQuantize`` / ``LceBconv2d``.
Full-precision models (the ``binary=False`` twins) go through the standard
``tf.lite.TFLiteConverter`` as the float baseline a user would otherwise ship.
"""

from __future__ import annotations

import logging
import os
import tempfile

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from bidense.export.checks import FloatFallbackError, check_conversion
from bidense.export.flatbuffer import read_ops
from bidense.export.report import ExportReport
from bidense.stats import model_stats
from bidense.training.precision import to_float32

log = logging.getLogger(__name__)


def predicted_size_mib(model: tf.keras.Model) -> float:
    """``bidense.model_stats``' size (binary weights at 1 bit), in MiB."""
    return model_stats(model)["size_mib"]


def predicted_int8_size_mib(model: tf.keras.Model) -> float:
    """:func:`predicted_size_mib` with the float conv/dense kernels at 1 byte.

    What ``export.py --int8`` quantizes; biases, BN parameters and the per-channel
    scales stay 4 bytes, as in the float prediction.
    """
    from bidense.export.int8 import float_layers

    kernels = sum(int(np.prod(layer.kernel.shape)) for layer in float_layers(model))
    return predicted_size_mib(model) - 3 * kernels / 2**20


CONVERTERS = ("lean", "keras")


def _static_input_shape(model: tf.keras.Model) -> tuple[int, ...]:
    """Batch-1 input shape; LCE needs static spatial dims (its models have batch 1)."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(f"{model.name} has {len(shape)} inputs; export needs one.")
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"{model.name} has input shape {shape}; export needs a static size "
            "(build it with input_shape=(height, width, channels), or --input_size)."
        )
    return (1, *shape[1:])


def _lean_saved_model(model: tf.keras.Model, directory: str) -> None:
    """Writes a SavedModel holding only the weights and the serving function.

    ``convert_keras_model`` does ``model.save(dir, save_format="tf")`` and then
    ``convert_saved_model(dir)``. The Keras save also serializes a trace of every
    layer's call, which is ~83 % of the conversion time for bidense models (33 s
    vs 5.5 s for a narrow BinaryDenseNet28 at 32x32) and is not used by the
    converter. Tracking the variables, not the layers, leaves those traces out.
    """
    spec = tf.TensorSpec(_static_input_shape(model), model.inputs[0].dtype)

    @tf.function(input_signature=[spec])
    def serve(images):
        return {"output": model(images, training=False)}

    module = tf.Module()
    module.model_variables = list(model.variables)  # tracked: saved with the graph
    # No gradients: by default the SavedModel also traces and stores the
    # gradient function of every larq sign quantizer (a tf.custom_gradient, one
    # per binary conv: 80 traces in a BinaryDenseNet45), which an inference
    # converter never reads; tracing them is a large part of the save time.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(
        module, directory, signatures={"serving_default": serve}, options=options
    )


def to_lce(
    model: tf.keras.Model, converter: str = "lean", int8_io: bool = False
) -> bytes:
    """LCE flatbuffer of ``model`` (batch 1, float32 input and output).

    Args:
        model: a float32 Keras model with one input of static size.
        converter: "lean" (default) writes a weights-and-signature SavedModel and
            calls ``lce.convert_saved_model``: the same converter and passes as
            ``convert_keras_model``, 6x faster (tests/test_export.py checks both
            give the same ops). "keras" calls ``lce.convert_keras_model`` as is.

        int8_io: int8 model input and output instead of float32; only for a
            model with fake-quant nodes at its input and output (:func:`export_int8`).

    ``target="arm"`` (the default) is the target with LCE's optimized kernels;
    the x86 interpreter runs the same file with reference kernels. No int8
    quantization unless the model carries fake-quant nodes: bidense's float
    layers (stem, transitions, head) stay float32, as in the paper and larq-zoo's
    published LCE numbers; :func:`export_int8` makes them int8.
    """
    io_type = tf.int8 if int8_io else tf.float32
    options = {
        "inference_input_type": io_type,
        "inference_output_type": io_type,
        "target": "arm",
    }
    if converter == "keras":
        return lce.convert_keras_model(model, **options)
    if converter != "lean":
        raise ValueError(
            f"Invalid converter={converter!r}; choose one of {CONVERTERS}."
        )
    if model.dtype_policy.name != "float32":  # as convert_keras_model checks
        raise ValueError(
            f"{model.name} uses {model.dtype_policy.name}; TFLite needs "
            "float32 (rebuild it under the float32 policy)."
        )
    with tempfile.TemporaryDirectory() as directory:
        _lean_saved_model(model, directory)
        return lce.convert_saved_model(directory, **options)


def to_tflite(model: tf.keras.Model) -> bytes:
    """Standard float32 TFLite flatbuffer (no quantization, no LCE ops).

    Uses the same weights-and-signature SavedModel as :func:`to_lce`, so the
    float baseline goes through the same graph export (and skips the same slow
    Keras trace serialization).
    """
    with tempfile.TemporaryDirectory() as directory:
        _lean_saved_model(model, directory)
        return tf.lite.TFLiteConverter.from_saved_model(directory).convert()


def export_model(
    model: tf.keras.Model,
    output: str | os.PathLike | None = None,
    *,
    allow_float_fallback: bool = False,
    converter: str = "lean",
) -> tuple[bytes, ExportReport]:
    """Converts ``model`` with LCE, proves it binary, and writes it to ``output``.

    Args:
        model: a Keras model (bidense or any larq model).
        output: where to write the ``.tflite``; None writes nothing.
        allow_float_fallback: export even when a binary layer stayed float or an
            unexpected op appears (logged as a warning) instead of raising.
        converter: "lean" or "keras", see :func:`to_lce`.

    Returns:
        The flatbuffer and its :class:`ExportReport`.

    Raises:
        FloatFallbackError: naming every binary layer that stayed float and every
            unexpected op, unless ``allow_float_fallback``.
    """
    # A model trained with config.precision="mixed_bfloat16" has float32 variables
    # but bfloat16 layers; LCE's kernels and the float baseline are float32.
    model = to_float32(model)
    flatbuffer = to_lce(model, converter)
    report = check_conversion(
        model, read_ops(flatbuffer), len(flatbuffer), predicted_size_mib(model)
    )
    _finish(model, report, allow_float_fallback, "fully binary")
    if output is not None:
        _write_atomic(output, flatbuffer)
    return flatbuffer, report


def _finish(model, report: ExportReport, allow_float_fallback: bool, what: str):
    """Raises (or with ``allow_float_fallback`` logs) the report's problems."""
    if not report.ok:
        message = f"{model.name} is not {what} after LCE conversion: " + "; ".join(
            report.problems()
        )
        if not allow_float_fallback:
            raise FloatFallbackError(
                message + ". Pass allow_float_fallback=True (export.py: "
                "--allow_float_fallback) to export it anyway."
            )
        log.warning("%s. Exporting anyway (allow_float_fallback).", message)
    if report.size_warning():
        log.warning("%s: %s", model.name, report.size_warning())


def export_int8(
    model: tf.keras.Model,
    calibration_images,
    output: str | os.PathLike | None = None,
    *,
    int8_io: bool = False,
    allow_float_fallback: bool = False,
    converter: str = "lean",
    calibration_source: str = "",
    percentile: float | None = None,
    finetune_steps: int = 0,
    finetune_images=None,
    finetune_learning_rate: float | None = None,
) -> tuple[bytes, ExportReport]:
    """:func:`export_model` with the float layers in int8 (bidense.export.int8).

    Args:
        model: a Keras bidense model (flat functional, no XNOR scaling).
        calibration_images: the model's *training* images (an array, an
            iterable of batches, or a callable returning one), about 1,000;
            they set the int8 ranges. With ``finetune_steps`` they are read
            twice (before and after the fine-tune), so an array or a callable.
        output: where to write the ``.tflite``; None writes nothing.
        int8_io: int8 model input and output (the report gives their scale and
            zero point); default float32, quantized inside the model.
        allow_float_fallback: export even if a binary layer stayed float or an
            op is unexpected (logged). A float layer that is not one int8 op,
            or a conv/fully-connected op that belongs to no float layer, is an
            error all the same: the file would not be the int8 model asked for.
        converter: "lean" or "keras", see :func:`to_lce`.
        calibration_source: what the images are, for the report.
        percentile: the ranges' percentile (default
            ``int8.DEFAULT_PERCENTILE``; 100 = min and max).
        finetune_steps: steps of the quantization-aware fine-tune
            (bidense.export.qat) before the final calibration; 0: none.
        finetune_images: its training images (an array or a callable returning
            an iterable of batches); default: ``calibration_images``.
        finetune_learning_rate: Adam's (default ``qat.DEFAULT_LEARNING_RATE``).

    Raises:
        Int8Error: a model the recipe does not cover (XNOR scaling, nested
            models) or an empty calibration range, naming it.
        FloatFallbackError: naming every float layer that is not one int8 op;
            and every binary layer that is not one LceBconv2d and every
            unexpected op, unless ``allow_float_fallback``.
    """
    from bidense.export import int8 as int8_lib

    model = to_float32(model)
    if percentile is None:
        percentile = int8_lib.DEFAULT_PERCENTILE
    quantized, ranges, count = int8_lib.quantize(
        model, calibration_images, percentile=percentile
    )
    finetuned = ""
    if finetune_steps:
        from bidense.export import qat

        if not (callable(calibration_images) or hasattr(calibration_images, "shape")):
            raise int8_lib.Int8Error(
                "with finetune_steps the calibration images are read more than "
                "once: pass an array or a callable returning the batches"
            )
        if finetune_learning_rate is None:
            finetune_learning_rate = qat.DEFAULT_LEARNING_RATE
        before = qat.divergence(model, qat.simulated(model, ranges), calibration_images)
        tuned, _ = qat.finetune(
            model,
            calibration_images if finetune_images is None else finetune_images,
            ranges,
            finetune_steps,
            finetune_learning_rate,
        )
        # The weights moved: the ranges are calibrated again on the tuned model.
        quantized, ranges, count = int8_lib.quantize(
            tuned, calibration_images, percentile=percentile
        )
        after = qat.divergence(model, qat.simulated(tuned, ranges), calibration_images)
        finetuned = (
            f"{finetune_steps} Adam steps (learning rate {finetune_learning_rate:g}, "
            f"batch {qat.DEFAULT_BATCH_SIZE}) toward the float model's outputs, "
            "int8 weights and activations simulated, BatchNormalization frozen; "
            f"KL divergence of the simulated int8 model from the float model on "
            f"the calibration images: {before:.4g} before, {after:.4g} after"
        )
    flatbuffer = to_lce(quantized, converter, int8_io=int8_io)
    report = check_conversion(
        model,
        read_ops(flatbuffer),
        len(flatbuffer),
        predicted_size_mib(model),
        int8=True,
    )
    report.int8.ranges = ranges
    report.int8.calibration = (
        f"{'min/max' if percentile >= 100 else f'{percentile:g}th percentiles'} "
        f"of {len(ranges)} tensors on {count} "
        f"{calibration_source or 'calibration'} images (inference mode)"
    )
    report.int8.finetune = finetuned
    report.int8.predicted_mib = predicted_int8_size_mib(model)
    if int8_io:
        interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1)
        report.int8.input_quantization = (
            float(interpreter.input_scales[0]),
            int(interpreter.input_zero_points[0]),
        )
        report.int8.output_quantization = (
            float(interpreter.output_scales[0]),
            int(interpreter.output_zero_points[0]),
        )
    if report.int8.problems:
        raise FloatFallbackError(
            f"{model.name} is not int8 after LCE conversion: "
            + "; ".join(report.int8.problems)
        )
    _finish(model, report, allow_float_fallback, "fully binary and int8")
    if output is not None:
        _write_atomic(output, flatbuffer)
    return flatbuffer, report


def _write_atomic(path, data: bytes) -> None:
    """Temporary file in the same directory, then a rename: a full disk or a kill
    leaves the previous file (or none), never a truncated flatbuffer."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tflite.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
