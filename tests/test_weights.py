"""weights="imagenet", weights="fashion_mnist" and weights=<path>, offline, and
fine-tuning from them into another head and input size (bidense.transfer).

The "imagenet" path is exercised for real: a weights file saved from the larq-zoo
model is put where tf.keras.utils.get_file caches downloads, and the table's
sha256 is pointed at it, so the same code that downloads and verifies larq-zoo's
release files runs without a network. "fashion_mnist" is exercised the same way:
a compact file written from a tiny train.py run by ``python -m bidense.pretrained``
and a temporary table entry pinning its sha256.
"""

import configparser
import contextlib
import fnmatch
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import larq_zoo
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import bidense
from bidense import data, transfer
from bidense import weights as weights_lib
from bidense.pretrained import compact
from bidense.training import config as config_lib
from bidense.training import finetune, modeling
from bidense.training.precision import to_float32

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs"

SHAPE = (64, 64, 3)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    """larq-zoo BinaryResNetE18 (random init) and its weights file, made once."""
    zoo = larq_zoo.literature.BinaryResNetE18(weights=None, input_shape=SHAPE)
    path = tmp_path_factory.mktemp("zoo") / "weights.h5"
    zoo.save_weights(path)
    return zoo, path


@pytest.fixture
def cached_zoo_weights(tmp_path, monkeypatch, zoo_file):
    """Puts larq-zoo BinaryResNetE18 weights into a fake Keras cache."""
    zoo, saved = zoo_file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = weights_lib.IMAGENET_WEIGHTS["binary_resnet_e18"]
    directory = tmp_path / "larq" / "models" / spec.top.release
    directory.mkdir(parents=True)
    path = str(directory / spec.top.file)
    shutil.copy(saved, path)  # a copy: a test may damage it
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


# -- fine-tuning from larq-zoo's weights (bidense.transfer) ------------------


def test_train_py_fine_tunes_imagenet_weights_into_a_new_head_and_input_size(
    cached_zoo_weights, capsys
):
    """train.py's path (recipe, adopted switches, build for the dataset, load):
    larq-zoo's file, verified from the cache, into a 28x28x1 model of 5 classes.
    Every backbone layer holds larq-zoo's values; the 3x3 stem and the head are
    new, larq-zoo's stem BNs are not used."""
    zoo = cached_zoo_weights
    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_resnet_e18", "fashion_mnist")
    config_lib.apply_overrides(cfg, [("model.weights", "imagenet")])
    taken = finetune.adopt_switches(cfg, given={"model.weights"})
    # The recipe's narrow filters give way to larq-zoo's, and its zero padding.
    assert taken == ["filters=(64, 128, 256, 512)", "pad_value=0.0"]
    info = data.DatasetInfo("fashion_mnist", (28, 28, 1), 5, None, 64, 16, 16)
    model, report = modeling.build_training_model(cfg, info)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 5)
    assert report.new == {
        "stem_conv": "kernel (3, 3, 1, 64), the weights' (7, 7, 3, 64)",
        "head_dense": "5 classes, the weights have 1000",
    }
    assert report.left_out == ["stem_bn", "stem_bn2"] and not report.adapted
    assert "freshly initialised: stem_conv (kernel" in capsys.readouterr().err
    # Same topology as larq-zoo's model after the stem: compare in layer order.
    ours = [x for x in model.layers if x.name in report.loaded]
    theirs = [x for x in zoo.layers if x.weights][-len(ours) - 1 : -1]
    assert len(ours) == len(report.pretrained) == 38  # 16 blocks, 3 shortcuts
    for layer, zoo_layer in zip(ours, theirs, strict=True):
        for value, zoo_value in zip(
            layer.get_weights(), zoo_layer.get_weights(), strict=True
        ):
            np.testing.assert_array_equal(value, zoo_value, err_msg=layer.name)


