"""Every switch of the paper's design space does what it says.

Bethge et al. 2019 ablate scaling factors, the gradient estimator, full-precision
downsampling, bottlenecks, growth rate and transition order; each is a builder
argument, checked here on tiny models.
"""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bidense
from bidense import layers
from bidense.layers import BinarySettings, XnorActivationScale

ALL = bidense.list_models()
IMAGES = np.random.RandomState(0).randn(2, 16, 16, 3).astype("float32")


def build(name, tiny_switches, **switches):
    return bidense.create_model(
        name,
        input_shape=(16, 16, 3),
        num_classes=4,
        **{**tiny_switches(name), **switches},
    )


def binary_convs(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D) and layer.input_quantizer
    ]


def features(model, images=IMAGES):
    """Pre-softmax features: softmax can hide differences when it saturates."""
    return tf.keras.Model(model.input, model.get_layer("head_flatten").output)(images)


# -- binary=False: the full-precision twin -------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_full_precision_twin_has_no_quantizer_and_the_same_weights(name, tiny_switches):
    binary = build(name, tiny_switches)
    twin = build(name, tiny_switches, binary=False)
    for layer in twin.layers:
        assert not isinstance(layer, lq.layers.QuantConv2D), layer.name
        assert getattr(layer, "kernel_constraint", None) is None, layer.name
    # Same graph: the binary model's weights load into the twin one to one.
    assert [w.shape for w in twin.weights] == [w.shape for w in binary.weights]
    twin.set_weights(binary.get_weights())
    # A float nonlinearity stands where each sign was.
    activations = [layer for layer in twin.layers if layer.name.endswith("_act")]
    assert len(activations) == len(binary_convs(binary)) > 0
    assert {layer.activation.__name__ for layer in activations} == {"relu"}


def test_full_precision_twin_activation_is_an_argument(tiny_switches):
    name = "binary_densenet28"
    relu = build(name, tiny_switches, binary=False)
    hard_tanh = build(name, tiny_switches, binary=False, fp_activation="hard_tanh")
    activation = hard_tanh.get_layer("stage1_layer1_conv_act")
    np.testing.assert_allclose(activation(tf.constant([-3.0, 0.5, 2.0])), [-1, 0.5, 1])
    hard_tanh.set_weights(relu.get_weights())
    assert not np.allclose(features(relu), features(hard_tanh))


# -- scaling ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["binary_resnet_e18", "binary_densenet28"])
def test_xnor_scaling_multiplies_each_binary_conv_by_the_activation_map(
    name, tiny_switches
):
    plain = build(name, tiny_switches)
    xnor = build(name, tiny_switches, scaling="xnor")
    scales = [layer for layer in xnor.layers if isinstance(layer, XnorActivationScale)]
    assert len(scales) == len(binary_convs(xnor)) > 0
    assert all(
        isinstance(layer.kernel_quantizer, lq.quantizers.MagnitudeAwareSign)
        for layer in binary_convs(xnor)
    )
    xnor.set_weights(plain.get_weights())  # scaling adds no weights
    assert not np.allclose(features(plain), features(xnor))


def test_xnor_activation_map_is_the_box_filtered_channel_mean_of_abs_input():
    x = tf.constant(np.arange(-8.0, 10.0).reshape(1, 3, 3, 2), tf.float32)
    y = tf.ones((1, 3, 3, 1))
    k_map = XnorActivationScale(kernel_size=3)([x, y]).numpy()[0, :, :, 0]
    mean_abs = np.abs(x.numpy()[0]).mean(axis=-1)
    # Centre: the 3x3 window covers the whole map.
    assert k_map[1, 1] == pytest.approx(mean_abs.mean())
    # Corner: 4 valid positions out of 9 (zero padding), as the paper's code.
    assert k_map[0, 0] == pytest.approx(mean_abs[:2, :2].sum() / 9)


def test_magnitude_scaling_scales_weights_only(tiny_switches):
    name = "binary_resnet_e18"
    plain = build(name, tiny_switches)
    magnitude = build(name, tiny_switches, scaling="magnitude")
    assert not any(isinstance(layer, XnorActivationScale) for layer in magnitude.layers)
    conv = binary_convs(magnitude)[0]
    assert isinstance(conv.kernel_quantizer, lq.quantizers.MagnitudeAwareSign)
    magnitude.set_weights(plain.get_weights())
    assert not np.allclose(features(plain), features(magnitude))


# -- gradient estimator and clip value ------------------------------------------


