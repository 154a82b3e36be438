"""What every registered model promises, whatever its family."""

import numpy as np
import pytest
import tensorflow as tf

import bidense

ALL = bidense.list_models()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_any_channel_count_gives_class_probabilities(name, channels, tiny_switches):
    model = bidense.create_model(
        name, input_shape=(16, 16, channels), num_classes=7, **tiny_switches(name)
    )
    assert model.output_shape == (None, 7)
    probabilities = model(np.random.rand(2, 16, 16, channels).astype("float32"))
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_input_tensor_is_used_as_the_model_input(name, tiny_switches):
    image = tf.keras.Input(shape=(16, 16, 3))
    model = bidense.create_model(
        name, input_tensor=image, num_classes=3, **tiny_switches(name)
    )
    assert model.inputs[0] is image
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("name", ALL)
def test_unknown_spatial_size_uses_global_pooling(name, tiny_switches):
    model = bidense.create_model(
        name, input_shape=(None, None, 3), num_classes=5, **tiny_switches(name)
    )
    assert model.output_shape == (None, 5)
    assert model(np.zeros((1, 64, 48, 3), "float32")).shape == (1, 5)


@pytest.mark.parametrize(
    "name, stem, smallest",
    [
        ("binary_resnet_e18", "cifar", 8),
        ("binary_resnet_e18", "imagenet", 32),
        ("binary_densenet28", "cifar", 8),
        ("binary_densenet37_dilated", "cifar", 2),
        ("binary_densenet37_dilated", "imagenet", 8),
    ],
)
def test_input_below_the_minimum_fails_at_build_time_naming_it(
    name, stem, smallest, tiny_switches
):
    switches = {**tiny_switches(name), "stem": stem}
    bidense.create_model(name, input_shape=(smallest, smallest, 3), **switches)
    with pytest.raises(ValueError, match=f"at least {smallest}x{smallest} pixels"):
        bidense.create_model(name, input_shape=(smallest - 1, smallest, 3), **switches)


def test_odd_feature_maps_work_for_fashion_mnist_sizes(tiny_switches):
    # 28 -> 14 -> 7 -> 4: the AvgPool shortcut must round like the strided conv.
    name = "binary_resnet_e18"
    model = bidense.create_model(
        name, input_shape=(28, 28, 1), num_classes=10, **tiny_switches(name)
    )
    assert model.get_layer("stage4_block1_add").output_shape == (None, 4, 4, 64)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"input_shape": (32, 32, 0)}, "input_shape"),
        ({"input_shape": "32x32"}, "input_shape"),
        ({"num_classes": 0}, "num_classes"),
        ({"include_top": "yes"}, "include_top"),
        ({"weights": 3}, "weights"),
        ({"weights": "/nonexistent/weights.h5"}, "does not exist"),
        ({"colour": "blue"}, "Unknown argument.*colour"),
    ],
)
def test_bad_builder_arguments_name_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        bidense.create_model("binary_densenet28", **overrides)
