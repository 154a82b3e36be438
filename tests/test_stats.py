"""model_stats reproduces the paper's size and OPs columns, and Keras' exact
parameter count of every registered model.

Sizes are MiB with binary weights at 1 bit and everything else at 32 bit; OPs are
FLOPs + BOPs / 64 without the final dense layer (Bethge et al. 2019,
arXiv:1906.08637, which counts them as the authors' ``print_summary`` in
hpi-xnor/BMXNet-v2 does).
"""

import functools

import pytest

import bidense

# Keras count_params at the default ImageNet shape (224x224x3, 1000 classes).
# larq-zoo's docstrings give all but ResNetE34, which larq-zoo does not publish;
# test_the_parameter_table_adds_up_layer_by_layer derives every row from the
# layouts, and the comment there cross-checks both ResNetEs with torchvision.
PARAMS = {
    "binary_densenet28": 5_150_504,
    "binary_densenet37": 8_734_120,
    "binary_densenet37_dilated": 8_734_120,
    "binary_densenet45": 13_939_240,
    "binary_resnet_e18": 11_699_368,
    "binary_resnet_e34": 21_814_952,
}

PAPER = [
    # name, builder arguments, size in MiB (2 decimals), OPs (1 %) or None
    (
        "binary_resnet_e18",
        {"input_shape": (32, 32, 3), "num_classes": 10, "downsample": "binary"},
        1.39,
        None,
    ),
    ("binary_resnet_e18", {"input_shape": (32, 32, 3), "num_classes": 10}, 2.03, None),
    ("binary_resnet_e18", {"downsample": "binary"}, 3.36, 1.445e8),
    ("binary_resnet_e18", {}, 4.00, 1.635e8),
    ("binary_resnet_e34", {}, 5.23, 1.924e8),
    ("binary_densenet28", {}, 4.04, 2.58e8),
    ("binary_densenet37", {}, 5.13, 2.70e8),
    ("binary_densenet37_dilated", {}, 5.13, 5.7e8),
    ("binary_densenet45", {}, 7.35, 3.44e8),
]


@functools.lru_cache
def stats_of(name: str, arguments: tuple = ()) -> dict:
    """model_stats of a model built (never run) once per module: ImageNet-size
    models take seconds to build, and several tests read the same ones."""
    return bidense.model_stats(bidense.create_model(name, **dict(arguments)))


def densenet_params(switches: dict, classes: int = 1000) -> int:
    """BinaryDenseNet's Keras parameters, summed layer by layer (no bias in convs;
    4 numbers per BatchNormalization channel: scale, offset, moving mean and
    variance): stem 7x7 conv + BN; per dense layer BN + 3x3 conv to k channels;
    per transition BN + 1x1 conv to 32 * round(floor(C / r) / 32) channels; head
    BN + dense."""
    c, k = switches["initial_filters"], switches["growth_rate"]
    total = 7 * 7 * 3 * c + 4 * c
    for stage, layers in enumerate(switches["blocks"]):
        for _ in range(layers):
            total += 4 * c + 3 * 3 * c * k
            c += k
        if stage < len(switches["reduction"]):
            reduced = 32 * round((c // switches["reduction"][stage]) / 32)
            total += 4 * c + c * reduced
            c = reduced
    return total + 4 * c + c * classes + classes


def resnet_e_params(switches: dict, classes: int = 1000) -> int:
    """ResNetE's Keras parameters, summed layer by layer: stem 7x7 conv + BN +
    ResNetE's extra BN; per one-conv block a 3x3 conv + BN, plus a 1x1 shortcut
    conv + BN where the width changes; dense head."""
    c = switches["filters"][0]
    total = 7 * 7 * 3 * c + 2 * 4 * c
    for blocks, width in zip(switches["blocks"], switches["filters"], strict=True):
        for _ in range(2 * blocks):  # each basic block is two one-conv blocks
            total += 3 * 3 * c * width + 4 * width
            if c != width:
                total += c * width + 4 * width
            c = width
    return total + c * classes + classes


def test_the_parameter_table_adds_up_layer_by_layer():
    """Fast: no model is built; the registered defaults give the table's counts.

    Independent cross-check of the ResNetEs: they have exactly torchvision's
    ResNet-18/34 convolutions (ResNetE splits each basic block's two 3x3 convs
    into two blocks; its AvgPool + 1x1 shortcut has the 1x1 conv of torchvision's
    downsample) and classifier. torchvision counts 11,689,512 / 21,797,672
    parameters with 2 per BN channel; Keras adds the 2 moving statistics per BN
    channel (4,800 / 8,512 channels) and ResNetE has one extra 64-channel stem
    BN: 11,689,512 + 2 * 4,800 + 4 * 64 = 11,699,368 and
    21,797,672 + 2 * 8,512 + 4 * 64 = 21,814,952.
    """
    assert sorted(PARAMS) == bidense.list_models()
    for name, count in PARAMS.items():
        switches = bidense.model_switches(name)
        layer_sum = resnet_e_params if "resnet_e" in name else densenet_params
        assert layer_sum(switches) == count, name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_model_has_exactly_the_tables_parameter_count(name):
    assert stats_of(name)["keras_params"] == PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name, arguments, size_mib, ops", PAPER)
def test_paper_size_and_ops(name, arguments, size_mib, ops):
    stats = stats_of(name, tuple(arguments.items()))
    assert round(stats["size_mib"], 2) == size_mib
    if ops is not None:
        assert stats["ops"] == pytest.approx(ops, rel=0.01)
    assert stats["ops"] == stats["flops"] + stats["bops"] / 64


def test_binary_parameter_count_matches_the_paper():
    # ResNetE18's 16 binary 3x3 convs (ResNet-18's layout) hold 10,985,472 binary
    # weights; with binary downsampling its three 1x1 shortcut convs (172,032
    # weights) turn binary too: the paper's 4.00 vs 3.36 MB.
    fp = stats_of("binary_resnet_e18")
    binary = stats_of("binary_resnet_e18", (("downsample", "binary"),))
    assert fp["binary_params"] == 10_985_472
    assert binary["binary_params"] - fp["binary_params"] == 172_032
    assert fp["binary_convs"] == 16 and binary["binary_convs"] == 19


def test_full_precision_twin_is_all_float_and_32x_larger_per_weight():
    binary = bidense.model_stats(
        bidense.create_model("binary_densenet28", input_shape=(32, 32, 3))
    )
    twin = bidense.model_stats(
        bidense.create_model("binary_densenet28", input_shape=(32, 32, 3), binary=False)
    )
    assert twin["binary_params"] == twin["bops"] == twin["binary_convs"] == 0
    assert twin["float_params"] == binary["float_params"] + binary["binary_params"]
    assert twin["flops"] == binary["flops"] + binary["bops"]


def test_stats_need_a_static_input_size():
    model = bidense.create_model(
        "binary_densenet28",
        input_shape=(None, None, 3),
        growth_rate=8,
        initial_filters=8,
        blocks=(1, 1, 1, 1),
    )
    with pytest.raises(ValueError, match="static input size"):
        bidense.model_stats(model)
