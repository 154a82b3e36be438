"""Runs an ablation study: every cell x seed through train.py, then tables and plots.

    python ablate.py --study configs/studies/resnet_e18_scaling.py \
        [--variant fashion_mnist] [--parallel 2] [--workdir runs/studies/NAME]

A study (configs/studies/*.py) is a base recipe plus a grid of model switches and
seeds with a reference cell. Each run trains in its own work directory under
--workdir/cells/; rerunning the command skips finished runs and resumes
interrupted ones from train.py's checkpoints. Results go to --workdir:
results.csv, summary.csv, summary.md and plots/*.png. --report_only rebuilds
those from whatever has finished, without training.
"""

import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import app, flags  # noqa: E402

from bidense.ablation import grid, plots, results, runner, study  # noqa: E402
from bidense.training import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("study", None, "Study file, e.g. configs/studies/NAME.py.")
flags.DEFINE_string("variant", None, "Study variant (default: the file's DEFAULT).")
flags.DEFINE_string(
    "workdir", None, "Study directory (default runs/studies/<file>/<variant>)."
)
flags.DEFINE_integer("parallel", 1, "Runs trained at the same time (processes).")
flags.DEFINE_list("seeds", None, "Override the study's seeds, e.g. 1,2,3.")
flags.DEFINE_string("data_dir", None, "TFDS data dir, passed on to train.py.")
flags.DEFINE_string(
    "launcher", None, "Command that runs train.py (default: this Python)."
)
flags.DEFINE_bool("report_only", False, "Only collect results and draw plots.")
flags.DEFINE_bool("dry_run", False, "Print the train.py commands and exit.")
flags.DEFINE_bool("check_models", True, "Build every cell's model before training.")
flags.mark_flags_as_required(["study"])

REPO = Path(__file__).resolve().parent
PROGRAM = "ablate.py"


def fail(message) -> None:
    print(f"{PROGRAM}: error: {str(message).strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv):
    try:
        return cli.parse_absl_flags(argv)
    except flags.Error as error:
        fail(error)


def setup():
    """Loads and checks the study; everything here is a one-line user error."""
    spec, variant = study.load_study(FLAGS.study, FLAGS.variant)
    if FLAGS.seeds:
        try:
            seeds = tuple(int(s) for s in FLAGS.seeds)
        except ValueError:
            raise study.StudyError(
                f"--seeds must be integers, got {FLAGS.seeds}"
            ) from None
        spec = spec.replace(seeds=seeds)
        study.check_shape(spec)
    if FLAGS.parallel < 1:
        raise study.StudyError("--parallel must be >= 1")
    cells = grid.expand(spec)
    if not FLAGS.report_only:
        runner.check_cells(spec, cells, REPO / "configs", build=FLAGS.check_models)
    workdir = Path(FLAGS.workdir or REPO / "runs" / "studies" / Path(FLAGS.study).stem)
    if not FLAGS.workdir:
        workdir = workdir / variant
    return spec, variant, cells, workdir


def main(argv):
    try:
        cli.check_no_extra_args(argv)
        spec, variant, cells, workdir = setup()
    except (study.StudyError, ValueError, FileNotFoundError) as error:
        fail(error)
    runs = grid.runs(spec, cells, workdir)
    launcher = shlex.split(FLAGS.launcher) if FLAGS.launcher else [sys.executable]
    extra = ["--data_dir", FLAGS.data_dir] if FLAGS.data_dir else []
    if FLAGS.dry_run:
        for run in runs:
            argv = runner.command(
                spec, run, launcher=launcher, train_script=REPO / "train.py",
                extra_args=extra,
            )  # fmt: skip
            print(f"# {run.name} [{runner.state(run)}]\n{shlex.join(argv)}")
        return 0
    print(
        f"{spec.name} ({variant}): {len(cells)} cells x {len(spec.seeds)} seeds "
        f"-> {workdir}",
        file=sys.stderr,
    )
    failed = []
    if not FLAGS.report_only:
        try:
            outcomes = runner.run_all(
                spec, runs, parallel=FLAGS.parallel, launcher=launcher,
                train_script=REPO / "train.py", extra_args=extra, cwd=REPO,
                echo=lambda text: print(text, file=sys.stderr, flush=True),
            )  # fmt: skip
        except KeyboardInterrupt:
            print(
                f"{PROGRAM}: interrupted; rerun the same command to resume",
                file=sys.stderr,
            )
            return 130
        failed = [o for o in outcomes if o.status == "failed"]
    report(spec, cells, runs, workdir)
    if failed:
        print(
            f"{PROGRAM}: {len(failed)} of {len(runs)} runs failed; rerun to retry "
            "(finished runs are skipped)",
            file=sys.stderr,
        )
        return 1
    return 0


def report(spec, cells, runs, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    rows = results.collect(runs)
    results.write_csv(rows, workdir / results.RESULTS)
    table = results.summarize(spec, cells, rows)
    print(results.write_summary(spec, table, workdir))
    drawn = plots.draw_all(spec, table, workdir / "plots")
    print(
        f"{len(rows)} of {len(runs)} runs finished; wrote {workdir / results.RESULTS}, "
        f"{results.SUMMARY_MD} and {len(drawn)} plots in {workdir / 'plots'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
