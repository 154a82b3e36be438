"""collect_results.py: the results table is generated from finished work dirs.

Every accuracy in docs/results.md is a row of results/*.csv, and every row is read
from a work dir's config.json, summary.json and sessions.jsonl, never typed in.
"""

import csv
import json

from mock_cli import run_in_process

from bidense import results


def collect(*args):
    return run_in_process("collect_results.py", *args, mock=False)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_finished_run_read_from_its_work_dir(tiny_run, tmp_path):
    runs = tmp_path / "runs"
    tiny_run.copy(runs / "a")
    tiny_run.copy(runs / "nested" / "b")
    tiny_run.copy(runs / "study" / "cells" / "scaling-xnor" / "seed1")
    (runs / "unfinished").mkdir()  # no summary.json: not a row
    doc = tmp_path / "results.md"
    doc.write_text(
        "# Results\n<!-- results:begin -->\nold\n<!-- results:end -->\nend\n"
    )
    out = tmp_path / "table.csv"
    plot = tmp_path / "plot.png"

    done = collect("--runs", runs, "--output", out, "--plot", plot, "--doc", doc)

    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    # Named by their path below --runs (a study's "cells" level left out).
    assert [row["run"] for row in rows] == ["a", "nested/b", "study/scaling-xnor/seed1"]
    assert list(rows[0]) == list(results.COLUMNS)
    summary = json.loads((tiny_run.workdir / "summary.json").read_text())
    session = json.loads(
        (tiny_run.workdir / "sessions.jsonl").read_text().splitlines()[0]
    )
    row = rows[0]
    assert row["model"] == "binary_densenet28" and row["dataset"] == "fashion_mnist"
    assert float(row["test_top1"]) == round(100 * summary["test_top1"], 2)
    assert float(row["val_top1"]) == round(100 * summary["val_top1"], 2)
    assert int(row["epochs"]) == summary["epochs"] == 2
    assert int(row["params"]) == summary["params"]
    assert row["cpu"] == session["cpu"] and row["command"] == session["command"]
    assert (
        "train.py" in row["command"] and "--model binary_densenet28" in row["command"]
    )
    assert float(row["wall_minutes"]) == round(session["wall_seconds"] / 60, 1)
    # The tiny run's switches differ from BinaryDenseNet28's defaults: listed.
    assert "growth_rate=8" in row["switches"] and "binary" not in row["switches"]
    text = doc.read_text()
    assert text.startswith("# Results\n<!-- results:begin -->\n| run |")
    assert "old" not in text and text.endswith("<!-- results:end -->\nend\n")
    assert text.count("| a | `binary_densenet28`") == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keep_missing_keeps_rows_of_runs_not_here_and_regenerates_the_rest(
    tiny_run, tmp_path
):
    runs = tmp_path / "runs"
    tiny_run.copy(runs / "a")
    out = tmp_path / "table.csv"
    assert collect("--runs", runs, "--output", out).returncode == 0
    (row,) = read_rows(out)
    # An earlier table: a run made elsewhere ("z") and a stale row of "a".
    elsewhere = {**row, "run": "z", "test_top1": "12.34", "val_top1": ""}
    stale = {**row, "test_top1": "1.0"}
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=results.COLUMNS)
        writer.writeheader()
        writer.writerows([stale, elsewhere])

    done = collect("--runs", runs, "--output", out, "--keep_missing")

    assert done.returncode == 0, done.stderr
    assert read_rows(out) == [row, elsewhere]  # "a" regenerated, "z" kept as is
    # Without --keep_missing the table is only what is here.
    assert collect("--runs", runs, "--output", out).returncode == 0
    assert read_rows(out) == [row]
    # A file that is not a results table is refused in one line.
    out.write_text("a,b\n1,2\n")
    done = collect("--runs", runs, "--output", out, "--keep_missing")
    assert done.returncode != 0 and "is not a results table" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_non_default_switches_name_only_what_differs():
    defaults = {"binary": True, "blocks": (6, 6, 6, 5), "weights": None}
    assert results.non_default_switches(
        {"binary": True, "blocks": [6, 6, 6, 5], "weights": "imagenet"}, defaults
    ) == ""  # fmt: skip
    assert (
        results.non_default_switches({"binary": False, "blocks": [1, 1]}, defaults)
        == "binary=false blocks=[1,1]"
    )


def test_bad_input_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    doc = tmp_path / "doc.md"
    doc.write_text("no markers\n")
    broken = tmp_path / "broken" / "run"
    broken.mkdir(parents=True)
    (broken / "summary.json").write_text("{not json")
    (broken / "config.json").write_text("{}")
    incomplete = tmp_path / "incomplete" / "run"
    incomplete.mkdir(parents=True)
    (incomplete / "summary.json").write_text("{}")
    (incomplete / "config.json").write_text("{}")
    cases = {
        ("--runs", tmp_path / "missing"): "is not a directory",
        ("--runs", empty): "no finished run",
        ("--runs", broken.parent): "cannot read",
        ("--runs", incomplete.parent): "not a complete train.py work dir",
    }
    for args, expected in cases.items():
        done = collect(*args, "--output", tmp_path / "x.csv")
        assert done.returncode != 0 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "x.csv").exists()


def test_plot_labels_name_a_study_run_by_its_cell_and_seed():
    assert results._short_label("study/fashion_mnist/bf16/seed2") == "bf16 s2"
    assert results._short_label("bdn28_headline") == "bdn28_headline"


def test_commands_name_paths_relative_to_where_the_table_is_made(tmp_path):
    """ablate.py passes absolute work dirs; the committed table must not."""
    command = f"python train.py --workdir {tmp_path}/runs/a --config.x={tmp_path}/t"
    assert results.portable_command(command, tmp_path) == (
        "python train.py --workdir runs/a --config.x=t"
    )
    assert results.portable_command(
        "python train.py --workdir /elsewhere/a", tmp_path
    ) == ("python train.py --workdir /elsewhere/a")
