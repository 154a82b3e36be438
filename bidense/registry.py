"""The model registry: one snake_case name per model, used everywhere.

The registry key is also the Keras model's ``name``, the config file's name under
``configs/`` and the ``model`` column of every results row.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

_MODELS: dict[str, Callable[..., tf.keras.Model]] = {}


def register_model(name: str):
    """Decorator that registers a model builder under ``name``."""

    def decorator(builder: Callable[..., tf.keras.Model]):
        if name in _MODELS:
            raise ValueError(f"Model {name!r} is registered twice.")
        _MODELS[name] = builder
        builder.model_name = name
        return builder

    return decorator


def list_models() -> list[str]:
    """Returns the registered model names, sorted."""
    return sorted(_MODELS)


def get_builder(name: str) -> Callable[..., tf.keras.Model]:
    """Returns the builder registered as ``name``; unknown names list the valid ones."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model {name!r}; choose one of: {', '.join(list_models())}."
        ) from None


def model_switches(name: str) -> dict:
    """Every architecture switch of model ``name`` with its default value.

    ``None`` means the builder decides at build time (``stem`` from the input size,
    ``pad_value`` from ``weights``, ``dilation`` all ones).
    """
    return dict(get_builder(name).default_switches)


def create_model(name: str, **overrides) -> tf.keras.Model:
    """Builds the registered model ``name``.

    Args:
        name: a name from :func:`list_models`, e.g. ``"binary_densenet28"``.
        **overrides: any builder argument (``input_shape``, ``num_classes``,
            ``weights``, ``include_top``, ``input_tensor``) or architecture switch
            (``binary``, ``scaling``, ``gradient``, ...). See ``bidense.models``.

    Raises:
        ValueError: for an unknown name or an invalid argument.
    """
    return get_builder(name)(**overrides)
