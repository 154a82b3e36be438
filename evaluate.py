"""Evaluates a trained bidense model: top-1, top-5, loss, size, ops, images/s.

    python evaluate.py --workdir runs/bdn28_fmnist            # final.keras of a run
    python evaluate.py --workdir runs/bdn28_fmnist --checkpoint best
    python evaluate.py --model_path my_model.keras --dataset fashion_mnist
    python evaluate.py --model binary_densenet28 --weights w.h5 --dataset cifar10
    python evaluate.py --tflite runs/bdn28_fmnist/model.tflite  # through LCE

Prints one line and writes the results row as JSON and as a CSV row.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import app, flags, logging  # noqa: E402

from bidense.training import cli, evaluation  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A train.py work directory.")
flags.DEFINE_enum("checkpoint", "final", ["final", "best"], "Model of --workdir.")
flags.DEFINE_string(
    "model_path", None, "A saved Keras model (.keras, .h5, SavedModel)."
)
flags.DEFINE_string("model", None, "Registered model name; needs --weights.")
flags.DEFINE_string("weights", None, "Weights file (or 'imagenet') for --model.")
flags.DEFINE_string("tflite", None, "A .tflite file, run by LCE's interpreter.")
flags.DEFINE_string("dataset", None, "TFDS dataset (default: the run's dataset).")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "TFDS manual download dir.")
# Bounds make absl reject bad values as one-line flag errors (a negative batch
# size was a TensorFlow traceback).
flags.DEFINE_integer(
    "batch_size", 0, "Evaluation batch size (0 = the recipe's).", lower_bound=0
)
flags.DEFINE_integer(
    "max_examples", 0, "Evaluate only the first N images (0 = all).", lower_bound=0
)
flags.DEFINE_integer("num_threads", 1, "Threads of the LCE interpreter.", lower_bound=1)
flags.DEFINE_string("output_json", None, "Results JSON (default: in the run's dir).")
flags.DEFINE_string("results_csv", None, "CSV to append the row to (default: same).")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROGRAM = "evaluate.py"
_overrides: list[tuple[str, str]] = []


parse_flags = cli.override_parser(PROGRAM, _overrides)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens
    try:
        cli.check_no_extra_args(argv)
        if FLAGS.model:
            cli.check_model_name(FLAGS.model)
        row = evaluation.run(
            config_dir=CONFIG_DIR,
            workdir=FLAGS.workdir,
            checkpoint=FLAGS.checkpoint,
            model_path=FLAGS.model_path,
            model_name=FLAGS.model,
            weights=FLAGS.weights,
            tflite=FLAGS.tflite,
            dataset=FLAGS.dataset,
            overrides=_overrides,
            data_dir=FLAGS.data_dir,
            manual_dir=FLAGS.manual_dir,
            batch_size=FLAGS.batch_size,
            max_examples=FLAGS.max_examples,
            num_threads=FLAGS.num_threads,
            output_json=FLAGS.output_json,
            results_csv=FLAGS.results_csv,
        )
    except cli.USER_ERRORS as error:
        cli.fail(PROGRAM, error)
    print(evaluation.result_line(row))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
