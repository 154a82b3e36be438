"""LCE interpreter vs Keras: do the converted model and the Keras model agree?

Tolerance (why it is not 1e-6): LCE folds BatchNorm into the binary conv's
multiplier/bias and into the threshold of the next sign, and sums in a different
order than TensorFlow. A float difference of ~1e-6 just before a sign flips that
bit, and a flipped bit changes the next binary conv's output by a whole
+-2 * weight, so deep binary nets amplify rounding into visible differences. We
therefore ask for what a user sees: the same top-1 class on (almost) every image
and softmax outputs close on average, not bit-exact logits (constants below). LCE's own
end-to-end test does the same (argmax plus loose per-model tolerances).
"""

from __future__ import annotations

import dataclasses

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

# The tolerance, measured (docs/deployment.md): correct conversions of
# BN-calibrated random-weight models agree on >= 0.97 of images with mean
# |diff| <= 0.004 (ResNetE18, whose residual stream reaches the signs without a BN,
# flips the most bits; the DenseNets stay below 1e-6), while a wrong conversion
# (pad_value 1 flatbuffer vs pad_value 0 Keras, same weights) agrees on 0.47 with
# mean |diff| 0.042.
# Same top-1 class on at least this fraction of images: a flipped bit may change a
# near-tie, not the model's decisions in general.
MIN_ARGMAX_AGREEMENT = 0.9
# ...where a swap between two classes that Keras itself scores within this much
# of each other counts as agreement: an untrained 1000-class model outputs an
# almost flat softmax (~1e-3 per class), whose top-1 is a near-tie that one
# flipped bit may swap (measured: ResNetE34 at 224, 2 of 8 Fashion-MNIST images
# swapped at max |diff| 7e-3). A trained model's top-1 is rarely that close.
TIE_TOLERANCE = 0.01
# Mean |softmax difference| over images and classes: 10x below the wrong
# conversion above, 2.5x above the worst correct one.
MAX_MEAN_ABS_DIFF = 0.01
# Largest single softmax difference: flips may move one near-tie image a lot
# (0.14 measured on ResNetE18), but not to a different answer with certainty.
MAX_ABS_DIFF = 0.25


@dataclasses.dataclass(frozen=True)
class Parity:
    """Agreement of LCE interpreter and Keras outputs on ``n`` images."""

    n: int
    argmax_agreement: float  # counting near-ties (TIE_TOLERANCE) as agreement
    strict_agreement: float  # identical top-1 class
    max_abs_diff: float
    mean_abs_diff: float

    @property
    def ok(self) -> bool:
        return (
            self.argmax_agreement >= MIN_ARGMAX_AGREEMENT
            and self.mean_abs_diff <= MAX_MEAN_ABS_DIFF
            and self.max_abs_diff <= MAX_ABS_DIFF
        )

    @property
    def top1_ok(self) -> bool:
        """The top-1 criterion alone: how an int8 file is held to the float model,
        whose outputs int8 rounding moves by more than the float tolerance."""
        return self.argmax_agreement >= MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        return (
            f"{self.n} images: top-1 agreement {self.argmax_agreement:.3f} "
            f"(strict {self.strict_agreement:.3f}), "
            f"max |diff| {self.max_abs_diff:.2e}, mean |diff| {self.mean_abs_diff:.2e}"
        )


def random_images(n: int, shape, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal images of ``shape`` (height, width, channels)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def fashion_mnist_images(n: int, shape, offset: int = 0) -> np.ndarray:
    """``n`` standardized Fashion-MNIST test images resized to ``shape``, from TFDS.

    Grayscale is repeated over the channels, so any (h, w, c) model input works:
    real images for tests and benchmarks of random-weight models. An export
    checks on the model's own data instead (bidense.export.images).
    """
    from bidense.export.images import dataset_images

    return dataset_images("fashion_mnist", "test", n, shape, offset=offset)


def calibrate_batchnorm(model: tf.keras.Model, images: np.ndarray) -> None:
    """Sets every BN's moving mean/variance to its batch statistics on ``images``.

    Random-init BN stats (mean 0, variance 1) make activations of an untrained
    deep net blow up or vanish, so parity on them proves little. One forward pass
    in training mode with momentum 0 replaces the moving statistics by those of
    the batch, layer by layer, as a short training run would.
    """
    bns = [
        layer
        for layer in model.submodules
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]
    momenta = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0
        model(images, training=True)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum


def predict_float(interpreter, images: np.ndarray) -> np.ndarray:
    """``interpreter.predict`` with float images and outputs, whatever the file's
    I/O type: an int8 input (``export.py --int8_io``) is fed
    ``clip(round(x / scale) + zero_point, -128, 127)`` and an int8 output is
    returned as ``(y - zero_point) * scale``."""
    if interpreter.input_types[0] == np.int8:
        scale, zero = interpreter.input_scales[0], interpreter.input_zero_points[0]
        images = np.clip(np.round(images / scale) + zero, -128, 127).astype(np.int8)
    outputs = interpreter.predict(images)
    if interpreter.output_types[0] == np.int8:
        scale, zero = interpreter.output_scales[0], interpreter.output_zero_points[0]
        outputs = (outputs.astype(np.float32) - zero) * scale
    return outputs


def lce_predict(flatbuffer: bytes, images: np.ndarray, num_threads: int = 1):
    """Runs the LCE interpreter one image at a time (converted models have batch
    1), on float images (:func:`predict_float`)."""
    # ``testing`` is an attribute of the package (the tflite interpreter module),
    # not an importable submodule.
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=num_threads)
    return predict_float(interpreter, images)


def compare(model: tf.keras.Model, flatbuffer: bytes, images: np.ndarray) -> Parity:
    """LCE interpreter vs Keras (inference mode) on ``images``."""
    # A direct call, not model.predict: no tf.function tracing for a few images.
    expected = np.concatenate(
        [
            model(images[i : i + 16], training=False).numpy()
            for i in range(0, len(images), 16)
        ]
    )
    actual = lce_predict(flatbuffer, images)
    diff = np.abs(actual - expected)
    # Keras' score for the class LCE picked, against Keras' own best score.
    lce_top1 = actual.argmax(-1)
    picked = np.take_along_axis(expected, lce_top1[:, None], axis=-1)[:, 0]
    near_tie = picked >= expected.max(-1) - TIE_TOLERANCE
    return Parity(
        n=len(images),
        argmax_agreement=float(np.mean(near_tie)),
        strict_agreement=float(np.mean(lce_top1 == expected.argmax(-1))),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
    )
