"""weights="imagenet" and weights=<path>, offline.

The "imagenet" path is exercised for real: a weights file saved from the larq-zoo
model is put where tf.keras.utils.get_file caches downloads, and the table's
sha256 is pointed at it, so the same code that downloads and verifies larq-zoo's
release files runs without a network.
"""

import hashlib
import os

import larq_zoo
import numpy as np
import pytest

import bidense
from bidense import weights as weights_lib

SHAPE = (64, 64, 3)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def cached_zoo_weights(tmp_path, monkeypatch):
    """Saves larq-zoo BinaryResNetE18 weights into a fake Keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = weights_lib.IMAGENET_WEIGHTS["binary_resnet_e18"]
    zoo = larq_zoo.literature.BinaryResNetE18(weights=None, input_shape=SHAPE)
    directory = tmp_path / "larq" / "models" / spec.top.release
    directory.mkdir(parents=True)
    path = str(directory / spec.top.file)
    zoo.save_weights(path)
    top = weights_lib.WeightsFile(spec.top.release, spec.top.file, sha256(path))
    monkeypatch.setitem(
        weights_lib.IMAGENET_WEIGHTS,
        "binary_resnet_e18",
        weights_lib.WeightsSpec(top=top, notop=spec.notop),
    )
    return zoo


def test_imagenet_weights_load_from_the_verified_cache(cached_zoo_weights):
    model = bidense.create_model(
        "binary_resnet_e18", input_shape=SHAPE, weights="imagenet"
    )
    # pad_value follows the weights: larq-zoo trained with zero padding.
    assert model.bidense_config["pad_value"] == 0.0
    images = np.random.RandomState(0).randn(1, *SHAPE).astype("float32")
    np.testing.assert_allclose(model(images), cached_zoo_weights(images), atol=1e-5)


def test_a_corrupt_cached_file_is_refused_with_a_clear_message(
    cached_zoo_weights, monkeypatch
):
    del cached_zoo_weights
    spec = weights_lib.IMAGENET_WEIGHTS["binary_resnet_e18"]
    path = os.path.join(
        os.environ["KERAS_HOME"], "larq", "models", spec.top.release, spec.top.file
    )
    with open(path, "ab") as file:
        file.write(b"corruption")
    # The hash no longer matches, so get_file tries to download again; make that
    # fail fast instead of waiting for a network that is not there.
    monkeypatch.setattr(weights_lib, "RELEASES_URL", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="Could not fetch ImageNet weights.*download"):
        bidense.create_model("binary_resnet_e18", input_shape=SHAPE, weights="imagenet")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_classes": 10}, "num_classes=1000"),
        ({"pad_value": 1.0}, "pad_value=0.0"),
        ({"scaling": "xnor"}, "scaling='none'"),
        ({"stem": "cifar"}, "stem='imagenet'"),
        ({"filters": (32, 64, 128, 256)}, "filters=\\(64, 128, 256, 512\\)"),
    ],
)
def test_imagenet_weights_need_the_larq_zoo_configuration(arguments, message):
    with pytest.raises(ValueError, match=message):
        bidense.create_model("binary_resnet_e18", weights="imagenet", **arguments)


def test_models_without_published_weights_say_which_have_them():
    with pytest.raises(ValueError, match="No ImageNet weights.*binary_densenet28"):
        bidense.create_model("binary_resnet_e34", weights="imagenet")


def test_weights_table_pins_every_larq_zoo_file():
    for name, spec in weights_lib.IMAGENET_WEIGHTS.items():
        assert name in bidense.list_models()
        for entry in (spec.top, spec.notop):
            assert entry.url.startswith(
                "https://github.com/larq/zoo/releases/download/"
            )
            assert len(entry.sha256) == 64


def test_a_weights_file_for_another_architecture_is_refused(tmp_path):
    path = str(tmp_path / "e18.h5")
    bidense.create_model(
        "binary_resnet_e18", input_shape=(32, 32, 3), num_classes=10
    ).save_weights(path)
    with pytest.raises(ValueError, match="does not fit binary_densenet28"):
        bidense.create_model(
            "binary_densenet28", input_shape=(32, 32, 3), num_classes=10, weights=path
        )


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="missing.h5.*does not exist"):
        bidense.create_model("binary_densenet28", weights=str(tmp_path / "missing.h5"))
