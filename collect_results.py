"""Regenerates a results table from finished train.py work dirs (thin absl app).

    python collect_results.py --runs runs/fmnist --output results/fashion_mnist.csv \
        --plot docs/results/accuracy_vs_minutes.png --doc docs/results.md

``--keep_missing`` keeps the table's rows of runs whose work dirs are not here
(made on another machine or in another session) and regenerates the rest.

One row per finished run (bidense.results: model, non-default switches, recipe,
epochs, seed, validation top-1, test top-1/top-5, params, size, wall minutes, CPU
and the command). ``--doc`` replaces the part of a Markdown file between the
``<!-- results:begin -->`` and ``<!-- results:end -->`` lines with the table.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from absl import flags  # noqa: E402

import cli  # noqa: E402

PROGRAM = "collect_results.py"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def define_flags(flag_values: flags.FlagValues) -> None:
    fv = flag_values
    flags.DEFINE_list(
        "runs", None, "Directories searched for finished work dirs.", flag_values=fv
    )
    flags.DEFINE_string(
        "dataset", None, "Keep only runs on this dataset.", flag_values=fv
    )
    flags.DEFINE_string("output", None, "The CSV to (re)write.", flag_values=fv)
    flags.DEFINE_string(
        "plot", None, "PNG of test top-1 against wall minutes.", flag_values=fv
    )
    flags.DEFINE_string(
        "doc",
        None,
        "Markdown file whose results section gets the table.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "keep_missing",
        False,
        "Keep the rows of --output whose run is not under --runs (runs of another "
        "machine or session, whose work dirs are not here); the rows of runs "
        "found are regenerated.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["runs", "output"], flag_values=fv)


def replace_section(text: str, table: str, path) -> str:
    """``text`` with the lines between BEGIN and END replaced by ``table``."""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ValueError(
            f"{path} has no '{BEGIN}' ... '{END}' section; add those two lines "
            "where the table goes"
        )
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(args: cli.Args) -> None:
    f = args.flags
    from bidense import results

    try:
        missing = [root for root in f.runs if not Path(root).is_dir()]
        if missing:
            raise ValueError(f"--runs {missing[0]} is not a directory")
        rows = [results.row(path, name) for path, name in results.named_runs(f.runs)]
        if f.keep_missing and Path(f.output).exists():
            rows = results.merge(rows, results.read_csv(f.output))
        if f.dataset:
            rows = [row for row in rows if row["dataset"] == f.dataset]
        if not rows:
            raise ValueError(
                f"no finished run (a work dir with summary.json) under "
                f"{', '.join(f.runs)}"
            )
        doc = Path(f.doc) if f.doc else None
        new_doc = doc and replace_section(doc.read_text(), results.markdown(rows), doc)
    except (ValueError, OSError) as error:
        cli.fail(PROGRAM, error)
    results.write_csv(rows, f.output)
    if f.plot:
        results.plot_accuracy_vs_minutes(rows, f.plot)
    if doc:
        doc.write_text(new_doc)
    print(f"{len(rows)} runs -> {f.output}")


COMMAND = cli.Command(PROGRAM, define_flags, main, overrides=False)

if __name__ == "__main__":
    COMMAND.run()
