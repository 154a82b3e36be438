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

import errno
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

# bidense.training.workdir's file names (importing it would load TensorFlow).
MODEL_FILES = {"final": "final.keras", "best": "best.keras"}
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
    if FLAGS.workdir:  # check_inputs made sure the file exists
        name = wd.FINAL_MODEL if FLAGS.checkpoint == "final" else wd.BEST_MODEL
        path = os.path.join(FLAGS.workdir, name)
        try:
            return tf.keras.models.load_model(path, compile=False)
        except Exception as error:  # truncated or foreign file: h5py, zipfile, Keras
            text = str(error).strip().splitlines() or [type(error).__name__]
            raise ValueError(
                f"cannot load {path} ({text[0]}); is it a model train.py wrote?"
            ) from None
    if not FLAGS.model:
        raise ValueError(
            f"give --model (one of: {', '.join(bidense.list_models())}) or --workdir"
        )
    if FLAGS.input_size is not None:
        overrides["input_shape"] = (FLAGS.input_size, FLAGS.input_size, FLAGS.channels)
    return bidense.create_model(FLAGS.model, weights=FLAGS.weights, **overrides)


def run() -> None:
    import tensorflow as tf

    from bidense import export
    from bidense.training.precision import to_float32

    tf.get_logger().setLevel("ERROR")  # Keras' "compiled metrics" notes on save
    # Mixed-precision training keeps float32 variables; export (and the parity
    # check against the flatbuffer) runs the same graph in float32.
    model = to_float32(load_model())
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


def fail(message, status: int = 2) -> None:
    """One line ``export.py: error: ...`` and exit: 2 for bad input, as train.py."""
    text = str(message).strip()
    line = text.splitlines()[0] if text else type(message).__name__
    print(f"export.py: error: {line}", file=sys.stderr)
    sys.exit(status)


def parse_flags(argv):
    """absl's parser, with a bad flag value as one line (absl prints two)."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        fail(error)
    except RecursionError:
        # absl's "did you mean" recurses once per character of an unknown flag
        # (bidense.training.cli.parse_absl_flags explains; importing it here
        # would load TensorFlow before the flags are checked).
        longest = max((arg for arg in argv[1:] if arg.startswith("-")), key=len)
        fail(f"unknown flag {longest[:30]}... ({len(longest)} characters); see --help")


def check_inputs() -> None:
    """Flag combinations and files, checked before TensorFlow even loads (~5 s).

    Also refuses an unwritable --output or --report before the slow conversion.
    """
    if FLAGS.workdir:
        given = [f"--{k}" for k in ("model", "weights", "input_size", *SWITCHES)]
        given = [g for g in given if FLAGS[g[2:]].value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be combined with --workdir: a trained "
                "model is exported as it was trained"
            )
        name = MODEL_FILES[FLAGS.checkpoint]
        if not os.path.isdir(FLAGS.workdir):
            raise FileNotFoundError(
                f"no {name} in --workdir {FLAGS.workdir} (no such directory)"
            )
        if not os.path.isfile(os.path.join(FLAGS.workdir, name)):
            raise FileNotFoundError(f"no {name} in --workdir {FLAGS.workdir}")
    elif FLAGS.weights and FLAGS.weights != "imagenet":
        if not os.path.isfile(FLAGS.weights):
            raise FileNotFoundError(f"--weights file {FLAGS.weights} does not exist")
    for flag in ("output", "report"):
        path = FLAGS[flag].value
        if path is None:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ValueError(f"--{flag} {path} is a directory; give a file name")
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"--{flag} {path}: no directory {parent}")
        if not os.access(parent, os.W_OK):
            raise PermissionError(f"--{flag} {path}: directory {parent} is read-only")


def main(argv) -> None:
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    if len(argv) > 1:
        fail("unexpected arguments: " + " ".join(map(repr, argv[1:])))
    if not FLAGS.output:
        fail("--output is required")
    try:
        check_inputs()
        run()
    except (ValueError, OSError) as error:  # bad input: one line, no traceback
        # Input problems are found before anything is written; an OSError after
        # that (disk full writing the .tflite) is not the input's fault.
        fail(error, status=1 if getattr(error, "errno", None) == errno.ENOSPC else 2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
