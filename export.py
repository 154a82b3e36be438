"""Exports a bidense model to a Larq Compute Engine ``.tflite``, checked.

    python export.py --model binary_densenet28 --output bd28.tflite
    python export.py --model binary_densenet28 --input_size 32 --num_classes 10 \
        --weights my_weights.h5 --output bd28_cifar.tflite
    python export.py --model binary_densenet28 --config.model.growth_rate=32 \
        --config.model.scaling=xnor --output bd28_k32_xnor.tflite
    python export.py --workdir runs/bd28 --output bd28.tflite   # train.py's model
    python export.py --workdir runs/bd28 --int8 --output bd28_int8.tflite
    python export.py --model binary_densenet28 --weights w.h5 --input_size 28 \
        --channels 1 --num_classes 10 --dataset fashion_mnist --output bd28.tflite

Every architecture switch of bidense.create_model is --config.model.SWITCH=VALUE,
checked as in train.py. The conversion is inspected op by op (bidense.export):
any binary layer left in float, or an unexpected op, is an error naming the
layer, unless --allow_float_fallback. With --int8 the stem, downsampling and
classifier layers become int8 ops, calibrated on the model's training images,
and every one of them is checked too; --int8_finetune_steps N first fine-tunes
the weights for N steps against the int8 rounding (docs/deployment.md). Prints
the op table, the file size against bidense.model_stats' prediction, and the
LCE interpreter's agreement with Keras on the model's own test images (a work
dir's dataset, or --dataset) and on random images; without a dataset, on random
images only, and it says so. Writes the class names next to the file
(<output>.labels.txt) when they are known.
"""

import errno
import os

# Before TensorFlow loads: keep its C++ INFO chatter (and LCE's) off the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

import cli  # noqa: E402  (no TensorFlow: bad flags fail in a fraction of a second)

PROGRAM = "export.py"
# Builder arguments that are flags here; every other switch is --config.model.X.
SHAPE_FLAGS = ("input_size", "num_classes", "include_top")


def define_flags(flag_values: flags.FlagValues) -> None:
    """export.py's flags (cli.Command defines them where it parses)."""
    fv = flag_values
    flags.DEFINE_string(
        "model", None, "Registered model name (bidense.list_models()).", flag_values=fv
    )
    flags.DEFINE_string(
        "weights",
        None,
        "Weights file, 'imagenet' or 'fashion_mnist' (bidense's own) for --model.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "workdir", None, "train.py work directory: exports its model.", flag_values=fv
    )
    cli.define_checkpoint_flag(fv)
    flags.DEFINE_string(
        "output", None, "Where to write the .tflite file.", flag_values=fv
    )
    flags.DEFINE_string(
        "report", None, "Optional path for the Markdown report.", flag_values=fv
    )
    flags.DEFINE_bool(
        "allow_float_fallback",
        False,
        "Export even if a binary layer stays float or an unexpected op appears.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "converter",
        "lean",
        ["lean", "keras"],
        "lean: weights-only SavedModel + lce.convert_saved_model (6x faster); "
        "keras: lce.convert_keras_model. Same ops (bidense.export.to_lce).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "parity_images", 16, "Images per parity check; 0 skips it.", flag_values=fv
    )
    flags.DEFINE_integer(
        "calibrate_bn",
        0,
        "Set BN statistics from this many training images of the model's dataset "
        "(random normal ones without a dataset) before export: makes random-weight "
        "demo exports realistic (zero BN shifts would fold away ADDs).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "dataset",
        None,
        "The --model's dataset (TFDS name or folder): its test images check "
        "parity, its training images calibrate --calibrate_bn and --int8. A "
        "--workdir's is the run's own.",
        flag_values=fv,
    )
    cli.define_data_flags(fv)
    flags.DEFINE_bool(
        "int8",
        False,
        "Stem, downsampling and classifier layers as int8 ops (ranges calibrated "
        "on the model's training images); binary convs stay LceBconv2d.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "int8_io",
        False,
        "With --int8: int8 model input and output (the report gives their scale "
        "and zero point) instead of float32.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "int8_calibration_images",
        1000,
        "Training images that set the --int8 ranges.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "int8_percentile",
        None,
        "With --int8: each range spans this percentile of the calibration values "
        "and its mirror (100 = min and max; default: bidense.export.int8's).",
        lower_bound=50.0,
        upper_bound=100.0,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "int8_finetune_steps",
        0,
        "With --int8: steps of a quantization-aware fine-tune on the training "
        "images before calibrating (bidense.export.qat; 0 = none).",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "int8_finetune_learning_rate",
        None,
        "With --int8_finetune_steps: Adam's learning rate (default: "
        "bidense.export.qat's).",
        lower_bound=0.0,
        flag_values=fv,
    )
    # The input and the classifier; None = the builder's default. Architecture
    # switches are --config.model.SWITCH=VALUE, as in train.py.
    flags.DEFINE_integer(
        "input_size", None, "Input height and width (default 224).", flag_values=fv
    )
    flags.DEFINE_integer("channels", 3, "Input channels.", flag_values=fv)
    flags.DEFINE_integer("num_classes", None, "Classes (default 1000).", flag_values=fv)
    flags.DEFINE_bool(
        "include_top", None, "Keep the classifier (default true).", flag_values=fv
    )


