"""Compute precision of training: mixed bfloat16 where the CPU has it, else float32.

A BNN is *trained* in floating point (larq simulates the binarization), and on a
CPU the float32 convolutions are almost all of the time (docs/performance.md
profiles it: ~85 % of op time in oneDNN's Conv2D forward and backward kernels,
which already run near the machine's float32 matmul rate). Keras's
``mixed_bfloat16`` policy computes those convolutions in bfloat16 with float32
variables, about 1.5-1.7x faster on CPUs with AVX512_BF16 (measured by
benchmarks/train_speed.py). It is not the same computation: the binary convs'
*forward* is still exact (+-1 inputs and weights are exact in bfloat16 and oneDNN
accumulates in float32) but their outputs are rounded to bfloat16's 8-bit
mantissa, and so are every gradient and every full-precision layer. The
converged headline recipe reached the same test top-1 in both precisions over
two seeds (configs/studies/fmnist_precision.py, docs/performance.md), so the
recipes' default, ``config.precision="auto"``, picks mixed bfloat16 on CPUs that
compute it natively and float32 elsewhere, where bfloat16 is emulated and slower
(:func:`resolve`); ``"float32"`` and ``"mixed_bfloat16"`` force one. A run's
config.json records the result.

Mixed-precision models are exported in float32: the variables are float32
already, ``to_float32`` only rebuilds the layers with a float32 policy.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from bidense import provenance

# What the layers compute in; a run's config.json always holds one of these.
PRECISIONS = ("float32", "mixed_bfloat16")
# What config.precision may say: "auto" is resolved once, when a run starts.
AUTO = "auto"
CHOICES = (*PRECISIONS, AUTO)


def resolve(precision: str, fast_bfloat16: bool | None = None) -> str:
    """The precision that ``precision`` stands for on this machine.

    ``"auto"`` is ``mixed_bfloat16`` on CPUs that compute bfloat16 natively
    (AVX512_BF16 or AMX; :func:`bidense.provenance.has_fast_bfloat16`, or
    ``fast_bfloat16`` if given) and float32 elsewhere, where bfloat16 is
    emulated and slower. The other values are returned as they are.
    """
    if precision not in CHOICES:
        raise ValueError(
            f"precision must be one of {', '.join(CHOICES)}, got {precision!r}"
        )
    if precision != AUTO:
        return precision
    if fast_bfloat16 is None:
        fast_bfloat16 = provenance.has_fast_bfloat16()
    return "mixed_bfloat16" if fast_bfloat16 else "float32"


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds layers under ``precision`` without leaving the global policy changed.

    Keras layers read the global policy when they are constructed, so only the
    model construction needs to run inside this context.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def compute_dtypes(model: tf.keras.Model) -> set[str]:
    """The compute dtypes of a model's layers (inputs excluded)."""
    return {
        layer.compute_dtype
        for layer in model.layers
        if not isinstance(layer, tf.keras.layers.InputLayer)
    }


def is_mixed(model: tf.keras.Model) -> bool:
    return any(dtype != "float32" for dtype in compute_dtypes(model))


def _float32_layer_configs(config):
    """``config`` with every layer's dtype policy replaced by float32."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and _is_policy(value):
                out[key] = "float32"
            else:
                out[key] = _float32_layer_configs(value)
        return out
    if isinstance(config, list):
        return [_float32_layer_configs(item) for item in config]
    return config


def _is_policy(value) -> bool:
    if isinstance(value, str):
        return value in PRECISIONS or value in ("bfloat16", "mixed_float16")
    return isinstance(value, dict) and value.get("class_name") in (
        "Policy",
        "DTypePolicy",
    )


def to_float32(model: tf.keras.Model) -> tf.keras.Model:
    """A float32 copy of a (functional) mixed-precision model, same weights.

    A float32 model is returned unchanged. The copy is the same graph with the
    same variables' values; only the layers' compute dtype differs.
    """
    if not is_mixed(model):
        return model
    config = _float32_layer_configs(model.get_config())
    with dtype_policy("float32"):
        copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy
