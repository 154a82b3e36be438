"""What a finished run reports: summary.json's dict, the one-line summary, log.csv.

Time and throughput add up over every session of a resumed run, read back from
the per-epoch rows of log.csv.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import bidense
from bidense.training import modeling, selection
from bidense.training import workdir as wd

if TYPE_CHECKING:
    from bidense.training.experiment import Experiment


def summarize(
    exp: Experiment, chosen: selection.Selected, test: dict, session_seconds: float
) -> dict:
    """The selected model's validation and test results, time and throughput.

    Time and throughput cover all epochs, across resumes.
    """
    epochs = read_log(exp.outdir / wd.CSV_LOG)
    train_seconds = sum(float(row["train_seconds"]) for row in epochs)
    images = exp.steps_per_epoch * exp.config.batch_size * len(epochs)
    stats = bidense.model_stats(exp.model)
    splits = exp.info.splits
    return {
        "model": exp.config.model_name,
        "dataset": exp.config.dataset.name,
        "workdir": str(exp.workdir),
        # From the step counter, not log.csv: a kill between an epoch's last
        # checkpoint and its CSV row loses the row, not the epoch.
        "epochs": modeling.global_step(exp.fit_model) // exp.steps_per_epoch,
        "selected": chosen.checkpoint,
        "selected_epoch": chosen.epoch,
        "val_top1": chosen.val_top1,
        "test_top1": float(test["accuracy"]),
        "test_top5": float(test["top5"]),
        "test_loss": float(test["loss"]),
        "params": int(exp.model.count_params()),
        "size_mib": float(stats["size_mib"]),
        "ops": float(stats["ops"]),
        "train_seconds": train_seconds,
        "session_seconds": session_seconds,
        "train_images_per_second": images / train_seconds if train_seconds else 0.0,
        "splits": {
            "train": splits.train,
            "validation": splits.validation,
            "test": splits.test,
        },
        "validation_examples": exp.info.validation_examples,
        "test_examples": exp.info.test_examples,
    }


def read_log(path: Path) -> list[dict]:
    """The rows of log.csv that record a trained epoch, one per epoch."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("train_seconds")]
    # An epoch is logged twice when a run falls back to an older checkpoint and
    # repeats it; the later row is the one that counts.
    return list({row["epoch"]: row for row in rows}.values())


def summary_line(summary: dict) -> str:
    """train.py's last line: accuracy, time, throughput, size and where it is."""
    minutes, seconds = divmod(summary["train_seconds"], 60)
    chosen = summary["selected"]
    if summary["val_top1"] is not None:
        chosen = (
            f"{chosen} of epoch {summary['selected_epoch']}, validation top-1 "
            f"{summary['val_top1']:.2%}"
        )
    return (
        f"{summary['model']} on {summary['dataset']}: test top-1 "
        f"{summary['test_top1']:.2%} top-5 {summary['test_top5']:.2%} loss "
        f"{summary['test_loss']:.4f} ({chosen}) | "
        f"{summary['epochs']} epochs, {int(minutes)}m{seconds:04.1f}s training, "
        f"{summary['train_images_per_second']:.0f} images/s | "
        f"{summary['size_mib']:.3f} MiB | {summary['workdir']}"
    )
