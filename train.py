"""Trains a bidense model with its recipe from configs/ (thin absl app).

    python train.py --model binary_densenet28 --dataset fashion_mnist \
        --workdir runs/bdn28_fmnist --config.epochs=2 --config.model.growth_rate=32
    python train.py --model binary_densenet28 --dataset ./photos --workdir runs/photos

Every recipe value and model switch is overridable as --config.KEY=VALUE (the
resolved config.json in the work directory lists all keys). Rerunning the same
command resumes from the last checkpoint; --restart starts the work dir over.
"""

import os
import sys
import time

STARTED = time.perf_counter()  # the session's wall time includes loading TensorFlow

from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import flags, logging  # noqa: E402

import cli  # noqa: E402
from bidense import provenance  # noqa: E402
from bidense.training import config as config_lib  # noqa: E402
from bidense.training import errors, experiment, finetune, loop, strategies  # noqa: E402
from bidense.training.summary import summary_line  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROGRAM = "train.py"


def define_flags(flag_values: flags.FlagValues) -> None:
    """train.py's flags (cli.Command defines them where it parses)."""
    fv = flag_values
    flags.DEFINE_string(
        "model", None, "Registered model name (bidense.list_models()).", flag_values=fv
    )
    flags.DEFINE_string(
        "dataset",
        "fashion_mnist",
        "TFDS dataset name, or a folder with one folder of images per class "
        "(./photos); picks the recipe.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "workdir", None, "Where checkpoints, logs and models go.", flag_values=fv
    )
    flags.DEFINE_enum(
        "strategy",
        "default",
        strategies.STRATEGIES,
        "tf.distribute strategy.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "tpu", "", "TPU name or address for --strategy=tpu.", flag_values=fv
    )
    cli.define_data_flags(fv)
    flags.DEFINE_string(
        "config_file",
        None,
        "Recipe file instead of configs/<model>.py.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "restart", False, "Delete this work dir's previous run first.", flag_values=fv
    )
    flags.DEFINE_bool(
        "deterministic",
        False,
        "Bit-identical reruns and resumes (sets config.deterministic; slower, see "
        "docs/reliability.md).",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["model", "workdir"], flag_values=fv)


def resolve_config(args: cli.Args):
    """The recipe with the command line applied; ValueError on bad input."""
    f = args.flags
    cli.check_model_name(f.model)
    cfg = config_lib.load_recipe(CONFIG_DIR, f.model, f.dataset, f.config_file)
    config_lib.apply_overrides(cfg, args.overrides)
    # Fine-tuning: the backbone switches left open follow the weights'.
    finetune.adopt_switches(cfg, {key for key, _ in args.overrides})
    if cfg.distill.teacher:
        # Recorded by its absolute path, like an image folder, so that the
        # results rows (teacher minutes) find it from any directory.
        cfg.distill.teacher = str(Path(cfg.distill.teacher).absolute())
    if f.deterministic:
        cfg.deterministic = True
    return cfg


def main(args: cli.Args) -> None:
    f = args.flags
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens
    try:
        exp = experiment.setup(
            resolve_config(args),
            f.workdir,
            strategy=f.strategy,
            tpu_address=f.tpu,
            data_dir=f.data_dir,
            manual_dir=f.manual_dir,
            restart=f.restart,
        )
    except cli.USER_ERRORS as error:
        cli.fail(PROGRAM, error)
    except errors.TrainingError as error:  # e.g. no readable checkpoint
        cli.fail(PROGRAM, error, status=1)
    replicas = exp.strategy.num_replicas_in_sync
    print(f"Training {f.model} on {replicas} replica(s)", file=sys.stderr)
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
    session = provenance.Session(
        provenance.command_line(PROGRAM, list(args.argv[1:])), started=STARTED
    )
    try:
        summary = loop.train(exp)
    except errors.TrainingError as error:
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
    if exp.is_chief:
        recipe = Path(f.config_file).stem if f.config_file else f.model
        session.record(exp.workdir, recipe=f"{recipe}:{f.dataset}")
    print(summary_line(summary))


COMMAND = cli.Command(PROGRAM, define_flags, main)

if __name__ == "__main__":
    COMMAND.run()