def switch_overrides(model: str, overrides) -> dict:
    """The ``--config.model.X`` overrides, checked against ``model``'s switches.

    The same validation as train.py's (``config.apply_overrides``): an unknown
    switch or a value of the wrong type is a one-line ConfigError.
    """
    import ml_collections

    from bidense.training import config as config_lib

    for key, _ in overrides:
        if not key.startswith("model."):
            raise config_lib.ConfigError(
                f"export.py takes the model's switches only (--config.model.SWITCH), "
                f"not --config.{cli.shown(key)}"
            )
    cfg = ml_collections.ConfigDict({"model": config_lib.model_switches(model)})
    config_lib.apply_overrides(cfg, list(overrides))
    given = {key.split(".", 1)[1] for key, _ in overrides}
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config_lib.to_dict(cfg.model).items()
        if key in given
    }


def load_model(args: cli.Args):
    """The Keras model the flags describe; ValueError/OSError on bad input."""
    import bidense
    from bidense.training import evaluation

    f = args.flags
    if f.workdir:
        path = evaluation.workdir_model(f.workdir, f.checkpoint)
        return evaluation.load_keras_model(path, hint=evaluation.WORKDIR_HINT)
    if not f.model:
        raise ValueError(
            f"give --model (one of: {', '.join(bidense.list_models())}) or --workdir"
        )
    kwargs = switch_overrides(f.model, args.overrides)
    if f.num_classes is not None:
        kwargs["num_classes"] = f.num_classes
    if f.include_top is not None:
        kwargs["include_top"] = f.include_top
    if f.input_size is not None:
        kwargs["input_shape"] = (f.input_size, f.input_size, f.channels)
    return bidense.create_model(f.model, weights=f.weights, **kwargs)


def model_dataset(f) -> str | None:
    """--dataset, or the data bidense's own ``--weights fashion_mnist`` were
    trained on: parity and --int8 ranges then use it without the flag."""
    return f.dataset if f.dataset is not None else cli.dataset_of_weights(f.weights)


def run(args: cli.Args) -> None:
    import tensorflow as tf

    from bidense import export
    from bidense.export import int8
    from bidense.training.precision import to_float32

    f = args.flags
    tf.get_logger().setLevel("ERROR")  # Keras' "compiled metrics" notes on save
    # Mixed-precision training keeps float32 variables; export (and the parity
    # check against the flatbuffer) runs the same graph in float32.
    model = to_float32(load_model(args))
    if f.int8:
        int8.check_supported(model)  # XNOR scaling: refused before reading data
    data = export.model_data(
        model,
        workdir=f.workdir,
        dataset=model_dataset(f),
        data_dir=f.data_dir,
        manual_dir=f.manual_dir,
    )
    if f.int8:
        data.require("--int8")
    shape = tuple(model.input_shape[1:])
    notes = []
    if f.calibrate_bn > 0:
        if data.available:
            images = data.train_images(f.calibrate_bn)
            what = f"{len(images)} images of {data.name} {data.train_split}"
        else:
            images = export.random_images(f.calibrate_bn, shape, seed=1)
            what = f"{len(images)} random normal images ({data.note})"
        export.calibrate_batchnorm(model, images)
        notes.append(f"- BN statistics calibrated on {what}")
    options = dict(allow_float_fallback=f.allow_float_fallback, converter=f.converter)
    if f.int8:
        flatbuffer, report = export.export_int8(
            model,
            lambda: data.batches(data.train_split, f.int8_calibration_images),
            f.output,
            int8_io=f.int8_io,
            calibration_source=f"{data.name} {data.train_split}",
            percentile=f.int8_percentile,
            finetune_steps=f.int8_finetune_steps,
            # The whole training split, read in order and started over as needed.
            finetune_images=lambda: data.batches(data.train_split, 2**62),
            finetune_learning_rate=f.int8_finetune_learning_rate,
            **options,
        )
    else:
        flatbuffer, report = export.export_model(model, f.output, **options)
    lines = [report.to_markdown(), "", *notes]
    if f.parity_images > 0:
        lines += parity_lines(model, flatbuffer, data, f.parity_images, f.int8)
    lines.append(f"\nWrote {f.output} ({report.file_bytes:,} bytes).")
    if data.labels:
        labels = f"{f.output}.labels.txt"
        with open(labels, "w") as out:
            out.write("\n".join(data.labels) + "\n")
        lines.append(f"Wrote {labels} ({len(data.labels)} class names).")
    text = "\n".join(lines)
    print(text)
    if f.report:
        with open(f.report, "w") as out:
            out.write(text + "\n")


