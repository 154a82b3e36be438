"""Binary layer settings shared by every bidense model.

Bethge et al. 2019 (arXiv:1906.08637), section 3: a binary layer is
``BN -> sign -> binary conv`` with no bias. Every switch the paper ablates that
acts on a single layer lives here, in :class:`BinarySettings`, so that the
architectures (``bidense.models``) only say *where* binary convolutions go.
"""

from __future__ import annotations

import dataclasses

import larq as lq
import tensorflow as tf

SCALINGS = ("none", "xnor", "magnitude")
GRADIENTS = ("ste", "approx_sign")
# Float nonlinearities for the full-precision twin (binary=False), put where the
# sign activation of the binary model is. "linear" is only there to reproduce the
# straw man: without a nonlinearity, ResNetE and BinaryDenseNet blocks are almost
# linear maps.
FP_ACTIVATIONS = ("relu", "hard_tanh", "tanh", "linear")
# -1 is the authors' BMXNet padding, 0 larq-zoo's, +1 what LCE needs to fuse ops.
PAD_VALUES = (-1.0, 0.0, 1.0)


def check_choice(argument: str, value, choices) -> None:
    """Raises a ValueError naming ``argument`` and its valid ``choices``."""
    if value not in choices:
        raise ValueError(
            f"Invalid {argument}={value!r}; choose one of: "
            f"{', '.join(repr(c) for c in choices)}."
        )


@tf.keras.utils.register_keras_serializable(package="bidense")
class XnorActivationScale(tf.keras.layers.Layer):
    """Multiplies a binary conv's output by XNOR-Net's activation-magnitude map K.

    XNOR-Net (Rastegari et al. 2016, section 3.2) approximates the input of a
    binary conv by ``sign(x) * K``, where ``K`` is the channel mean of ``|x|``
    averaged over each k x k window. Bethge et al. 2019 (table 1, "scaling") use it,
    with a stop-gradient, as their ablation of scaling factors; this layer is that
    ablation. Inputs: ``[conv_input, conv_output]``.
    """

    def __init__(
        self, kernel_size: int, strides: int = 1, dilation_rate: int = 1, **kwargs
    ):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)

    def call(self, inputs):
        conv_input, conv_output = inputs
        magnitude = tf.reduce_mean(tf.abs(conv_input), axis=-1, keepdims=True)
        box = tf.ones((self.kernel_size, self.kernel_size, 1, 1), magnitude.dtype)
        box /= float(self.kernel_size**2)
        k_map = tf.nn.conv2d(
            magnitude,
            box,
            strides=self.strides,
            padding="SAME",
            dilations=self.dilation_rate,
        )
        # K is a statistic of the input, not a path for gradients (as in the paper).
        return conv_output * tf.cast(tf.stop_gradient(k_map), conv_output.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "dilation_rate": self.dilation_rate,
        }


@tf.keras.utils.register_keras_serializable(package="bidense")
class HardTanh(tf.keras.layers.Layer):
    """``clip(x, -1, 1)``: the float function whose gradient sign's STE uses.

    A layer rather than ``Activation(larq.activations.hard_tanh)``: Keras 2.15 writes
    custom activation functions into .h5 files in a form it cannot read back.
    """

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)


@tf.keras.utils.register_keras_serializable(package="bidense")
class PaddedQuantConv2D(lq.layers.QuantConv2D):
    """larq's ``QuantConv2D``, trained without its ``Pad`` op when ``pad_values != 0``.

    larq implements ``padding="same"`` with ``pad_values=v != 0`` as ``tf.pad`` with
    v, then a "valid" convolution. In training, that Pad and its gradient (a
    Slice of the input gradient) copy every activation twice: 12 % of
    BinaryResNetE18's CPU training step (docs/performance.md measures it). A
    convolution is linear, so

        conv_valid(pad(q, v), w) = conv_same(q, w) + conv_valid(pad(0, v), w),

    and the second term does not depend on the batch: one batch-1 convolution of a
    border of v's. With +-1 inputs and weights every partial sum is an integer, so
    the forward pass is bit-identical to larq's; gradients agree to float
    round-off, from a different summation order (tests/test_layers.py).

    Only ``training=True`` takes this path. Inference, and so the LCE export,
    runs larq's own ``call``: the converter needs its Pad to fold ``pad_values``
    into LceBconv2d.
    """

    def call(self, inputs, training=None):
        if (
            training is not True  # Python True: Keras passes it through in fit
            or self._is_native_padding
            or self.use_bias
            or self.activation is not tf.keras.activations.linear
            or not inputs.shape[1:].is_fully_defined()
        ):
            return super().call(inputs)
        return self._call_without_pad(inputs)

    def _call_without_pad(self, inputs):
        if self.input_quantizer:
            inputs = self.input_quantizer(inputs)
        with lq.context.quantized_scope(True):
            kernel = tf.convert_to_tensor(self.kernel)  # quantized once, used twice
        outputs = self.convolution_op(inputs, kernel)  # zero "same" padding
        border = tf.pad(
            tf.zeros((1, *inputs.shape[1:]), inputs.dtype),
            self._get_padding_same(inputs),
            constant_values=self.pad_values,
        )
        with lq.utils.patch_object(self, "padding", "valid"):
            correction = self.convolution_op(border, kernel)
        return _add_to_every_example(outputs, correction)