def test_an_rgb_stem_adapts_to_gray_images():
    """Summed over its input channels, an RGB stem kernel gives a gray image g
    the response the RGB model gives (g, g, g) (timm's adapt_input_conv)."""
    rgb = tiny("binary_resnet_e18", input_shape=(32, 32, 3), stem="imagenet")
    gray = tiny("binary_resnet_e18", input_shape=(32, 32, 1), stem="imagenet")
    layers = {x.name: x.get_weights() for x in rgb.layers if x.weights}
    source = transfer.Source("RGB weights", "binary_resnet_e18", None, layers)
    report = transfer.copy_layers(gray, source)
    assert report.adapted == {"stem_conv": "RGB kernel summed for 1 channel"}
    assert not report.new and "head_dense" in report.loaded
    images = np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 1))
    images = images.astype("float32")
    np.testing.assert_allclose(
        gray.get_layer("stem_conv")(images),
        rgb.get_layer("stem_conv")(np.repeat(images, 3, axis=-1)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_weights_of_another_model_are_refused_in_one_line(tmp_path):
    resnet = tiny("binary_resnet_e18", blocks=(2, 2, 2, 2))
    resnet.save_weights(tmp_path / "e18.h5")
    compact.save(resnet, tmp_path / "e18.npz", {"model": "binary_resnet_e18"})
    densenet = tiny("binary_densenet28")
    with pytest.raises(ValueError) as info:
        transfer.load_pretrained(densenet, tmp_path / "e18.h5")
    assert "e18.h5' does not fit binary_densenet28: the weights have no layer" in str(
        info.value
    )
    assert "another architecture" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="e18.npz' does not fit binary_densenet28: "
                       "it holds binary_resnet_e18 weights"):  # fmt: skip
        transfer.load_pretrained(densenet, tmp_path / "e18.npz")
    # Another depth of the same model: a layer the model lacks.
    shallower = tiny("binary_resnet_e18")
    with pytest.raises(ValueError, match="have a layer stage1_block3_conv that the"):
        transfer.load_pretrained(shallower, tmp_path / "e18.h5")


# -- bidense's own weights: weights="fashion_mnist" and the compact file ------


def tiny(name, input_shape=(28, 28, 1), **switches):
    sizes = (
        {"filters": (8, 8, 16, 16), "blocks": (1, 1, 1, 1)}
        if "resnet" in name
        else {"growth_rate": 8, "initial_filters": 8, "blocks": (1, 1, 1, 1)}
    )
    return bidense.create_model(
        name, input_shape=input_shape, num_classes=10, **{**sizes, **switches}
    )


def randomize(model, seed=0):
    """Latent weights beyond the clip, and BN statistics far from the init."""
    rng = np.random.RandomState(seed)
    values = []
    for weight in model.weights:
        value = rng.randn(*weight.shape).astype("float32")
        if "moving_variance" in weight.name:
            value = np.abs(value) + 0.1
        values.append(value)
    model.set_weights(values)


@pytest.mark.parametrize(
    "name, switches",
    [
        ("binary_densenet28", {}),
        ("binary_resnet_e18", {"scaling": "xnor", "downsample": "binary"}),
    ],
)
def test_compact_file_round_trip_is_bit_exact(tmp_path, name, switches):
    model = tiny(name, **switches)
    randomize(model)
    path = tmp_path / f"{name}.npz"
    meta = compact.save(model, path, {"model": name})
    encodings = {e for entries in meta["layers"].values() for _, e in entries}
    binary = switches.get("scaling") != "xnor"
    # Only plain-sign kernels become bits; XNOR's mean-|W| scaling needs the
    # latent magnitudes, so those kernels stay float32.
    assert encodings == ({"signs", "float32"} if binary else {"float32"})
    kernel = model.get_layer("stem_conv").get_weights()[0]
    assert meta["layers"]["stem_conv"] == [[list(kernel.shape), "float32"]]

    images = np.random.RandomState(1).uniform(-2, 2, (8, 28, 28, 1)).astype("float32")
    features = tf.keras.Model(model.input, model.get_layer("head_relu").output)
    expected, expected_features = model(images).numpy(), features(images).numpy()
    latent = {x.name: x.get_weights() for x in model.layers if x.weights}
    randomize(model, seed=1)  # the same model, other weights: then the file's
    weights_lib.load_weights_file(model, path)
    np.testing.assert_array_equal(model(images), expected)
    np.testing.assert_array_equal(features(images), expected_features)
    if binary:  # the latent weights are rebuilt as sign * mean |w| per channel
        layer = next(x for x in model.layers if compact.binary_kernel_index(x) == 0)
        original, rebuilt = latent[layer.name][0], layer.get_weights()[0]
        np.testing.assert_array_equal(np.sign(rebuilt), np.where(original >= 0, 1, -1))
        np.testing.assert_allclose(
            np.abs(rebuilt).max(axis=(0, 1, 2)),
            np.abs(original).reshape(-1, original.shape[-1]).mean(axis=0),
            rtol=1e-6,
        )
    # Cut short, the file is one line that says what to do.
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cannot read .*write it again with python"):
        weights_lib.load_weights_file(model, path)


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory, tiny_run):
    """The shared tiny run packed by `python -m bidense.pretrained --workdir W`
    into a temporary FASHION_MNIST_DIR (the default output); returns the file
    and its printed table entry."""
    from bidense.pretrained import __main__ as cli

    folder = tmp_path_factory.mktemp("packed")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weights_lib, "FASHION_MNIST_DIR", folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main(["--workdir", str(tiny_run.workdir)])
    assert status == 0, err.getvalue()
    output = folder / "binary_densenet28.npz"
    printed = out.getvalue()
    digest = sha256(output)
    assert f"sha256 {digest}" in printed
    entry = printed.split("FASHION_MNIST_WEIGHTS:\n", 1)[1]
    table = eval("{" + entry + "}", {"PretrainedSpec": weights_lib.PretrainedSpec})
    spec = table["binary_densenet28"]
    assert spec.file == output.name and spec.sha256 == digest
    assert spec.switches["growth_rate"] == 8 and spec.switches["stem"] == "cifar"
    assert spec.switches["pad_value"] == 1.0
    summary = json.loads((tiny_run.workdir / "summary.json").read_text())
    assert spec.test_top1 == summary["test_top1"]
    return output, spec


