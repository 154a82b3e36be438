"""export.py --int8: float layers as int8 ops, proven op by op, on the model's data.

LCE conversions are the slow part, so each file is converted once per session:
one tiny BinaryDenseNet28 trained briefly on real Fashion-MNIST (a random
model's near-flat softmax makes int8-vs-float agreement a coin toss), as int8
(with int8 input and output) and as float; the same model with one island
missing; a tiny random-weight ResNetE18 (op structure only); and export.py's
--workdir --int8.
"""

import functools
import re

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from mock_cli import run_in_process
from tensorflow.lite.python import schema_py_generated as schema

import bidense
from bidense import export
from bidense.export import int8, qat

SHAPE = (28, 28, 1)
TINY = {
    "binary_densenet28": {"growth_rate": 8, "initial_filters": 8, "blocks": (1,) * 4},
    "binary_resnet_e18": {"filters": (8, 8, 16, 16), "blocks": (1,) * 4},
}
# The float layers of both tiny models: stem, 3 downsampling convs, classifier.
INT8_OPS = {"CONV_2D": 4, "FULLY_CONNECTED": 1}


def build(name: str) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    return bidense.create_model(name, input_shape=SHAPE, num_classes=10, **TINY[name])


@functools.cache
def fashion_mnist():
    """The tiny models' own data (real Fashion-MNIST through bidense.data)."""
    return export.model_data(build("binary_densenet28"), dataset="fashion_mnist")


@functools.cache
def trained():
    """The tiny BinaryDenseNet28 trained 50 Adam steps on 3,200 training images
    (~69 % top-1; most of the time is Keras tracing the training step)."""
    model = build("binary_densenet28")
    x, y = fashion_mnist().examples("train", 3200)
    model.compile(tf.keras.optimizers.Adam(5e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    return model


@functools.cache
def exported(name: str):
    """(model, int8 flatbuffer, report): the trained DenseNet with int8 I/O, a
    random-weight ResNetE (BN statistics set on real images) with float I/O."""
    if name == "binary_densenet28":
        model, images, int8_io = trained(), fashion_mnist().batches("train", 500), True
    else:
        model, images, int8_io = build(name), fashion_mnist().train_images(64), False
        export.calibrate_batchnorm(model, images)
    flatbuffer, report = export.export_int8(
        model, images, int8_io=int8_io, calibration_source="fashion_mnist train"
    )
    return model, flatbuffer, report


@functools.cache
def float_file() -> bytes:
    return export.export_model(trained())[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
def test_int8_export_is_proven_and_counts_the_int8_ops(name):
    model, flatbuffer, report = exported(name)
    assert report.ok, report.problems()
    assert report.int8.int8_ops == INT8_OPS
    assert report.int8.problems == []
    assert [row[0] for row in report.int8.layers] == [
        layer.name for layer in int8.float_layers(model)
    ]
    for _, _, x, w, _, y in report.int8.layers:
        assert (x, w.split()[0], y) == ("INT8", "INT8", "INT8")
    assert report.bconv_ops == bidense.model_stats(model)["binary_convs"]
    images = 500 if name == "binary_densenet28" else 64
    assert f"{images} fashion_mnist train images" in report.int8.calibration
    # No float conv/FC is left: every CONV_2D and FULLY_CONNECTED op is int8.
    ops = export.read_ops(flatbuffer)
    assert all(
        op.output_tensors[0].type == "INT8"
        for op in ops
        if op.type in ("CONV_2D", "FULLY_CONNECTED")
    )
    markdown = report.to_markdown()
    assert "### int8: every float layer is one int8 op" in markdown
    assert "CONV_2D 4, FULLY_CONNECTED 1" in markdown


@pytest.mark.slow
def test_a_float_export_fails_the_int8_check_naming_every_float_layer(monkeypatch):
    model = trained()
    ops = export.read_ops(float_file())
    problems = export.check_int8(model, ops).problems
    names = [layer.name for layer in int8.float_layers(model)]
    assert len(problems) == len(names) == 5
    for name, problem in zip(names, problems, strict=True):
        assert problem.startswith(f"float layer {name!r} -> ")
        assert "is not int8: input FLOAT32, weights FLOAT32" in problem
    report = export.check_conversion(model, ops, len(float_file()), int8=True)
    assert not report.ok and report.int8.int8_ops == {}
    # export_int8 refuses such a file even with allow_float_fallback (which
    # covers binary layers only): it would not be the int8 model asked for.
    monkeypatch.setattr(export.convert, "to_lce", lambda *a, **k: float_file())
    with pytest.raises(
        export.FloatFallbackError,
        match="is not int8 after LCE conversion: float layer 'stem_conv'",
    ):
        export.export_int8(
            model, fashion_mnist().train_images(32), allow_float_fallback=True
        )


@pytest.mark.slow
def test_a_missing_island_fails_naming_its_layer():
    model = trained()
    islands = int8.island_points(model)
    points = {p for layer, pair in islands.items() for p in pair}
    points -= set(islands["transition2_conv"])
    quantized, _, _ = int8.quantize(model, fashion_mnist().train_images(64), points)
    problems = export.check_int8(model, export.read_ops(export.to_lce(quantized)))
    problems = problems.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "float layer 'transition2_conv' -> CONV_2D is not int8"
    )


@pytest.mark.slow
def test_int8_agrees_with_float_on_the_models_test_images():
    """int8 I/O file vs the float Keras model and the float LCE file, on 500
    test images the calibration never saw."""
    model, flatbuffer, report = exported("binary_densenet28")
    scale, zero_point = report.int8.input_quantization
    assert scale > 0 and -128 <= zero_point <= 127
    assert "- int8 input: scale" in report.to_markdown()
    interpreter = lce.testing.Interpreter(flatbuffer)
    assert interpreter.input_types[0] == interpreter.output_types[0] == np.int8
    images, labels = fashion_mnist().examples("test", 500)
    parity = export.compare(model, flatbuffer, images)
    assert parity.top1_ok, str(parity)  # export.py's criterion for int8 files
    float_top1 = np.mean(
        export.parity.lce_predict(float_file(), images).argmax(-1) == labels
    )
    int8_top1 = np.mean(
        export.parity.lce_predict(flatbuffer, images).argmax(-1) == labels
    )
    assert float_top1 > 0.6  # trained: the comparison means something
    assert int8_top1 >= float_top1 - 0.02, (float_top1, int8_top1)
    assert len(flatbuffer) < len(float_file())


def int8_weights(flatbuffer: bytes) -> list[np.ndarray]:
    """The int8 weights of every CONV_2D and FULLY_CONNECTED op, in graph order,
    in TFLite's layout ((out, kh, kw, in) and (out, in))."""
    model = schema.Model.GetRootAs(flatbuffer, 0)
    graph = model.Subgraphs(0)
    wanted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED}
    weights = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) in wanted:
            tensor = graph.Tensors(op.Inputs(1))
            data = model.Buffers(tensor.Buffer()).DataAsNumpy().tobytes()
            weights.append(np.frombuffer(data, np.int8).reshape(tensor.ShapeAsNumpy()))
    return weights


