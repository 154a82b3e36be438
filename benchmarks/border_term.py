"""Ways to write a one-padded binary convolution, timed side by side in training.

    python benchmarks/border_term.py                      # both small groups
    python benchmarks/border_term.py --groups binary_resnet_e18:full --rounds 9
    python benchmarks/border_term.py --json border.json   # also keep the raw windows

bidense pads its binary convolutions with 1 (``pad_value=1.0``, what LCE's
kernels are built for). Convolution is linear, so with q the binarized input,
w the binary kernel and pad(x, v) the "same" border of v's:

    conv_valid(pad(q, 1), w) = conv_same(q, w) + conv_valid(pad(0, 1), w)
                             = conv_same(q - 1, w) + sum(w)

(the second line because pad(q, 1) - 1 = pad(q - 1, 0); sum(w) is over kernel
rows, columns and input channels). This script trains bidense's model under a
plain Keras ``fit`` with each way of writing that, and prints images/s side by
side:

* ``batch1_sum``     the border term as one batch-1 convolution of a border of
                     ones (the forward pass of ``bidense.layers.PaddedQuantConv2D``),
                     added to every example with TensorFlow's own gradient: a
                     ``Sum`` of the upstream gradient over the batch;
* ``batch1_matmul``  the same, with that batch sum as a ones-vector matmul:
                     ``PaddedQuantConv2D`` as shipped, bidense's default (the
                     reference column);
* ``bias``           the border folded into a bias: conv_same(q - 1, w) + sum(w);
* ``pad``            larq's ``QuantConv2D``: ``tf.pad`` with ones, then a valid
                     convolution (whose gradient slices the padded input gradient);
* ``zero``           ``pad_value=0.0``, larq-zoo's zero padding: a different model
                     (the border sums differ), timed as what no padding term costs.

The one-padded forms compute the same integer sums, so their forward passes
agree exactly; the table's last column checks that (largest difference of the
model outputs from ``batch1_matmul``'s, same weights and batch, training mode).

For each group (model x width; inputs 32x32x3, 10 classes, batch 64) all variants
are built in one process and timed in interleaved rounds whose order rotates, so
load from other processes hits them alike. A round runs each variant's ``fit``
for 1 + W steps and times steps 2..W+1 (the first step of every ``fit`` creates
the iterator); W is chosen from a probe step so that the slowest variant's window
lasts about ``--window_seconds``. Reported: the median images/s over rounds, the
interquartile range of the windows, and the median over rounds of each variant's
ratio to ``batch1_matmul`` (and to ``zero``) in the same round, which cancels load
that drifts from one round to the next.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "groups",
    ["binary_resnet_e18:small", "binary_densenet28:small"],
    "model:width groups; width is full, small, or tiny (tiny only checks that the "
    "script runs: its numbers mean nothing).",
)
VARIANTS = ("batch1_sum", "batch1_matmul", "bias", "pad", "zero")
REFERENCE = "batch1_matmul"
flags.DEFINE_list("variants", list(VARIANTS), "Which ways of padding to time.")
flags.DEFINE_integer("rounds", 7, "Timed rounds per variant (median reported).")
flags.DEFINE_float("window_seconds", 5.0, "Target length of one timed window.")
flags.DEFINE_string("json", None, "Also write the raw results to this JSON file.")

BATCH = 64
SIZE = 32
CLASSES = 10
EXAMPLES = 1024
# The widths of benchmarks/train_speed.py's groups, so the two scripts compare.
WIDTHS = {
    "full": {"binary_resnet_e18": {}, "binary_densenet28": {}},
    "small": {
        "binary_resnet_e18": {"filters": (16, 32, 64, 128)},
        "binary_densenet28": {"growth_rate": 16, "initial_filters": 16},
    },
    "tiny": {
        "binary_resnet_e18": {"filters": (8, 8, 16, 16)},
        "binary_densenet28": {"growth_rate": 8, "initial_filters": 16},
    },
}


# -- the variants ---------------------------------------------------------------


def conv_classes() -> dict:
    """The binary conv class each one-padded variant builds the model with."""
    import larq as lq
    import tensorflow as tf

    from bidense import layers

    def quantized(layer, inputs):
        if layer.input_quantizer:
            inputs = layer.input_quantizer(inputs)
        with lq.context.quantized_scope(True):
            kernel = tf.convert_to_tensor(layer.kernel)  # quantized once, used twice
        return inputs, kernel

    class Batch1Sum(layers.PaddedQuantConv2D):
        """PaddedQuantConv2D's forward pass with TF's gradient for the broadcast."""

        def _call_without_pad(self, inputs):
            inputs, kernel = quantized(self, inputs)
            outputs = self.convolution_op(inputs, kernel)  # zero "same" padding
            border = tf.pad(
                tf.zeros((1, *inputs.shape[1:]), inputs.dtype),
                self._get_padding_same(inputs),
                constant_values=self.pad_values,
            )
            with lq.utils.patch_object(self, "padding", "valid"):
                correction = self.convolution_op(border, kernel)
            return outputs + correction

    class Bias(layers.PaddedQuantConv2D):
        """conv_same(q - v, w) + v * sum(w): the border as a per-channel bias."""

        def _call_without_pad(self, inputs):
            inputs, kernel = quantized(self, inputs)
            outputs = self.convolution_op(inputs - self.pad_values, kernel)
            return outputs + self.pad_values * tf.reduce_sum(kernel, axis=(0, 1, 2))

    return {
        "batch1_sum": Batch1Sum,
        "batch1_matmul": layers.PaddedQuantConv2D,
        "bias": Bias,
        "pad": lq.layers.QuantConv2D,  # larq's own call: tf.pad, valid conv
    }


def build_model(variant: str, name: str, width: str):
    """bidense's model, its one-padded binary convs written the ``variant`` way."""
    from unittest import mock

    import bidense
    from bidense import layers

    switches = {"input_shape": (SIZE, SIZE, 3), "num_classes": CLASSES}
    switches.update(WIDTHS[width][name])
    if variant == "zero":
        return bidense.create_model(name, pad_value=0.0, **switches)
    conv_class = conv_classes()[variant]
    # BinarySettings.conv picks the class by this module-level name at build time.
    with mock.patch.object(layers, "PaddedQuantConv2D", conv_class):
        model = bidense.create_model(name, **switches)
    if not any(type(layer) is conv_class for layer in model.layers):
        raise RuntimeError(
            f"{variant}: the model has no {conv_class.__name__} layer; "
            "bidense.layers.BinarySettings.conv does not build PaddedQuantConv2D"
        )
    return model