@pytest.fixture
def fashion_mnist_table(tmp_path, monkeypatch, packed_run):
    """A copy of the packed file and a temporary table entry pinning it (the
    shipped table is filled with the runs that trained its models)."""
    packed, spec = packed_run
    path = tmp_path / packed.name
    shutil.copy(packed, path)
    monkeypatch.setattr(weights_lib, "FASHION_MNIST_DIR", tmp_path)
    monkeypatch.setitem(weights_lib.FASHION_MNIST_WEIGHTS, "binary_densenet28", spec)
    return path


def test_fashion_mnist_weights_load_with_their_defaults(fashion_mnist_table, tiny_run):
    # In float32, as the shipped weights are built (tiny_run trains in the
    # recipe's precision, mixed bfloat16 on CPUs that have it).
    trained = to_float32(tf.keras.models.load_model(tiny_run.workdir / "best.keras"))
    images = np.random.RandomState(0).uniform(-1, 1, (4, 28, 28, 1))
    for model in (
        bidense.create_model("binary_densenet28", weights="fashion_mnist"),
        bidense.models.BinaryDenseNet28(weights="fashion_mnist"),
    ):
        # 28x28x1, 10 classes and the switches it was trained with.
        assert model.input_shape == (None, 28, 28, 1)
        assert model.output_shape == (None, 10)
        assert model.bidense_config["growth_rate"] == 8
        np.testing.assert_array_equal(model(images), trained(images))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"growth_rate": 16}, "were trained with growth_rate=8"),
        ({"pad_value": 0.0}, "were trained with pad_value=1.0"),
        ({"num_classes": 5}, "needs num_classes=10, got 5; use include_top=False"),
        ({"input_shape": (28, 28, 3)}, "take 1-channel images, not 3"),
    ],
)
def test_fashion_mnist_weights_need_their_configuration(
    fashion_mnist_table, arguments, message
):
    with pytest.raises(ValueError, match=message):
        bidense.create_model("binary_densenet28", weights="fashion_mnist", **arguments)


