"""The work directory: what a run writes, atomic writes, and who owns the directory.

Layout (all written by the chief worker only)::

    config.json          resolved config; a rerun must match it (or --restart)
    labels.txt           the class names, one per line, in label order
    checkpoints/chief/   latest training state (model, optimizer, epoch, step)
    best.keras           model with the best evaluation accuracy so far
    best.json            {"epoch", "accuracy"} of best.keras, survives resumes
    final.keras          model after the last epoch
    log.csv              one row of metrics per epoch (appended across resumes)
    tensorboard/         TensorBoard event files
    summary.json         final metrics, time and throughput of the finished run
    eval*.json, results.csv   written by evaluate.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from bidense.training.config import ConfigError, diff

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BEST_MODEL = "best.keras"
BEST_STATE = "best.json"
FINAL_MODEL = "final.keras"
CSV_LOG = "log.csv"
TENSORBOARD = "tensorboard"
SUMMARY = "summary.json"
# Config keys that do not change what is trained: a rerun may change them.
RUNTIME_KEYS = ("verbose", "checkpoint_every_steps")
LABELS = "labels.txt"  # bidense.data.LABELS_FILE: class names, one per line
# Keys added after work dirs already existed, with the value an older config.json
# (which lacks them) was trained with: such a run still resumes, and evaluates.
# Dotted keys are inside a group.
ADDED_KEYS = {
    "deterministic": False,
    "precision": "float32",
    "dataset.channels": 0,
    "dataset.validation_fraction": 0.1,
    "dataset.test_fraction": 0.1,
    "dataset.classes": [],
    "dataset.train_examples": 0,
    "finetune": {
        "learning_rate": 0.0,
        "freeze_epochs": 0,
        "reset_head": False,
        "freeze_bn": False,
    },
}
# Everything train.py writes; --restart removes exactly these, nothing else.
ARTIFACTS = (
    CONFIG,
    CHECKPOINTS,
    BEST_MODEL,
    BEST_STATE,
    FINAL_MODEL,
    CSV_LOG,
    TENSORBOARD,
    SUMMARY,
    LABELS,
    "workers",
)


def with_added_keys(config: dict) -> dict:
    """``config`` with every key of ADDED_KEYS it lacks (a copy; groups copied)."""
    config = dict(config)
    for key, value in ADDED_KEYS.items():
        *groups, leaf = key.split(".")
        node = config
        for group in groups:
            if not isinstance(node.get(group), dict):
                break  # no such group: not a config this key belongs in
            node[group] = node = dict(node[group])
        else:
            node.setdefault(leaf, value)
    return config


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes via a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model_atomic(model, path: str | Path) -> None:
    """Saves an inference copy of ``model`` (no optimizer) to ``path`` atomically.

    The copy shares the layers but is not compiled, so the file holds no optimizer
    or learning-rate schedule and loads with plain Keras once bidense is imported.
    """
    import tensorflow as tf

    path = Path(path)
    inference = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # Keras needs .keras
    try:
        inference.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial file (disk full) only takes space
        raise


def check_or_init(
    workdir: str | Path, config: dict, restart: bool, write: bool
) -> bool:
    """Makes ``workdir`` hold a run of ``config``; returns whether it resumes.

    A work directory that holds a run of a different config is refused with the
    differing keys listed, unless ``restart`` (which deletes only bidense's own
    artifacts). ``write`` is False on non-chief workers, which only check.
    """
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} exists and is not a directory")
    config_path = workdir / CONFIG
    if restart and write:
        for name in ARTIFACTS:
            target = workdir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    elif config_path.exists():
        try:
            old = json.loads(config_path.read_text())
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            old = None
        if not isinstance(old, dict):
            raise ConfigError(
                f"--workdir {workdir} has a damaged {CONFIG} (not a JSON object); "
                "rerun with --restart to start over there, or pick another --workdir"
            )
        changes = [
            change
            for change in diff(with_added_keys(old), with_added_keys(config))
            if change.split(":")[0] not in RUNTIME_KEYS
        ]
        if changes:
            shown = "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")
            raise ConfigError(
                f"--workdir {workdir} holds a run with another config ({shown}); "
                "rerun with --restart to start over there, or pick another --workdir"
            )
    resumes = (workdir / CHECKPOINTS).exists()
    if write:
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True))
    return resumes


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    with open(path) as f:
        return json.load(f)