def input_gradient(settings, values):
    x = tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(settings.input_quantizer()(x))
    return tape.gradient(y, x).numpy()


def test_ste_passes_gradients_up_to_the_clip_value():
    grads = input_gradient(BinarySettings(clip_value=1.25), [0.25, 1.2, 1.3])
    np.testing.assert_allclose(grads, [1.0, 1.0, 0.0])


def test_approx_sign_uses_bi_real_triangular_gradient():
    settings = BinarySettings(gradient="approx_sign", clip_value=1.3)
    grads = input_gradient(settings, [0.25, -0.5, 1.2])
    np.testing.assert_allclose(grads, [1.5, 1.0, 0.0])


@pytest.mark.parametrize("name", ["binary_resnet_e18", "binary_densenet28"])
def test_gradient_and_clip_value_reach_every_binary_conv(name, tiny_switches):
    model = build(name, tiny_switches, gradient="approx_sign", clip_value=0.7)
    for conv in binary_convs(model):
        assert isinstance(conv.input_quantizer, lq.quantizers.ApproxSign)
        assert conv.kernel_quantizer.clip_value == 0.7
        assert conv.kernel_constraint.clip_value == 0.7


@pytest.mark.parametrize(
    "name, clip", [("binary_resnet_e18", 1.25), ("binary_densenet37", 1.3)]
)
def test_clip_value_defaults_follow_larq_zoo(name, clip, tiny_switches):
    for conv in binary_convs(build(name, tiny_switches)):
        assert conv.input_quantizer.clip_value == clip
        assert conv.kernel_constraint.clip_value == clip


# -- downsampling -------------------------------------------------------------


def test_resnet_e_downsampling_shortcut_is_fp_or_binary(tiny_switches):
    name = "binary_resnet_e18"
    fp = build(name, tiny_switches)
    binary = build(name, tiny_switches, downsample="binary")
    fp_conv = fp.get_layer("stage2_block1_shortcut_conv")
    assert type(fp_conv) is tf.keras.layers.Conv2D
    assert isinstance(
        fp.get_layer("stage2_block1_shortcut_pool"), tf.keras.layers.AveragePooling2D
    )
    assert binary.get_layer("stage2_block1_shortcut_conv") in binary_convs(binary)
    assert len(binary_convs(binary)) == len(binary_convs(fp)) + 3
    assert bidense.model_stats(binary)["size_mib"] < bidense.model_stats(fp)["size_mib"]


def test_densenet_transitions_are_fp_or_binary(tiny_switches):
    name = "binary_densenet28"
    fp = build(name, tiny_switches)
    binary = build(name, tiny_switches, downsample="binary")
    assert type(fp.get_layer("transition1_conv")) is tf.keras.layers.Conv2D
    assert binary.get_layer("transition1_conv") in binary_convs(binary)
    # sign(relu(x)) would be constant: a binary transition has no ReLU.
    assert "transition1_relu" not in [layer.name for layer in binary.layers]


# -- padding ------------------------------------------------------------------


@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 1.0])
def test_pad_value_reaches_every_binary_3x3_conv(pad_value, tiny_switches):
    model = build("binary_densenet28", tiny_switches, pad_value=pad_value)
    assert {c.pad_values for c in binary_convs(model)} == {pad_value}


def test_pad_value_defaults_to_one_for_lce_and_changes_the_output(tiny_switches):
    name = "binary_resnet_e18"
    default = build(name, tiny_switches)
    assert default.bidense_config["pad_value"] == 1.0
    zero = build(name, tiny_switches, pad_value=0.0)
    zero.set_weights(default.get_weights())
    assert not np.allclose(features(default), features(zero))


# -- stem, DenseNet topology switches -----------------------------------------


@pytest.mark.parametrize("name", ["binary_resnet_e18", "binary_densenet28"])
def test_stem_defaults_from_input_size_like_larq_zoo(name, tiny_switches):
    small = build(name, tiny_switches)
    assert small.bidense_config["stem"] == "cifar"
    assert small.get_layer("stem_conv").kernel_size == (3, 3)
    big = bidense.create_model(name, input_shape=(64, 64, 3), **tiny_switches(name))
    assert big.bidense_config["stem"] == "imagenet"
    assert big.get_layer("stem_conv").kernel_size == (7, 7)
    forced = bidense.create_model(
        name, input_shape=(32, 32, 3), stem="imagenet", **tiny_switches(name)
    )
    assert forced.get_layer("stem_pool").output_shape[1] == 8