@tf.custom_gradient
def _add_to_every_example(outputs, correction):
    """``outputs + correction`` for a batch-1 ``correction``, with a faster gradient.

    The gradient of the broadcast sums the upstream gradient over the batch. TF's
    own gradient does it with a ``Sum`` over the leading axis, a slow reduction
    on CPU: 710 ms of op time in a 6.8 s BinaryDenseNet28 training step
    (docs/performance.md, run 3). The same sum as a ones-vector matmul runs in the
    matmul kernel. Only the summation order changes (float round-off).
    """

    def grad(upstream):
        batch = tf.shape(upstream)[0]
        rows = tf.reshape(upstream, (batch, -1))
        summed = tf.matmul(tf.ones((1, batch), upstream.dtype), rows)
        return upstream, tf.reshape(summed, tf.shape(correction))

    return outputs + correction, grad


def float_activation(activation: str, name: str):
    """The full-precision twin's nonlinearity layer."""
    if activation == "hard_tanh":
        return HardTanh(name=name)
    return tf.keras.layers.Activation(activation, name=name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BinarySettings:
    """How every binary convolution of a model is built.

    ``clip_value`` has no default here: each model family sets its own
    (``bidense.model_switches(name)["clip_value"]``, larq-zoo's values).

    Attributes:
        binary: False builds the full-precision twin: the same graph with plain
            float convolutions, no quantizers or weight constraints, and
            ``fp_activation`` where the sign activation was.
        fp_activation: the twin's float nonlinearity (ignored when binary).
        scaling: "none" (the paper's recommendation), "xnor" (weights scaled by
            the per-output-channel mean |W| and outputs by the activation map K, the
            paper's scaling ablation) or "magnitude" (Bi-Real's weight scaling only,
            larq's ``MagnitudeAwareSign``).
        gradient: "ste" (sign; gradient passed where |x| <= clip_value) or
            "approx_sign" (Bi-Real's piecewise-linear ApproxSign; larq fixes its
            support to |x| <= 1, so clip_value then acts on the weights only).
        clip_value: weights are clipped to [-clip_value, clip_value], and the
            straight-through estimators cancel gradients beyond it.
        pad_value: value the binary convs pad with. 1.0 lets LCE fuse the
            following ops and use its fast kernels (no edge correction); 0.0 is
            larq-zoo's (needed for its weights); -1.0 is the authors' BMXNet value.
    """

    binary: bool = True
    fp_activation: str = "relu"
    scaling: str = "none"
    gradient: str = "ste"
    clip_value: float
    pad_value: float = 1.0

    def __post_init__(self):
        if not isinstance(self.binary, bool):
            raise ValueError(f"Invalid binary={self.binary!r}; use True or False.")
        check_choice("fp_activation", self.fp_activation, FP_ACTIVATIONS)
        check_choice("scaling", self.scaling, SCALINGS)
        check_choice("gradient", self.gradient, GRADIENTS)
        check_choice("pad_value", self.pad_value, PAD_VALUES)
        if (
            isinstance(self.clip_value, bool)
            or not isinstance(self.clip_value, int | float)
            or not self.clip_value > 0
        ):
            raise ValueError(
                f"Invalid clip_value={self.clip_value!r}; use a positive number "
                "(each model's default, larq-zoo's, is in bidense.model_switches)."
            )

    # -- quantizers (fresh objects per layer: larq quantizers are Keras layers) --

    def input_quantizer(self):
        if self.gradient == "approx_sign":
            return lq.quantizers.ApproxSign()
        return lq.quantizers.SteSign(clip_value=self.clip_value)

    def kernel_quantizer(self):
        if self.scaling == "none":
            return lq.quantizers.SteSign(clip_value=self.clip_value)
        # Per-output-channel mean |W| times sign(W): XNOR-Net's alpha and Bi-Real's
        # magnitude-aware weights have the same forward pass.
        return lq.quantizers.MagnitudeAwareSign(clip_value=self.clip_value)

    # -- the building block --------------------------------------------------

    def conv(
        self,
        x,
        filters: int,
        kernel_size: int,
        *,
        strides: int = 1,
        dilation_rate: int = 1,
        kernel_initializer: str = "glorot_normal",
        name: str,
    ):
        """Applies ``sign -> binary conv`` (or its float twin) to ``x``.

        The caller puts the BatchNormalization in front, as the paper does.
        """
        # 1x1 convs need no padding; "valid" keeps them plain for LCE.
        padding = "same" if kernel_size > 1 else "valid"
        if not self.binary:
            y = float_activation(self.fp_activation, f"{name}_act")(x)
            return tf.keras.layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                dilation_rate=dilation_rate,
                padding=padding,
                use_bias=False,
                kernel_initializer=kernel_initializer,
                name=name,
            )(y)
        # Non-zero padding trains faster without its Pad op (PaddedQuantConv2D);
        # zero padding keeps larq's class, the same graph as larq-zoo's.
        pad_values = self.pad_value if padding == "same" else 0.0
        conv_class = PaddedQuantConv2D if pad_values != 0.0 else lq.layers.QuantConv2D
        y = conv_class(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding=padding,
            pad_values=pad_values,
            input_quantizer=self.input_quantizer(),
            kernel_quantizer=self.kernel_quantizer(),
            kernel_constraint=lq.constraints.WeightClip(clip_value=self.clip_value),
            kernel_initializer=kernel_initializer,
            use_bias=False,
            name=name,
        )(x)
        if self.scaling == "xnor":
            y = XnorActivationScale(
                kernel_size, strides, dilation_rate, name=f"{name}_xnor_scale"
            )([x, y])
        return y
