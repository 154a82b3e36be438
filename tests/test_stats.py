"""model_stats reproduces the paper's size and OPs columns (paper.md section 4).

Sizes are MiB with binary weights at 1 bit and everything else at 32 bit; OPs are
FLOPs + BOPs / 64 without the final dense layer.
"""

import pytest

import bidense

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


@pytest.mark.slow
@pytest.mark.parametrize("name, arguments, size_mib, ops", PAPER)
def test_paper_size_and_ops(name, arguments, size_mib, ops):
    stats = bidense.model_stats(bidense.create_model(name, **arguments))
    assert round(stats["size_mib"], 2) == size_mib
    if ops is not None:
        assert stats["ops"] == pytest.approx(ops, rel=0.01)
    assert stats["ops"] == stats["flops"] + stats["bops"] / 64


def test_binary_parameter_count_matches_the_paper():
    # paper.md section 4: ResNetE18 with FP downsampling has 10,985,472 binary
    # parameters; FP shortcuts add 172,032 parameters.
    fp = bidense.model_stats(bidense.create_model("binary_resnet_e18"))
    binary = bidense.model_stats(
        bidense.create_model("binary_resnet_e18", downsample="binary")
    )
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
