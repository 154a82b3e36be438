"""Model size and operation counts with the paper's conventions.

Bethge et al. 2019 (arXiv:1906.08637; the authors' ``print_summary`` in
hpi-xnor/BMXNet-v2, ``python/mxnet/visualization.py``), following Bi-Real Net:
- size: binary weights at 1 bit, every other parameter at 32 bit, in MiB
  (written "MB" in the paper); BatchNormalization counts 2 parameters per channel
  (its scale and offset; the moving statistics fold into them at inference);
- FLOPs: multiply-accumulates of full-precision convolutions,
  ``output positions x C_in x k^2 x C_out / groups``;
- BOPs: the same count for binary convolutions (binary inputs and weights);
- OPs = FLOPs + BOPs / 64; the final fully-connected layer is excluded.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bidense.layers import XnorActivationScale

MIB = 2**20


def _is_binary(quantizer) -> bool:
    return getattr(quantizer, "precision", None) == 1


def _flat_layers(model):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def _output_positions(layer) -> int:
    shape = layer.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    height, width = shape[1], shape[2]
    if height is None or width is None:
        raise ValueError(
            f"model_stats needs a static input size; layer {layer.name} has output "
            f"shape {shape}. Build the model with input_shape=(height, width, C)."
        )
    return height * width


def _conv_macs(layer) -> int:
    kernel = layer.kernel.shape  # (kh, kw, C_in / groups, C_out)
    return _output_positions(layer) * int(np.prod(kernel))


def model_stats(model: tf.keras.Model) -> dict:
    """Returns the paper's size and OPs numbers for ``model``.

    Returns:
        A dict with ``binary_params`` (1-bit weights), ``float_params`` (32-bit
        parameters, BN at 2 per channel), ``size_mib``, ``flops``, ``bops``,
        ``ops`` (= flops + bops / 64, final dense layer excluded),
        ``binary_convs`` (convolutions with binary inputs and weights) and
        ``keras_params`` (Keras' count, with the BN moving statistics).
    """
    binary_params = float_params = flops = bops = binary_convs = 0
    for layer in _flat_layers(model):
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            float_params += sum(
                int(np.prod(w.shape))
                for w in (layer.gamma, layer.beta)
                if w is not None
            )
            continue
        if isinstance(layer, tf.keras.layers.Conv2D):  # QuantConv2D included
            binary_kernel = _is_binary(getattr(layer, "kernel_quantizer", None))
            binary_input = _is_binary(getattr(layer, "input_quantizer", None))
            if binary_kernel and binary_input:
                bops += _conv_macs(layer)
                binary_convs += 1
            else:
                flops += _conv_macs(layer)
        elif isinstance(layer, XnorActivationScale):
            # The K map: a k x k box filter over one channel at every output position.
            flops += _output_positions(layer) * layer.kernel_size**2
        binary_kernel = _is_binary(getattr(layer, "kernel_quantizer", None))
        for weight in layer.weights:
            count = int(np.prod(weight.shape))
            if binary_kernel and weight is layer.kernel:
                binary_params += count
            elif not _is_statistic(weight):
                float_params += count
    size_mib = (binary_params / 8 + float_params * 4) / MIB
    return {
        "binary_params": binary_params,
        "float_params": float_params,
        "size_mib": size_mib,
        "flops": flops,
        "bops": bops,
        "ops": flops + bops / 64,
        "binary_convs": binary_convs,
        "keras_params": model.count_params(),
    }


def _is_statistic(weight) -> bool:
    """Running statistics (outside BN layers too) that inference folds away."""
    name = weight.name.split("/")[-1]
    return name.startswith(("moving_mean", "moving_variance"))
