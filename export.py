"""Exports a bidense model to a Larq Compute Engine ``.tflite``, checked.

    python export.py --model binary_densenet28 --output bd28.tflite
    python export.py --model binary_densenet28 --input_size 32 --num_classes 10 \
        --weights my_weights.h5 --output bd28_cifar.tflite
    python export.py --workdir runs/bd28 --output bd28.tflite   # train.py's final.keras

The conversion is inspected op by op (bidense.export): any binary layer left in
float, or an unexpected op, is an error naming the layer, unless
--allow_float_fallback. Prints the op table, the file size against
bidense.model_stats' prediction, and the LCE interpreter's agreement with Keras
on Fashion-MNIST and random images.
"""

import os
import sys

# Before TensorFlow loads: keep its C++ INFO chatter (and LCE's) off the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Registered model name (bidense.list_models()).")
flags.DEFINE_string("weights", None, "Weights file (or 'imagenet') for --model.")
flags.DEFINE_string("workdir", None, "train.py work directory: exports its model.")
flags.DEFINE_enum("checkpoint", "final", ["final", "best"], "Model of --workdir.")
flags.DEFINE_string("output", None, "Where to write the .tflite file.")
flags.DEFINE_string("report", None, "Optional path for the Markdown report.")
flags.DEFINE_bool(
    "allow_float_fallback",
    False,
    "Export even if a binary layer stays float or an unexpected op appears.",
)
flags.DEFINE_enum(
    "converter",
    "lean",
    ["lean", "keras"],
    "lean: weights-only SavedModel + lce.convert_saved_model (6x faster); "
    "keras: lce.convert_keras_model. Same ops (bidense.export.to_lce).",
)
flags.DEFINE_integer("parity_images", 16, "Images per parity check; 0 skips it.")
flags.DEFINE_integer(
    "calibrate_bn",
    0,
    "Set BN statistics from this many Fashion-MNIST images before export: makes "
    "random-weight demo exports realistic (zero BN shifts would fold away ADDs).",
)
# Model arguments; None = the builder's default.
flags.DEFINE_integer("input_size", None, "Input height and width (default 224).")
flags.DEFINE_integer("channels", 3, "Input channels.")
flags.DEFINE_integer("num_classes", None, "Classes (default 1000).")
flags.DEFINE_bool("include_top", None, "Keep the classifier (default true).")
flags.DEFINE_bool("binary", None, "False exports the full-precision twin.")
flags.DEFINE_string("fp_activation", None, "Twin's activation.")
flags.DEFINE_string("scaling", None, "none | xnor | magnitude.")
flags.DEFINE_string("gradient", None, "ste | approx_sign (no effect on export).")
flags.DEFINE_float("clip_value", None, "Weight clip value.")
flags.DEFINE_string("downsample", None, "fp | binary.")
flags.DEFINE_float("pad_value", None, "Binary conv padding: 1.0 (LCE) or 0.0 (zoo).")
flags.DEFINE_string("stem", None, "imagenet | cifar (default: from input size).")

SWITCHES = (
    "num_classes",
    "include_top",
    "binary",
    "fp_activation",
    "scaling",
    "gradient",
    "clip_value",
    "downsample",
    "pad_value",
    "stem",
)


def load_model():
    """The Keras model the flags describe; ValueError/OSError on bad input."""
    import tensorflow as tf

    import bidense
    from bidense.training import workdir as wd

    overrides = {k: FLAGS[k].value for k in SWITCHES if FLAGS[k].value is not None}
    if FLAGS.workdir:
        given = [f"--{k}" for k in ("model", "weights", "input_size", *overrides)]
        given = [g for g in given if FLAGS[g[2:]].value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be combined with --workdir: a trained "
                "model is exported as it was trained"
            )
        name = wd.FINAL_MODEL if FLAGS.checkpoint == "final" else wd.BEST_MODEL
        path = os.path.join(FLAGS.workdir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {name} in --workdir {FLAGS.workdir}")
        return tf.keras.models.load_model(path, compile=False)
    if not FLAGS.model:
        raise ValueError(
            f"give --model (one of: {', '.join(bidense.list_models())}) or --workdir"
        )
    if FLAGS.weights and FLAGS.weights != "imagenet":
        if not os.path.isfile(FLAGS.weights):
            raise FileNotFoundError(f"--weights file {FLAGS.weights} does not exist")
    if FLAGS.input_size is not None:
        overrides["input_shape"] = (FLAGS.input_size, FLAGS.input_size, FLAGS.channels)
    return bidense.create_model(FLAGS.model, weights=FLAGS.weights, **overrides)


def run() -> None:
    import tensorflow as tf

    from bidense import export

    tf.get_logger().setLevel("ERROR")  # Keras' "compiled metrics" notes on save
    model = load_model()
    if FLAGS.calibrate_bn > 0:
        shape = tuple(model.input_shape[1:])
        images = export.fashion_mnist_images(FLAGS.calibrate_bn, shape, offset=1000)
        export.calibrate_batchnorm(model, images)
    flatbuffer, report = export.export_model(
        model,
        FLAGS.output,
        allow_float_fallback=FLAGS.allow_float_fallback,
        converter=FLAGS.converter,
    )
    lines = [report.to_markdown(), ""]
    if FLAGS.parity_images > 0:
        shape = tuple(model.input_shape[1:])
        for label, images in (
            ("Fashion-MNIST", export.fashion_mnist_images(FLAGS.parity_images, shape)),
            ("random normal", export.random_images(FLAGS.parity_images, shape)),
        ):
            parity = export.compare(model, flatbuffer, images)
            verdict = "OK" if parity.ok else "OUT OF TOLERANCE"
            lines.append(f"- LCE vs Keras, {label}: {parity} -> {verdict}")
    lines.append(f"\nWrote {FLAGS.output} ({report.file_bytes:,} bytes).")
    text = "\n".join(lines)
    print(text)
    if FLAGS.report:
        with open(FLAGS.report, "w") as f:
            f.write(text + "\n")


def main(argv) -> None:
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    if len(argv) > 1:
        sys.exit(f"export.py: error: unexpected arguments {argv[1:]}")
    if not FLAGS.output:
        sys.exit("export.py: error: --output is required")
    try:
        run()
    except (ValueError, OSError) as error:  # bad input: one line, no traceback
        sys.exit(f"export.py: error: {error}")


if __name__ == "__main__":
    app.run(main)