def grid_integers(layer) -> np.ndarray:
    """The fine-tune's int8 grid for ``layer``'s kernel, as integers in TFLite's
    layout: a conv per output channel, a dense layer per tensor."""
    kernel = layer.kernel.numpy()
    conv = kernel.ndim == 4
    rounded = qat.quantized_kernel(tf.constant(kernel), per_channel=conv).numpy()
    bound = np.abs(kernel).max(axis=(0, 1, 2) if conv else None)
    integers = np.round(rounded / (bound / 127))
    return np.transpose(integers, (3, 0, 1, 2) if conv else (1, 0))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
def test_the_converters_int8_weights_are_the_fine_tunes_weight_grid(name):
    """What the fine-tune simulates is what the file holds, BatchNormalization
    folded or not (ResNetE's shortcut BN folds into its conv; a per-channel
    symmetric grid does not see the fold's per-channel scale, only its sign)."""
    model, flatbuffer, _ = exported(name)
    layers = int8.float_layers(model)
    in_file = int8_weights(flatbuffer)
    assert [w.shape for w in in_file] == [grid_integers(x).shape for x in layers]
    for layer, stored in zip(layers, in_file, strict=True):
        ours = grid_integers(layer)
        assert np.abs(ours).max() == np.abs(stored).max() == 127, layer.name
        # Per output channel, up to the sign a folded BN's gamma may bring; a
        # value halfway between two levels may round either way in float32.
        for c in range(len(stored)):
            sign = (
                1
                if np.abs(stored[c] - ours[c]).sum()
                <= np.abs(stored[c] + ours[c]).sum()
                else -1
            )
            difference = np.abs(stored[c].astype(int) - sign * ours[c])
            assert difference.max() <= 1, (layer.name, c)
            assert np.mean(difference == 0) > 0.99, (layer.name, c)


