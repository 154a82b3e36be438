"""A short quantization-aware fine-tune before the int8 export.

Calibrated activation ranges alone (:mod:`bidense.export.int8`) leave a binary
network a fraction of a point below its float self: the converter also rounds
the float layers' weights to int8, and a binary network amplifies every small
change wherever a value near zero changes sign downstream (the sign is the
network's activation; Bethge et al. 2019, arXiv:1906.08637, section 3). The
fine-tune trains a copy of the model that sees both roundings, so the weights
adapt to them:

* **Weights** of every float ``Conv2D``/``Dense`` are fake-quantized the way the
  TFLite converter will store them: symmetric, 255 levels (-127..127, zero
  exactly representable), per output channel for convs and per tensor for
  fully-connected layers. The converter folds a following BatchNormalization
  into the conv first; a per-channel symmetric grid is invariant to that
  per-channel scaling, so the rounding seen in training is the one in the file.
  The range is each channel's largest magnitude, recomputed every step and not
  differentiated (the straight-through estimator passes gradients inside it).
* **Activations** go through the calibrated :class:`bidense.export.int8.FakeQuant`
  islands, ranges fixed.
* **BatchNormalization is frozen** (inference mode, statistics and affine
  parameters fixed): a few hundred small-batch steps would make its moving
  statistics noisier, not better, and the activation ranges were calibrated
  with them.
* **The target is the float model itself** (self-distillation: the KL divergence
  from its softmax): the fine-tune recovers the selected float model's
  behaviour under int8 rounding, needs no labels, and cannot move the model
  toward its training labels beyond what the float model learned.

Only the weights come back: the returned float model is then calibrated and
converted as any other (:func:`bidense.export.convert.export_int8`), and the
converter's own int8 weights equal the fake-quantized ones of the fine-tune.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from bidense.export import int8

DEFAULT_LEARNING_RATE = 1e-5
DEFAULT_BATCH_SIZE = 32


def quantized_kernel(kernel: tf.Tensor, per_channel: bool) -> tf.Tensor:
    """``kernel`` rounded to TFLite's int8 weight grid (symmetric, narrow range).

    Per channel: one scale per slice of the last axis (a conv's output
    channels); else one scale for the whole tensor. Gradients pass straight
    through; the range itself is not differentiated.
    """
    if per_channel:
        axes = list(range(kernel.shape.rank - 1))
        bound = tf.stop_gradient(tf.reduce_max(tf.abs(kernel), axis=axes))
        bound = tf.maximum(bound, 1e-12)  # an all-zero channel: any range works
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(
            kernel, -bound, bound, num_bits=8, narrow_range=True
        )
    bound = tf.maximum(tf.stop_gradient(tf.reduce_max(tf.abs(kernel))), 1e-12)
    return tf.quantization.fake_quant_with_min_max_vars(
        kernel, -bound, bound, num_bits=8, narrow_range=True
    )


class _QuantizedWeightsConv2D(tf.keras.layers.Conv2D):
    """A ``Conv2D`` computing with its kernel on the int8 grid (per channel)."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, quantized_kernel(kernel, True))


class _QuantizedWeightsDense(tf.keras.layers.Dense):
    """A ``Dense`` computing with its kernel on the int8 grid (per tensor)."""

    def call(self, inputs):
        kernel = quantized_kernel(self.kernel, per_channel=False)
        outputs = tf.tensordot(inputs, kernel, [[inputs.shape.rank - 1], [0]])
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)


def _with_quantized_weights(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of ``model`` (same weights) whose float layers use int8 weights."""
    float_names = {layer.name for layer in int8.float_layers(model)}

    def clone(layer):
        config = layer.get_config()
        if layer.name in float_names:
            if isinstance(layer, tf.keras.layers.Dense):
                return _QuantizedWeightsDense.from_config(config)
            if type(layer) is not tf.keras.layers.Conv2D:
                raise int8.Int8Error(
                    f"the int8 fine-tune handles Conv2D and Dense; {layer.name!r} "
                    f"is a {type(layer).__name__}"
                )
            return _QuantizedWeightsConv2D.from_config(config)
        return layer.__class__.from_config(config)

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def simulated(
    model: tf.keras.Model, ranges: dict[str, tuple[float, float]]
) -> tf.keras.Model:
    """A Keras copy of ``model`` that rounds as its int8 file will: int8 weights
    in the float layers, the calibrated activation ``ranges`` around them."""
    return int8.with_ranges(_with_quantized_weights(model), ranges)


def divergence(model: tf.keras.Model, other: tf.keras.Model, images) -> float:
    """Mean KL divergence of ``other``'s outputs from ``model``'s over ``images``
    (an array, or a callable returning an iterable of batches)."""
    kl = tf.keras.losses.KLDivergence(reduction="sum")
    total, count = 0.0, 0
    for batch in int8.image_batches(images, 256):
        total += float(kl(model(batch, training=False), other(batch, training=False)))
        count += len(batch)
    return total / max(count, 1)


def _cycle(images, steps: int) -> Iterator[np.ndarray]:
    """``steps`` batches from ``images`` (an array, or a callable giving an
    iterable of batches), starting over when it runs out."""
    given = 0
    while given < steps:
        start = given
        for batch in int8.image_batches(images, DEFAULT_BATCH_SIZE):
            yield batch
            given += 1
            if given == steps:
                return
        if given == start:
            raise int8.Int8Error("no images for the int8 fine-tune")


def finetune(
    model: tf.keras.Model,
    images,
    ranges: dict[str, tuple[float, float]],
    steps: int,
    learning_rate: float = DEFAULT_LEARNING_RATE,
) -> tuple[tf.keras.Model, list[float]]:
    """The float ``model`` with weights fine-tuned under int8 rounding.

    Args:
        model: a float32 flat functional bidense model (unchanged).
        images: training images: an array, or a callable returning an iterable
            of batches (called again when a pass ends); no labels are used.
        ranges: the calibrated activation ranges (:func:`int8.calibrate`).
        steps: optimizer steps (batches).
        learning_rate: Adam's, constant.

    Returns:
        (a float copy of ``model`` with the fine-tuned weights, the loss of
        every step).
    """
    if steps < 1:
        raise int8.Int8Error(f"the int8 fine-tune needs steps >= 1, got {steps}")
    student = simulated(model, ranges)
    for layer in student.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.trainable = False  # Keras 2: also runs it in inference mode
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    kl = tf.keras.losses.KLDivergence()

    @tf.function(reduce_retracing=True)
    def step(x):
        target = model(x, training=False)
        with tf.GradientTape() as tape:
            loss = kl(target, student(x, training=True))
        variables = student.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    losses = [float(step(tf.constant(batch))) for batch in _cycle(images, steps)]
    tuned = tf.keras.models.clone_model(model)
    by_name = {layer.name: layer for layer in student.layers}
    for layer in tuned.layers:
        layer.set_weights(by_name[layer.name].get_weights())
    return tuned, losses