def parity_lines(model, flatbuffer, data, n: int, int8: bool) -> list[str]:
    """LCE vs Keras on the model's test images (and random ones), one line each.

    An int8 file is held to the float Keras model by the top-1 criterion only
    (int8 rounding moves the softmax by more than the float tolerance), on its
    own images only: random normal inputs lie outside the calibrated ranges.
    """
    from bidense import export

    shape = tuple(model.input_shape[1:])
    cases = []
    if data.available:
        cases.append((f"{data.name} {data.test_split}", data.test_images(n)))
        lines = [f"- parity images: the first {n} of {data.test_split} of {data.note}"]
    else:
        lines = [f"- parity on synthetic (random normal) images only: {data.note}"]
    if not int8:
        cases.append(("random normal", export.random_images(n, shape)))
    for label, images in cases:
        parity = export.compare(model, flatbuffer, images)
        ok = parity.top1_ok if int8 else parity.ok
        what = "LCE int8 vs Keras float (top-1)" if int8 else "LCE vs Keras"
        verdict = "OK" if ok else "OUT OF TOLERANCE"
        lines.append(f"- {what}, {label}: {parity} -> {verdict}")
    return lines


def check_inputs(args: cli.Args) -> None:
    """Flag combinations and files, checked before TensorFlow even loads (~5 s).

    Also refuses an unwritable --output or --report before the slow conversion.
    The work dir's model is looked for once TensorFlow is loaded: its file name
    is bidense.training.workdir's (evaluation.workdir_model).
    """
    f = args.flags
    if not f.output:
        raise ValueError("--output is required")
    if f.workdir:
        given = [
            f"--{name}"
            for name in ("model", "weights", *SHAPE_FLAGS)
            if f[name].value is not None
        ]
        given += sorted({f"--config.{key}" for key, _ in args.overrides})
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be combined with --workdir: a trained "
                "model is exported as it was trained"
            )
        if f.dataset is not None:
            raise ValueError(
                "--dataset cannot be combined with --workdir: the run's own dataset "
                "(its config.json) is used"
            )
    elif f.weights and f.weights not in ("imagenet", "fashion_mnist"):
        if not os.path.isfile(f.weights):
            raise FileNotFoundError(f"--weights file {f.weights} does not exist")
    for flag in ("int8_io", "int8_percentile", "int8_finetune_steps"):
        if f[flag].value not in (None, False, 0) and not f.int8:
            raise ValueError(f"--{flag} needs --int8")
    if f.int8_finetune_learning_rate == 0:
        raise ValueError("--int8_finetune_learning_rate must be positive")
    if f.int8_finetune_learning_rate is not None and not f.int8_finetune_steps:
        raise ValueError("--int8_finetune_learning_rate needs --int8_finetune_steps")
    if f.int8 and not f.workdir and not model_dataset(f):
        raise ValueError(
            "--int8 needs the model's training data to calibrate on: pass --dataset "
            "NAME_OR_PATH (the dataset it was trained on), or export a train.py "
            "--workdir"
        )
    for flag in ("output", "report"):
        path = f[flag].value
        if path is None:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ValueError(f"--{flag} {path} is a directory; give a file name")
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"--{flag} {path}: no directory {parent}")
        if not os.access(parent, os.W_OK):
            raise PermissionError(f"--{flag} {path}: directory {parent} is read-only")


def main(args: cli.Args) -> None:
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    try:
        check_inputs(args)
        run(args)
    except (ValueError, OSError) as error:  # bad input: one line, no traceback
        # Input problems are found before anything is written; an OSError after
        # that (disk full writing the .tflite) is not the input's fault.
        status = 1 if getattr(error, "errno", None) == errno.ENOSPC else 2
        cli.fail(PROGRAM, error, status=status)


COMMAND = cli.Command(PROGRAM, define_flags, main)

if __name__ == "__main__":
    COMMAND.run()