class Contender:
    """One variant's model, compiled like a plain Keras training, on fixed data."""

    def __init__(self, variant: str, name: str, width: str, weights=None):
        import numpy as np
        import tensorflow as tf

        tf.keras.utils.set_random_seed(0)
        self.model = build_model(variant, name, width)
        if weights is not None:  # the same starting point for every variant
            self.model.set_weights(weights)
        self.model.compile(
            optimizer=tf.keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["sparse_categorical_accuracy"],
        )
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (EXAMPLES, SIZE, SIZE, 3)).astype("float32")
        labels = rng.integers(0, CLASSES, EXAMPLES)
        self.check_batch = images[:BATCH]
        self.train_ds = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(EXAMPLES, seed=0)
            .repeat()
            .batch(BATCH)
            .prefetch(tf.data.AUTOTUNE)
        )

    def outputs(self):
        """Training-mode outputs on a fixed batch (the one-padded forward pass)."""
        return self.model(self.check_batch, training=True).numpy()

    def window(self, steps: int) -> float:
        """Images/s over steps 2..steps+1 of one ``fit`` call."""
        import tensorflow as tf

        marks: list[float] = []

        class Timer(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                marks.append(time.perf_counter())

        self.model.fit(
            self.train_ds,
            epochs=1,
            steps_per_epoch=steps + 1,
            callbacks=[Timer()],
            verbose=0,
        )
        return steps * BATCH / (marks[-1] - marks[0])


# -- timing -----------------------------------------------------------------------


def run_group(group: str, variants: list[str]) -> dict:
    import numpy as np
    import tensorflow as tf

    name, width = group.split(":")
    built, reference_outputs, weights = {}, None, None
    for variant in [REFERENCE, *(v for v in variants if v != REFERENCE)]:
        contender = Contender(variant, name, width, weights)
        if weights is None:
            weights = contender.model.get_weights()
        outputs = contender.outputs()  # before training: same weights everywhere
        if reference_outputs is None:
            reference_outputs = outputs
        contender.max_diff = float(np.max(np.abs(outputs - reference_outputs)))
        contender.window(1)  # traces the training step
        contender.probe = contender.window(2)
        built[variant] = contender
        print(
            f"  {group} {variant}: ready, probe {contender.probe:.1f} img/s", flush=True
        )
    order = [v for v in variants if v in built]  # the reference is built to compare
    slowest = min(built[variant].probe for variant in order)
    steps = max(2, round(FLAGS.window_seconds * slowest / BATCH))
    rates = {variant: [] for variant in order}
    for round_index in range(FLAGS.rounds):
        shift = round_index % len(order)
        for variant in order[shift:] + order[:shift]:
            rates[variant].append(built[variant].window(steps))
    tf.keras.backend.clear_session()
    return {
        "group": group,
        "window_steps": steps,
        "variants": {
            variant: {"windows": rates[variant], "max_diff": built[variant].max_diff}
            for variant in order
        },
    }


# -- report -----------------------------------------------------------------------


def median_ratio(windows: list[float], baseline: list[float] | None) -> str:
    if not baseline:
        return ""
    ratios = [a / b for a, b in zip(windows, baseline, strict=True)]
    return f"{statistics.median(ratios):.3f}"


def render(results: dict) -> str:
    lines = [
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        "Load average before / after: {:.2f} / {:.2f}  ".format(*results["load"]),
        f"Inputs {SIZE}x{SIZE}x3, {CLASSES} classes, batch {BATCH}, plain `fit`; "
        f"{results['rounds']} interleaved rounds per variant.",
        "",
        "| group | variant | images/s (median) | windows p25–p75 | x batch1_matmul "
        "| x zero | max \\|Δ output\\| vs batch1_matmul |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for group in results["groups"]:
        found = group["variants"]
        reference = found.get(REFERENCE, {}).get("windows")
        zero = found.get("zero", {}).get("windows")
        for variant, row in found.items():
            windows = row["windows"]
            if len(windows) > 1:
                p25, _, p75 = statistics.quantiles(windows, n=4, method="inclusive")
                spread = f"{p25:.1f}–{p75:.1f}"
            else:
                spread = ""
            cells = [
                group["group"],
                variant,
                f"{statistics.median(windows):.1f}",
                spread,
                median_ratio(windows, reference),
                median_ratio(windows, zero),
                f"{row['max_diff']:.1e}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Windows (images/s of every timed round, in order):", ""]
    for group in results["groups"]:
        for variant, row in group["variants"].items():
            windows = ", ".join(f"{r:.1f}" for r in row["windows"])
            lines.append(
                f"- {group['group']} {variant}: {windows} "
                f"({group['window_steps']} steps per window)"
            )
    return "\n".join(lines)


def check_flags() -> None:
    for group in FLAGS.groups:
        name, _, width = group.partition(":")
        if width not in WIDTHS or name not in WIDTHS[width]:
            common.fail(
                "border_term.py",
                f"--groups: {group!r} is not MODEL:WIDTH with MODEL in "
                f"{sorted(WIDTHS['full'])} and WIDTH in {sorted(WIDTHS)}",
            )
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        common.fail(
            "border_term.py", f"--variants: unknown {unknown}; use {list(VARIANTS)}"
        )
    if FLAGS.rounds < 1 or FLAGS.window_seconds <= 0:
        common.fail("border_term.py", "--rounds and --window_seconds must be positive")
    if FLAGS.json and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.json))):
        common.fail("border_term.py", f"--json={FLAGS.json}: no such directory")


def main(argv) -> None:
    if len(argv) > 1:
        common.fail("border_term.py", f"unexpected arguments {argv[1:]}")
    check_flags()
    load_before = os.getloadavg()[0]
    groups = []
    for group in FLAGS.groups:
        print(f"{group}: timing {', '.join(FLAGS.variants)}", flush=True)
        groups.append(run_group(group, FLAGS.variants))
    results = {
        "command": "python benchmarks/border_term.py " + " ".join(sys.argv[1:]),
        "machine": common.machine(),
        "load": (load_before, os.getloadavg()[0]),
        "rounds": FLAGS.rounds,
        "groups": groups,
    }
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(results, f, indent=2)
    print(render(results))


if __name__ == "__main__":
    app.run(main)