def test_transition_order_pool_first_or_conv_first(tiny_switches):
    name = "binary_densenet28"
    pool_first = build(name, tiny_switches)
    conv_first = build(name, tiny_switches, transition="conv_first")
    names = [layer.name for layer in pool_first.layers]
    assert names.index("transition1_pool") < names.index("transition1_conv")
    assert isinstance(
        pool_first.get_layer("transition1_pool"), tf.keras.layers.MaxPool2D
    )
    names = [layer.name for layer in conv_first.layers]
    assert names.index("transition1_conv") < names.index("transition1_pool")
    assert isinstance(
        conv_first.get_layer("transition1_pool"), tf.keras.layers.AveragePooling2D
    )
    # Pool first runs the 1x1 conv on 4x fewer positions.
    flops = [bidense.model_stats(m)["flops"] for m in (pool_first, conv_first)]
    assert flops[0] < flops[1]


def test_bottleneck_adds_a_binary_1x1_conv_of_width_b_times_k(tiny_switches):
    model = build("binary_densenet28", tiny_switches, bottleneck=4)
    bottleneck = model.get_layer("stage1_layer1_bottleneck")
    assert bottleneck in binary_convs(model)
    assert bottleneck.kernel_size == (1, 1) and bottleneck.filters == 4 * 8


def test_dilation_replaces_pooling_into_dilated_stages():
    model = bidense.create_model(
        "binary_densenet37_dilated",
        input_shape=(64, 64, 3),
        growth_rate=8,
        initial_filters=8,
        blocks=(1, 1, 1, 1),
    )
    assert model.get_layer("stage3_layer1_conv").dilation_rate == (2, 2)
    assert model.get_layer("stage4_layer1_conv").dilation_rate == (4, 4)
    names = [layer.name for layer in model.layers]
    assert "transition1_pool" in names
    assert "transition2_pool" not in names and "transition3_pool" not in names
    assert model.get_layer("head_relu").output_shape[1:3] == (8, 8)


def test_growth_rate_reduction_and_width_set_the_channels():
    model = bidense.create_model(
        "binary_densenet28",
        input_shape=(16, 16, 3),
        growth_rate=32,
        initial_filters=16,
        blocks=(2, 2, 2, 2),
        reduction=2.0,
    )
    assert model.get_layer("stage1_layer1_conv").filters == 32
    # 16 + 2 * 32 = 80 channels; 80 // 2 = 40 -> 32 * round(40 / 32) = 32.
    assert model.get_layer("transition1_conv").filters == 32
    resnet = bidense.create_model(
        "binary_resnet_e18",
        input_shape=(16, 16, 3),
        filters=(8, 16, 24, 40),
        blocks=(1, 2, 1, 1),
    )
    assert resnet.get_layer("stage4_block1_conv").filters == 40
    assert "stage2_block4_conv" in [layer.name for layer in resnet.layers]


# -- bad values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, switches, argument",
    [
        ("binary_densenet28", {"scaling": "xnorr"}, "scaling"),
        ("binary_densenet28", {"gradient": "sign"}, "gradient"),
        ("binary_densenet28", {"binary": "no"}, "binary"),
        ("binary_densenet28", {"fp_activation": "swish"}, "fp_activation"),
        ("binary_densenet28", {"clip_value": 0}, "clip_value"),
        ("binary_densenet28", {"clip_value": "1.3"}, "clip_value"),
        ("binary_densenet28", {"downsample": "pool"}, "downsample"),
        ("binary_densenet28", {"pad_value": 0.5}, "pad_value"),
        ("binary_densenet28", {"stem": "mnist"}, "stem"),
        ("binary_densenet28", {"transition": "pool"}, "transition"),
        ("binary_densenet28", {"bottleneck": -1}, "bottleneck"),
        ("binary_densenet28", {"growth_rate": 0}, "growth_rate"),
        ("binary_densenet28", {"initial_filters": 2.5}, "initial_filters"),
        ("binary_densenet28", {"blocks": (6, 0, 6, 5)}, "blocks"),
        ("binary_densenet28", {"reduction": (2, 2)}, "reduction"),
        ("binary_densenet28", {"reduction": 0.5}, "reduction"),
        ("binary_densenet28", {"dilation": (1, 1, 2)}, "dilation"),
        ("binary_resnet_e18", {"filters": (64, 128)}, "filters"),
        ("binary_resnet_e18", {"blocks": "2222"}, "blocks"),
        ("binary_resnet_e18", {"growth_rate": 32}, "growth_rate"),
    ],
)
def test_invalid_switch_values_name_the_argument_and_choices(name, switches, argument):
    with pytest.raises(ValueError, match=f"{argument}"):
        bidense.create_model(name, input_shape=(32, 32, 3), **switches)