@pytest.mark.slow
def test_the_int8_fine_tune_trains_the_weights_under_int8_rounding_only():
    """Every float kernel and binary latent weight may move; BatchNormalization
    stays frozen; the given model is untouched. (How much it gains is measured,
    not tested: benchmarks/int8_export.py --finetune_steps, docs/deployment.md.)"""
    model = trained()
    before = [w.copy() for w in model.get_weights()]
    images = fashion_mnist().train_images(256)
    _, ranges, _ = int8.quantize(model, images)
    tuned, losses = qat.finetune(model, images, ranges, steps=12, learning_rate=1e-4)
    assert len(losses) == 12 and np.all(np.isfinite(losses))
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert [x.name for x in tuned.layers] == [x.name for x in model.layers]
    moved = {
        layer.name: any(
            not np.array_equal(a, b)
            for a, b in zip(
                layer.get_weights(),
                tuned.get_layer(layer.name).get_weights(),
                strict=True,
            )
        )
        for layer in model.layers
    }
    bns = [
        x.name
        for x in model.layers
        if isinstance(x, tf.keras.layers.BatchNormalization)
    ]
    assert bns and not any(moved[n] for n in bns)
    # The straight-through estimator carries gradients through the weight grid
    # to every float kernel, and through the activation grid to binary layers.
    assert all(moved[x.name] for x in int8.float_layers(model))
    assert moved["stage1_layer1_conv"]
    # The simulation is what the fine-tune trained: it is not the float model.
    assert qat.divergence(model, qat.simulated(tuned, ranges), images) > 0


@pytest.mark.slow
def test_export_int8_with_a_fine_tune_is_proven_and_reports_the_divergence():
    model = trained()
    images = fashion_mnist().train_images(128)
    flatbuffer, report = export.export_int8(model, images, finetune_steps=3)
    assert report.ok and not report.int8.problems
    assert report.int8.int8_ops == INT8_OPS
    assert report.int8.finetune.startswith("3 Adam steps (learning rate 1e-05")
    assert re.search(r"calibration images: [\d.e-]+ before, [\d.e-]+ after$",
                     report.int8.finetune)  # fmt: skip
    assert "- int8 fine-tune: 3 Adam steps" in report.to_markdown()
    # Read more than once, so a one-pass generator is refused up front.
    with pytest.raises(int8.Int8Error, match="read more than once"):
        export.export_int8(model, iter([images]), finetune_steps=3)
    with pytest.raises(int8.Int8Error, match="needs steps >= 1"):
        qat.finetune(model, images, {}, steps=0)


def test_an_empty_calibration_range_is_an_error_naming_the_tensor():
    model = build("binary_densenet28")
    with pytest.raises(int8.Int8Error, match="'image' is 0 on all 8 calibration"):
        int8.calibrate(model, ["image", "stem_conv"], np.zeros((8, *SHAPE), "float32"))


def test_ranges_are_percentiles_so_one_outlier_does_not_set_them():
    """The default range is the central 99.98 % of the values; percentile=100 is
    min/max. Checked on the input point, whose values are the images themselves."""
    model = build("binary_densenet28")
    images = np.random.default_rng(0).uniform(-1, 1, (64, *SHAPE)).astype("float32")
    images[0, 0, 0, 0] = 50.0  # one value of 50,176
    minmax, _ = int8.calibrate(model, ["image"], images, percentile=100)
    assert minmax["image"] == (pytest.approx(images.min()), 50.0)
    low, high = int8.calibrate(model, ["image"], images)[0]["image"]
    assert -1.0 <= low < -0.99 and 0.99 < high <= 1.0
    # A tensor that is almost always 0 keeps its min/max instead of an empty range.
    sparse = np.zeros((64, *SHAPE), "float32")
    sparse[0, 0, 0, 0] = 1.0
    assert int8.calibrate(model, ["image"], sparse)[0]["image"] == (0.0, 1.0)
    with pytest.raises(int8.Int8Error, match=r"percentile must be in \(50, 100\]"):
        int8.calibrate(model, ["image"], images, percentile=40)


def test_xnor_scaling_is_refused_with_one_line():
    model = bidense.create_model(
        "binary_densenet28", input_shape=SHAPE, num_classes=10, scaling="xnor",
        **TINY["binary_densenet28"],
    )  # fmt: skip
    with pytest.raises(int8.Int8Error, match="does not support scaling='xnor'"):
        int8.check_supported(model)


