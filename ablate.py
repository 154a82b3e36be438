"""Runs an ablation study: every cell x seed through train.py, then tables and plots.

    python ablate.py --study configs/studies/resnet_e18_scaling.py \
        [--variant fashion_mnist] [--parallel 2] [--workdir runs/studies/NAME]
    python ablate.py --study configs/studies/resnet_e18_scaling.py --dataset ./photos

A study (configs/studies/*.py) is a base recipe plus a grid of model switches and
seeds with a reference cell. Each run trains in its own work directory under
--workdir/cells/; --dataset trains every cell on another dataset than the
study's (a TFDS name or an image folder, bidense.data.folders). Rerunning the
command skips finished runs and resumes interrupted ones from train.py's
checkpoints. Results go to --workdir:
results.csv, summary.csv, summary.md and plots/*.png. --report_only rebuilds
those from whatever has finished, without training.
"""

import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import flags  # noqa: E402

import cli  # noqa: E402
from bidense.ablation import grid, plots, results, runner, study  # noqa: E402

REPO = Path(__file__).resolve().parent
PROGRAM = "ablate.py"


def define_flags(flag_values: flags.FlagValues) -> None:
    """ablate.py's flags (cli.Command defines them where it parses)."""
    fv = flag_values
    flags.DEFINE_string(
        "study", None, "Study file, e.g. configs/studies/NAME.py.", flag_values=fv
    )
    flags.DEFINE_string(
        "variant", None, "Study variant (default: the file's DEFAULT).", flag_values=fv
    )
    flags.DEFINE_string(
        "workdir",
        None,
        "Study directory (default runs/studies/<file>/<variant>).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "dataset",
        None,
        "TFDS dataset or image folder instead of the study's (default workdir: "
        "runs/studies/<file>/<variant>-<dataset>).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "parallel", 1, "Runs trained at the same time (processes).", flag_values=fv
    )
    flags.DEFINE_list(
        "seeds", None, "Override the study's seeds, e.g. 1,2,3.", flag_values=fv
    )
    flags.DEFINE_string(
        "data_dir", None, "TFDS data dir, passed on to train.py.", flag_values=fv
    )
    flags.DEFINE_string(
        "launcher",
        None,
        "Command that runs train.py (default: this Python).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "report_only", False, "Only collect results and draw plots.", flag_values=fv
    )
    flags.DEFINE_bool(
        "dry_run", False, "Print the train.py commands and exit.", flag_values=fv
    )
    flags.DEFINE_bool(
        "check_models",
        True,
        "Build every cell's model before training.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["study"], flag_values=fv)


def setup(f: flags.FlagValues):
    """Loads and checks the study; everything here is a one-line user error."""
    spec, variant = study.load_study(f.study, f.variant)
    if f.seeds:
        try:
            seeds = tuple(int(s) for s in f.seeds)
        except ValueError:
            raise study.StudyError(f"--seeds must be integers, got {f.seeds}") from None
        spec = spec.replace(seeds=seeds)
        study.check_shape(spec)
    if f.dataset:
        spec = spec.replace(dataset=f.dataset)
    if f.parallel < 1:
        raise study.StudyError("--parallel must be >= 1")
    if not f.report_only:
        check_folder(spec.dataset)
    cells = grid.expand(spec)
    if not f.report_only:
        runner.check_cells(spec, cells, REPO / "configs", build=f.check_models)
    workdir = Path(f.workdir or REPO / "runs" / "studies" / Path(f.study).stem)
    if not f.workdir:
        workdir = workdir / (
            f"{variant}-{dataset_label(f.dataset)}" if f.dataset else variant
        )
    return spec, variant, cells, workdir


def dataset_label(name: str) -> str:
    """A folder's own name, or the TFDS name, as one path component."""
    from bidense.data import folders

    if folders.is_folder_name(name):
        name = Path(folders.canonical_name(name)).name
    return name.replace("/", "_").replace(":", "_")


def check_folder(name: str) -> None:
    """An image folder's layout, checked once here rather than by every run."""
    from bidense.data import folders

    if folders.is_folder_name(name):
        folders.open_folder(name)


def main(args: cli.Args) -> int:
    f = args.flags
    try:
        spec, variant, cells, workdir = setup(f)
    except cli.USER_ERRORS as error:
        cli.fail(PROGRAM, error)
    runs = grid.runs(spec, cells, workdir)
    launcher = shlex.split(f.launcher) if f.launcher else [sys.executable]
    extra = ["--data_dir", f.data_dir] if f.data_dir else []
    if f.dry_run:
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
    try:
        if not f.report_only:
            outcomes = runner.run_all(
                spec, runs, parallel=f.parallel, launcher=launcher,
                train_script=REPO / "train.py", extra_args=extra, cwd=REPO,
                echo=lambda text: print(text, file=sys.stderr, flush=True),
            )  # fmt: skip
            failed = [o for o in outcomes if o.status == "failed"]
        report(spec, cells, runs, workdir)
    except KeyboardInterrupt:
        print(
            f"{PROGRAM}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except study.StudyError as error:  # a damaged file in a run's directory
        cli.fail(PROGRAM, error, status=2 if f.report_only else 1)
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


COMMAND = cli.Command(PROGRAM, define_flags, main, overrides=False)

if __name__ == "__main__":
    COMMAND.run()
