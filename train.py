"""Trains a bidense model with its recipe from configs/ (thin absl app).

    python train.py --model binary_densenet28 --dataset fashion_mnist \
        --workdir runs/bdn28_fmnist --config.epochs=2 --config.model.growth_rate=32

Every recipe value and model switch is overridable as --config.KEY=VALUE (the
resolved config.json in the work directory lists all keys). Rerunning the same
command resumes from the last checkpoint; --restart starts the work dir over.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import app, flags, logging  # noqa: E402

from bidense.training import callbacks, cli, experiment, strategies  # noqa: E402
from bidense.training import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Registered model name (bidense.list_models()).")
flags.DEFINE_string("dataset", "fashion_mnist", "TFDS dataset name; picks the recipe.")
flags.DEFINE_string("workdir", None, "Where checkpoints, logs and models go.")
flags.DEFINE_enum(
    "strategy", "default", strategies.STRATEGIES, "tf.distribute strategy."
)
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "TFDS manual download dir.")
flags.DEFINE_string("config_file", None, "Recipe file instead of configs/<model>.py.")
flags.DEFINE_bool("restart", False, "Delete this work dir's previous run first.")
flags.DEFINE_bool(
    "deterministic",
    False,
    "Bit-identical reruns and resumes (sets config.deterministic; slower, see "
    "docs/reliability.md).",
)
flags.mark_flags_as_required(["model", "workdir"])

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROGRAM = "train.py"
_overrides: list[tuple[str, str]] = []


parse_flags = cli.override_parser(PROGRAM, _overrides)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens
    try:
        cli.check_no_extra_args(argv)
        cli.check_model_name(FLAGS.model)
        cfg = config_lib.load_recipe(
            CONFIG_DIR, FLAGS.model, FLAGS.dataset, FLAGS.config_file
        )
        config_lib.apply_overrides(cfg, _overrides)
        if FLAGS.deterministic:
            cfg.deterministic = True
        exp = experiment.setup(
            cfg,
            FLAGS.workdir,
            strategy=FLAGS.strategy,
            tpu_address=FLAGS.tpu,
            data_dir=FLAGS.data_dir,
            manual_dir=FLAGS.manual_dir,
            restart=FLAGS.restart,
        )
    except cli.USER_ERRORS as error:
        cli.fail(PROGRAM, error)
    except callbacks.TrainingError as error:  # e.g. no readable checkpoint
        cli.fail(PROGRAM, error, status=1)
    replicas = exp.strategy.num_replicas_in_sync
    print(f"Training {FLAGS.model} on {replicas} replica(s)", file=sys.stderr)
    if exp.resumes:
        epoch, step = divmod(exp.start_step, exp.steps_per_epoch)
        where = f"epoch {epoch + 1}, step {step}"
        if epoch >= exp.config.epochs:
            where = "training is complete; saving and evaluating only"
        print(
            f"Resuming from {exp.workdir / 'checkpoints'} at global step "
            f"{exp.start_step} ({where})",
            file=sys.stderr,
        )
    try:
        summary = experiment.train(exp)
    except callbacks.TrainingError as error:
        cli.fail(PROGRAM, error, status=1)
    except OSError as error:  # another write (log.csv, best.keras): disk full?
        where = error.filename or f"into --workdir {exp.workdir}"
        reason = error.strerror or str(error)
        cli.fail(
            PROGRAM,
            f"cannot write {where} ({reason}); free disk space (or fix the "
            "permissions) and rerun the same command to resume",
            status=1,
        )
    print(experiment.summary_line(summary))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
