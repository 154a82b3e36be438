"""Ablation runner: a tiny study on mock data end to end, interrupted and resumed.

The study trains through ablate.py -> train.py subprocesses on TFDS mock data
(tests/mock_cli.py). One run is killed mid-training by a launcher that makes the
process exit hard after its first epoch's checkpoint; the rerun must resume that
run from the checkpoint (not restart it) and skip the finished ones.
"""

import csv
import json
import sys
import textwrap
from pathlib import Path

from mock_cli import run_cli

REPO = Path(__file__).resolve().parent.parent
MOCK = f"{sys.executable} {REPO / 'tests' / 'mock_cli.py'}"

TINY_STUDY = """
from bidense.ablation import Study

VARIANTS = {"mock": Study(
    name="tiny", model="binary_resnet_e18", dataset="fashion_mnist",
    grid={"scaling": ["none", "xnor"]},
    reference={"scaling": "none"},
    seeds=(1,),
    config={
        "model.filters": (8, 8, 16, 16), "model.blocks": (1, 1, 1, 1),
        "epochs": 2, "steps_per_epoch": 3, "batch_size": 8,
        "dataset.validation_examples": 16,
    },
)}
"""

# Runs train.py on mock data, but a run whose work dir contains KILL dies hard
# (like a killed process: no cleanup) at training step STEP.
KILLER = """
import os, runpy, sys
import tensorflow as tf
from bidense.training import loop

KILL, STEP = {kill!r}, {step}
workdir = sys.argv[sys.argv.index("--workdir") + 1]
if KILL in workdir:
    train = loop.train

    class Kill(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations) >= STEP:
                os._exit(9)

    loop.train = lambda exp, extra=(): train(exp, [*extra, Kill()])
sys.argv = [{mock!r}, *sys.argv[1:]]
runpy.run_path({mock!r}, run_name="__main__")
"""


def ablate(study, workdir, *args, launcher=MOCK):
    return run_cli(
        "ablate.py", "--study", study, "--variant", "mock", "--workdir", workdir,
        "--launcher", launcher, *args, mock=False, check=False, timeout=600,
    )  # fmt: skip


def log_epochs(run_dir):
    with open(run_dir / "log.csv") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def test_tiny_study_runs_resumes_an_interrupted_run_and_reports(tmp_path):
    study = tmp_path / "tiny.py"
    study.write_text(TINY_STUDY)
    killer = tmp_path / "killer.py"
    killed = "scaling-xnor/seed1"
    killer.write_text(
        textwrap.dedent(
            KILLER.format(kill=killed, step=4, mock=str(REPO / "tests" / "mock_cli.py"))
        )
    )
    out = tmp_path / "study"
    cells = out / "cells"

    # 1. Two processes at a time; the xnor run is killed in epoch 2 (step 4 of
    #    3 x 2), after the checkpoint of epoch 1. (One seed: the summary's means
    #    over seeds are tests/test_ablation_units.py's.)
    first = ablate(study, out, "--parallel", "2", launcher=f"{sys.executable} {killer}")
    assert first.returncode == 1, first.stderr[-3000:]
    assert "1 of 2 runs failed" in first.stderr
    assert "Traceback" not in first.stderr
    victim = cells / killed
    assert not (victim / "summary.json").exists()
    assert list((victim / "checkpoints").rglob("ckpt-*.index"))
    assert log_epochs(victim) == ["0"]
    finished = [cells / "scaling-none/seed1"]
    stamps = {d: (d / "summary.json").stat().st_mtime_ns for d in finished}

    # 2. The rerun resumes the killed run from its checkpoint and skips the rest.
    second = ablate(study, out, "--nocheck_models")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("skipped") == 1
    assert f"{killed}: resuming" in second.stderr
    assert "Resuming from" in (victim / "ablate.log").read_text()
    # Epoch 0 is not trained again: a restart would log epochs 0, 0, 1.
    assert log_epochs(victim) == ["0", "1"]
    assert json.loads((victim / "summary.json").read_text())["epochs"] == 2
    assert {d: (d / "summary.json").stat().st_mtime_ns for d in finished} == stamps
    times = json.loads((victim / "ablate.json").read_text())
    assert len(times["sessions"]) == 2

    # 3. Everything finished: nothing is launched (this launcher would fail).
    third = ablate(
        study, out, "--nocheck_models", launcher=f'{sys.executable} -c "exit(3)"'
    )
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stderr.count("skipped") == 2

    # Outputs: results.csv, summary, plots.
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["scaling"], r["seed"]) for r in rows] == [("none", "1"), ("xnor", "1")]
    for row in rows:
        assert 0.0 <= float(row["top1"]) <= float(row["top5"]) <= 1.0
        assert float(row["size_mib"]) > 0 and float(row["ops"]) > 0
        assert row["epochs"] == "2" and float(row["wall_seconds"]) > 0
    # Both cells have the same size except for scaling (no extra weights).
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [s["scaling"] for s in summary] == ["none", "xnor"]
    assert all(s["seeds"] == "1" for s in summary)
    none, xnor = (float(r["top1"]) for r in rows)
    assert float(summary[0]["top1_mean"]) == none
    assert float(summary[0]["d_top1"]) == 0.0
    assert abs(float(summary[1]["d_top1"]) - (xnor - none)) < 1e-9
    markdown = (out / "summary.md").read_text()
    assert "| **none** | 1 |" in markdown and "| xnor | 1 |" in markdown
    for name in ("accuracy_vs_size.png", "bar_scaling.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