def test_a_damaged_shipped_file_is_refused_by_its_sha256(fashion_mnist_table):
    with open(fashion_mnist_table, "ab") as file:
        file.write(b"\0")
    with pytest.raises(ValueError, match="has sha256 .*, the table pins"):
        bidense.create_model("binary_densenet28", weights="fashion_mnist")
    fashion_mnist_table.unlink()
    with pytest.raises(ValueError, match="weights file .* is missing; reinstall"):
        bidense.create_model("binary_densenet28", weights="fashion_mnist")


def test_evaluate_reproduces_the_run_with_fashion_mnist_weights(
    fashion_mnist_table, tiny_run, tmp_path
):
    """evaluate.py --model NAME --weights fashion_mnist: the recipe's switches
    (growth rate 16) give way to the weights' (8); the same test top-1."""
    from bidense.training import evaluation

    with tfds.testing.mock_data(
        num_examples=tiny_run.examples, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        row = evaluation.run(
            config_dir=CONFIG_DIR,
            model_name="binary_densenet28",
            weights="fashion_mnist",
            dataset="fashion_mnist",
            overrides=[("dataset.validation_examples", "16")],
            output_json=tmp_path / "row.json",
        )
    spec = weights_lib.FASHION_MNIST_WEIGHTS["binary_densenet28"]
    assert row["top1"] == pytest.approx(spec.test_top1, abs=1e-6)
    assert row["source"] == "binary_densenet28:fashion_mnist"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset": {"name": "mnist"}}, "trained on 'mnist'; the table holds"),
        ({"dataset": {"name": "fashion_mnist", "classes": [5, 6]}},
         "trained on a subset of Fashion-MNIST"),
        ({"eval_steps": 2}, "evaluated 2 test batches, not the whole test split"),
        ({}, "has no test top-1 in summary.json; has train.py finished?"),
    ],
)  # fmt: skip
def test_packing_a_run_the_table_cannot_pin_is_one_line(
    tmp_path, tiny_run, change, message, capsys
):
    """Checked before any model loads; the run's config.json alone."""
    from bidense.pretrained import __main__ as cli

    config = json.loads((tiny_run.workdir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    assert cli.main(["--workdir", str(tmp_path), "--output", "x.npz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m bidense.pretrained: error: --workdir ")
    assert message in err and err.count("\n") == 1


def test_fashion_mnist_weights_without_a_table_entry_say_which_exist():
    with pytest.raises(ValueError, match="No Fashion-MNIST weights are shipped for "):
        bidense.create_model("binary_resnet_e34", weights="fashion_mnist")


def test_shipped_files_are_pinned_small_and_package_data():
    """Every table entry's file is in the package, under the size limit, with its
    pinned sha256 and test top-1, and setup.cfg's package_data ships it."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    patterns = parser["options.package_data"]["bidense"].split()
    folder = weights_lib.FASHION_MNIST_DIR.relative_to(REPO / "bidense")
    for name, spec in weights_lib.FASHION_MNIST_WEIGHTS.items():
        assert name in bidense.list_models()
        path = weights_lib.FASHION_MNIST_DIR / spec.file
        assert path.stat().st_size <= weights_lib.MAX_FILE_MIB * 2**20
        assert sha256(path) == spec.sha256
        assert 0 < spec.test_top1 <= 1
        assert any(fnmatch.fnmatch(str(folder / spec.file), p) for p in patterns)
    assert any(fnmatch.fnmatch(str(folder / "x.npz"), p) for p in patterns)
