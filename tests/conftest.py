"""Shared test settings: quiet TensorFlow, a fresh Keras session per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    tf.keras.backend.clear_session()


# Small shapes keep the suite fast on 2 CPU cores; the checks that need the full
# architecture (parameter counts, paper sizes) build it without running it.
TINY_RESNET_E = {"filters": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)}
TINY_DENSENET = {"growth_rate": 8, "initial_filters": 8, "blocks": (1, 1, 1, 1)}


def _tiny_switches(name: str) -> dict:
    return dict(TINY_RESNET_E if "resnet" in name else TINY_DENSENET)


@pytest.fixture
def tiny_switches():
    """``tiny_switches(name)``: overrides that make any registered model tiny."""
    return _tiny_switches
