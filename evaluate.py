"""Evaluates a trained bidense model: top-1, top-5, loss, size, ops, images/s.

    python evaluate.py --workdir runs/bdn28_fmnist      # the model train.py reported
    python evaluate.py --workdir runs/bdn28_fmnist --checkpoint final --split validation
    python evaluate.py --model_path my_model.keras --dataset fashion_mnist
    python evaluate.py --model binary_densenet28 --weights w.h5 --dataset cifar10
    python evaluate.py --model binary_densenet28 --weights fashion_mnist  # shipped
    python evaluate.py --model_path my_model.keras --dataset ./photos  # a folder
    python evaluate.py --tflite runs/bdn28_fmnist/model.tflite  # through LCE

Prints one line and writes the results row as JSON and as a CSV row.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import flags, logging  # noqa: E402

import cli  # noqa: E402
from bidense.training import evaluation  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROGRAM = "evaluate.py"


def define_flags(flag_values: flags.FlagValues) -> None:
    """evaluate.py's flags (cli.Command defines them where it parses)."""
    fv = flag_values
    flags.DEFINE_string("workdir", None, "A train.py work directory.", flag_values=fv)
    cli.define_checkpoint_flag(fv)
    flags.DEFINE_enum(
        "split",
        "test",
        ["test", "validation"],
        "Split of the run's dataset (bidense.data.splits): the test split, or the "
        "validation split the model was selected on.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "model_path",
        None,
        "A saved Keras model (.keras, .h5, SavedModel).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "model", None, "Registered model name; needs --weights.", flag_values=fv
    )
    flags.DEFINE_string(
        "weights",
        None,
        "Weights for --model: a file, 'imagenet', or 'fashion_mnist' (bidense's "
        "own, evaluated on Fashion-MNIST unless --dataset says otherwise).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "tflite", None, "A .tflite file, run by LCE's interpreter.", flag_values=fv
    )
    flags.DEFINE_string(
        "dataset",
        None,
        "TFDS dataset or image folder (default: the run's dataset).",
        flag_values=fv,
    )
    cli.define_data_flags(fv)
    # Bounds make absl reject bad values as one-line flag errors (a negative
    # batch size would be a TensorFlow traceback).
    flags.DEFINE_integer(
        "batch_size",
        0,
        "Evaluation batch size (0 = the recipe's).",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_examples",
        0,
        "Evaluate only the first N images (0 = all).",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_threads",
        1,
        "Threads of the LCE interpreter.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output_json",
        None,
        "Results JSON (default: in the run's dir).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "results_csv",
        None,
        "CSV to append the row to (default: same).",
        flag_values=fv,
    )


def main(args: cli.Args) -> None:
    f = args.flags
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens
    try:
        if f.model:
            cli.check_model_name(f.model)
        row = evaluation.run(
            config_dir=CONFIG_DIR,
            workdir=f.workdir,
            checkpoint=f.checkpoint,
            split=f.split,
            model_path=f.model_path,
            model_name=f.model,
            weights=f.weights,
            tflite=f.tflite,
            # bidense's own --weights fashion_mnist: their test split by default.
            dataset=f.dataset
            or (cli.dataset_of_weights(f.weights) if f.model else None),
            overrides=args.overrides,
            data_dir=f.data_dir,
            manual_dir=f.manual_dir,
            batch_size=f.batch_size,
            max_examples=f.max_examples,
            num_threads=f.num_threads,
            output_json=f.output_json,
            results_csv=f.results_csv,
        )
    except cli.USER_ERRORS as error:
        cli.fail(PROGRAM, error)
    print(evaluation.result_line(row))


COMMAND = cli.Command(PROGRAM, define_flags, main)

if __name__ == "__main__":
    COMMAND.run()
