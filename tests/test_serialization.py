"""Models survive get_config/from_config and save/load with every custom piece."""

import numpy as np
import pytest
import tensorflow as tf

import bidense

IMAGES = np.random.RandomState(0).randn(2, 16, 16, 3).astype("float32")
VARIANTS = [
    ("binary_resnet_e18", {"scaling": "xnor", "gradient": "approx_sign"}),
    ("binary_densenet28", {"scaling": "magnitude", "bottleneck": 2}),
    ("binary_densenet37_dilated", {"binary": False, "fp_activation": "hard_tanh"}),
]


def build(name, switches, tiny_switches):
    return bidense.create_model(
        name, input_shape=(16, 16, 3), num_classes=3, **tiny_switches(name), **switches
    )


@pytest.mark.parametrize("name, switches", VARIANTS)
def test_get_config_from_config_round_trip(name, switches, tiny_switches):
    model = build(name, switches, tiny_switches)
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert clone.name == name
    np.testing.assert_allclose(clone(IMAGES), model(IMAGES), atol=1e-6)


@pytest.mark.parametrize("name, switches", VARIANTS)
@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_save_and_load_round_trip(name, switches, extension, tiny_switches, tmp_path):
    model = build(name, switches, tiny_switches)
    path = str(tmp_path / f"model{extension}")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert loaded.name == name
    np.testing.assert_allclose(loaded(IMAGES), model(IMAGES), atol=1e-6)