# -- PaddedQuantConv2D: larq's one-padded binary conv, trained without tf.pad -----


def _padded_pair(pad_values, strides, dilation_rate, kernel_size=3):
    kwargs = dict(
        filters=6, kernel_size=kernel_size, strides=strides,
        dilation_rate=dilation_rate, padding="same", pad_values=pad_values,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False,
    )  # fmt: skip
    fast = layers.PaddedQuantConv2D(**kwargs)
    reference = lq.layers.QuantConv2D(**kwargs)
    x = tf.random.stateless_normal((4, 9, 9, 5), seed=(1, 2))
    fast.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(fast.get_weights())
    return fast, reference, x


@pytest.mark.parametrize(
    "pad_values, strides, dilation_rate",
    [(1.0, 1, 1), (1.0, 2, 1), (-1.0, 1, 1), (1.0, 1, 2)],
)
def test_padded_quant_conv_trains_the_same_computation_as_larqs(
    pad_values, strides, dilation_rate
):
    """Forward bit-identical (integer sums); gradients equal to float round-off."""
    fast, reference, x = _padded_pair(pad_values, strides, dilation_rate)
    results = []
    for layer in (fast, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=y.dtype))
        grad_x, grad_kernel = tape.gradient(loss, [x, layer.kernel])
        results.append((y.numpy(), grad_x.numpy(), grad_kernel.numpy()))
    (y, gx, gk), (y_ref, gx_ref, gk_ref) = results
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gk, gk_ref, rtol=1e-6, atol=1e-6)
    # The border really is one-padded (else zero padding would pass as well):
    zero_padded = tf.nn.conv2d(
        tf.sign(x), tf.sign(fast.kernel), strides, "SAME", dilations=dilation_rate
    )
    assert not np.array_equal(y, zero_padded.numpy())


def test_padded_quant_conv_infers_with_larqs_pad_for_lce():
    """training=False runs larq's own call: the Pad that LCE folds is in the graph."""
    fast, _, x = _padded_pair(1.0, 1, 1)
    graph = (
        tf.function(lambda t: fast(t, training=False))
        .get_concrete_function(x)
        .graph.as_graph_def()
    )
    assert any(node.op in ("Pad", "PadV2") for node in graph.node)
    training_graph = (
        tf.function(lambda t: fast(t, training=True))
        .get_concrete_function(x)
        .graph.as_graph_def()
    )
    # In training the only Pad is the batch-1 border, not the activations'.
    pads = [n for n in training_graph.node if n.op in ("Pad", "PadV2")]
    assert len(pads) == 1


def test_models_train_like_with_larqs_padded_conv(monkeypatch, tiny_switches):
    """Three Adam steps of a BinaryDenseNet28 with and without the fast path:
    same losses (rtol 1e-5) and same weights (atol 1e-5)."""
    x = np.random.RandomState(0).randn(16, 28, 28, 1).astype("float32")
    y = np.arange(16) % 10
    runs = []
    fast_class = layers.PaddedQuantConv2D
    fast_calls = []  # traced calls of the Pad-free path: fit must take it
    original = fast_class._call_without_pad

    def counting(self, inputs):
        fast_calls.append(self.name)
        return original(self, inputs)

    monkeypatch.setattr(fast_class, "_call_without_pad", counting)
    for conv_class in (fast_class, lq.layers.QuantConv2D):
        monkeypatch.setattr(layers, "PaddedQuantConv2D", conv_class)
        tf.keras.utils.set_random_seed(1)
        model = bidense.create_model(
            "binary_densenet28", input_shape=(28, 28, 1), num_classes=10,
            **tiny_switches("binary_densenet28"),
        )  # fmt: skip
        model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        runs.append((losses, model.get_weights(), model.layers))
    (losses, weights, fast_layers), (ref_losses, ref_weights, ref_layers) = runs
    fast_convs = [la.name for la in fast_layers if isinstance(la, fast_class)]
    assert fast_convs and set(fast_calls) == set(fast_convs)
    assert not any(isinstance(la, fast_class) for la in ref_layers)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for a, b in zip(weights, ref_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
