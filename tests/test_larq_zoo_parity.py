"""Architecture parity with larq-zoo 2.4.0, our reference implementation.

Identical topology means larq-zoo's weights load into bidense's model (built with
the larq-zoo-compatible settings, i.e. pad_value=0.0) and give the same outputs.
"""

import larq_zoo
import numpy as np
import pytest
import tensorflow as tf

import bidense

ZOO = {  # name: (larq-zoo builder, Keras parameter count, no-top channels)
    "binary_resnet_e18": (larq_zoo.literature.BinaryResNetE18, 11_699_368, 512),
    "binary_densenet28": (larq_zoo.literature.BinaryDenseNet28, 5_150_504, 576),
    "binary_densenet37": (larq_zoo.literature.BinaryDenseNet37, 8_734_120, 640),
    "binary_densenet37_dilated": (
        larq_zoo.literature.BinaryDenseNet37Dilated,
        8_734_120,
        640,
    ),
    "binary_densenet45": (larq_zoo.literature.BinaryDenseNet45, 13_939_240, 800),
}
ZOO_COMPATIBLE = {"pad_value": 0.0}
# 64x64 still takes larq-zoo's ImageNet stem (>= 50 pixels) and keeps this fast.
SHAPE = (64, 64, 3)


def randomize_batch_norms(model, seed=0):
    """Realistic BN statistics: with the initial ones, outputs saturate."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.5, beta.shape),
                    rng.normal(0, 1.0, mean.shape),
                    rng.uniform(0.5, 4.0, variance.shape),
                ]
            )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_same_parameters_channels_and_outputs_as_larq_zoo(name, tmp_path):
    zoo_builder, params, channels = ZOO[name]
    zoo = zoo_builder(weights=None, input_shape=SHAPE)
    randomize_batch_norms(zoo)
    ours = bidense.create_model(name, input_shape=SHAPE, **ZOO_COMPATIBLE)
    assert ours.count_params() == zoo.count_params() == params

    ours.set_weights(zoo.get_weights())
    images = np.random.RandomState(1).randn(2, *SHAPE).astype("float32")
    np.testing.assert_allclose(ours(images), zoo(images), rtol=0, atol=1e-5)

    # No top: the feature maps match too (no softmax to hide differences), and a
    # weights file saved by larq-zoo loads through weights=<path>.
    zoo_path = str(tmp_path / "zoo_notop.h5")
    zoo_notop = zoo_builder(weights=None, input_shape=SHAPE, include_top=False)
    randomize_batch_norms(zoo_notop)
    zoo_notop.save_weights(zoo_path)
    ours_notop = bidense.create_model(
        name, input_shape=SHAPE, include_top=False, weights=zoo_path, **ZOO_COMPATIBLE
    )
    assert ours_notop.output_shape[-1] == zoo_notop.output_shape[-1] == channels
    expected = zoo_notop(images).numpy()
    assert np.std(expected) > 0.1  # not a degenerate comparison
    np.testing.assert_allclose(ours_notop(images), expected, rtol=0, atol=1e-5)


def test_cifar_stem_parity_below_50_pixels():
    zoo = larq_zoo.literature.BinaryResNetE18(
        weights=None, input_shape=(32, 32, 3), num_classes=10, include_top=False
    )
    randomize_batch_norms(zoo)
    ours = bidense.create_model(
        "binary_resnet_e18",
        input_shape=(32, 32, 3),
        num_classes=10,
        include_top=False,
        **ZOO_COMPATIBLE,
    )
    assert ours.count_params() == zoo.count_params()
    ours.set_weights(zoo.get_weights())
    images = np.random.RandomState(2).randn(2, 32, 32, 3).astype("float32")
    np.testing.assert_allclose(ours(images), zoo(images), rtol=0, atol=1e-5)
