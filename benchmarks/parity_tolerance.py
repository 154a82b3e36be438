"""LCE-vs-Keras parity of correct and wrong conversions: what export.compare's
thresholds are set between.

    python benchmarks/parity_tolerance.py                  # DN28 and ResNetE18
    python benchmarks/parity_tolerance.py --models binary_resnet_e18 --seeds 0,1,2

For each model and seed, a narrow model (the widths of tests/test_export.py, 32x32x3
input, 10 classes, random weights from the seed) gets BN statistics from 32
Fashion-MNIST images (``export.calibrate_batchnorm``: random statistics blow the
activations up), is converted with LCE, and the LCE interpreter's softmax is
compared with Keras' on 32 other Fashion-MNIST images and 32 random-normal ones:

* ``correct``  the flatbuffer against the model it was converted from;
* ``wrong``    the same flatbuffer (pad_value=1.0) against the same weights in a
               model with pad_value=0.0: a conversion that computes something else
               at every border, which the thresholds must reject.

Printed per row: top-1 agreement (near-ties counted as agreement, and strict),
mean and largest |softmax difference|, and whether ``export.compare`` passes it.
The numbers do not depend on machine load; they do depend on the random weights,
hence ``--seeds``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "models", ["binary_densenet28", "binary_resnet_e18"], "Registered model names."
)
flags.DEFINE_list("seeds", ["0"], "Seeds of the random weights, one model each.")
flags.DEFINE_integer("images", 32, "Images per kind (Fashion-MNIST, random normal).")

SHAPE = (32, 32, 3)
# tests/test_export.py's widths: narrow, with the registered depth and layer kinds.
NARROW = {
    "densenet": {"growth_rate": 32, "initial_filters": 32},
    "resnet": {"filters": (32, 32, 64, 64)},
}


def build(name: str, seed: int, **switches):
    import tensorflow as tf

    import bidense

    width = NARROW["resnet" if "resnet" in name else "densenet"]
    tf.keras.utils.set_random_seed(seed)
    return bidense.create_model(
        name, input_shape=SHAPE, num_classes=10, **width, **switches
    )


def rows_for(name: str, seed: int) -> list[str]:
    from bidense import export

    model = build(name, seed)
    export.calibrate_batchnorm(model, export.fashion_mnist_images(32, SHAPE))
    flatbuffer = export.to_lce(model)
    wrong = build(name, seed, pad_value=0.0)
    wrong.set_weights(model.get_weights())
    images = {
        "Fashion-MNIST": export.fashion_mnist_images(FLAGS.images, SHAPE, offset=32),
        "random normal": export.random_images(FLAGS.images, SHAPE, seed=seed),
    }
    rows = []
    for case, keras_model in (("correct", model), ("wrong", wrong)):
        for kind, batch in images.items():
            parity = export.compare(keras_model, flatbuffer, batch)
            cells = [
                name,
                str(seed),
                case,
                kind,
                str(parity.n),
                f"{parity.argmax_agreement:.3f}",
                f"{parity.strict_agreement:.3f}",
                f"{parity.mean_abs_diff:.1e}",
                f"{parity.max_abs_diff:.2g}",
                "pass" if parity.ok else "**fail**",
            ]
            rows.append("| " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv) -> None:
    if len(argv) > 1:
        common.fail("parity_tolerance.py", f"unexpected arguments {argv[1:]}")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        common.fail("parity_tolerance.py", f"--seeds={FLAGS.seeds}: use integers")
    import bidense
    from bidense.export import parity

    unknown = sorted(set(FLAGS.models) - set(bidense.list_models()))
    if unknown:
        common.fail(
            "parity_tolerance.py",
            f"--models: unknown {unknown}; use {bidense.list_models()}",
        )
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    lines = [
        f"Machine: {common.machine()}  ",
        f"Thresholds (bidense.export.parity): top-1 agreement >= "
        f"{parity.MIN_ARGMAX_AGREEMENT} (near-ties within {parity.TIE_TOLERANCE} "
        f"count), mean |diff| <= {parity.MAX_MEAN_ABS_DIFF}, max |diff| <= "
        f"{parity.MAX_ABS_DIFF}",
        "",
        "| model | seed | conversion | images | n | top-1 agreement | strict "
        "| mean \\|diff\\| | max \\|diff\\| | export.compare |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in FLAGS.models:
        for seed in seeds:
            lines += rows_for(name, seed)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