def test_fake_quant_model_leaves_the_original_graph_alone():
    """Built from a clone: the original layers keep one inbound node each, which
    the op check's tensor-to-layer attribution needs."""
    model = build("binary_resnet_e18")
    points = {p for pair in int8.island_points(model).values() for p in pair}
    quantized, fake_quants = int8.fake_quant_model(model, points)
    assert all(len(layer.inbound_nodes) == 1 for layer in model.layers)
    assert set(fake_quants) == points
    assert len(quantized.layers) == len(model.layers) + len(points)
    for layer in model.layers:  # a copy with the same weights
        copy = quantized.get_layer(layer.name)
        assert copy is not layer
        for a, b in zip(copy.get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_island_points_follow_the_recipe():
    model = build("binary_resnet_e18")
    assert int8.island_points(model) == {
        "stem_conv": ("image", "stem_conv"),
        # The shortcut conv's BN folds into it: the island ends after the BN.
        "stage2_block1_shortcut_conv": (
            "stage2_block1_shortcut_pool", "stage2_block1_shortcut_bn",
        ),
        "stage3_block1_shortcut_conv": (
            "stage3_block1_shortcut_pool", "stage3_block1_shortcut_bn",
        ),
        "stage4_block1_shortcut_conv": (
            "stage4_block1_shortcut_pool", "stage4_block1_shortcut_bn",
        ),
        # No fake-quant on the softmax.
        "head_dense": ("head_flatten", "head_dense"),
    }  # fmt: skip


def test_int8_size_prediction_counts_float_kernels_at_one_byte():
    model = build("binary_densenet28")
    kernels = sum(
        int(np.prod(layer.kernel.shape)) for layer in int8.float_layers(model)
    )
    assert export.predicted_int8_size_mib(model) == pytest.approx(
        export.predicted_size_mib(model) - 3 * kernels / 2**20
    )


# -- export.py --int8 (in-process) ---------------------------------------------


def test_cli_int8_without_data_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_in_process(
        "export.py", "--model=binary_densenet28", "--int8", "--output=m.tflite",
        mock=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "export.py: error: --int8 needs the model's training data to calibrate on: "
        "pass --dataset NAME_OR_PATH (the dataset it was trained on), or export a "
        "train.py --workdir"
    )
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.slow
def test_cli_int8_exports_a_work_dir_on_its_own_mock_data(tmp_path, tiny_run):
    """--workdir --int8 under tfds.testing.mock_data: calibrated on the run's
    (mock) training split, parity on its (mock) test split."""
    output = tmp_path / "m.tflite"
    result = run_in_process(
        "export.py", f"--workdir={tiny_run.workdir}", "--int8", "--int8_io",
        "--int8_finetune_steps=2", "--parity_images=8", f"--output={output}",
        examples=tiny_run.examples,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "every float layer int8" in out
    assert "- int8 ops for the 5 float layers: CONV_2D 4, FULLY_CONNECTED 1" in out
    # The run's training split (16 of the 48 mock examples carved out for
    # validation); mock_data yields all its examples for any slice of a split.
    assert re.search(r"on \d+ fashion_mnist train\[:32\] images", out)
    assert "- int8 input: scale " in out
    assert "- int8 fine-tune: 2 Adam steps" in out
    assert (
        "parity images: the first 8 of test of fashion_mnist (the run's dataset" in out
    )
    assert "LCE int8 vs Keras float (top-1), fashion_mnist test: 8 images" in out
    assert "random normal" not in out
    assert output.stat().st_size > 0


@pytest.mark.slow
def test_cli_int8_of_the_shipped_weights_calibrates_on_fashion_mnist(tmp_path):
    """--weights fashion_mnist --int8 needs no --dataset: bidense's own weights
    know their data (real Fashion-MNIST: ranges from train, parity on test)."""
    output = tmp_path / "m.tflite"
    result = run_in_process(
        "export.py", "--model=binary_resnet_e18", "--weights=fashion_mnist",
        "--int8", "--int8_calibration_images=64", "--parity_images=32",
        f"--output={output}", mock=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "every float layer int8" in out
    assert "on 64 fashion_mnist train" in out, out
    assert "LCE int8 vs Keras float (top-1), fashion_mnist test: 32 images" in out
    assert output.stat().st_size > 0
