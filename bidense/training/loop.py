"""The training loop: ``Model.fit`` with bidense's callbacks, then the final model.

Everything that can fail because of user input has failed in
:func:`bidense.training.experiment.setup` already; what can fail here is training
itself (a NaN loss, no readable checkpoint, a full disk), raised as
:class:`bidense.training.errors.TrainingError` with a one-line message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from bidense.training import callbacks as cb
from bidense.training import checkpoints, finetune, selection
from bidense.training import summary as summary_lib
from bidense.training import workdir as wd

if TYPE_CHECKING:
    from bidense.training.experiment import Experiment


def make_callbacks(exp: Experiment, extra: Sequence = ()) -> list:
    """bidense's callbacks, in the order they must run, then ``extra``."""
    cfg = exp.config
    backup_dir = exp.workdir / wd.CHECKPOINTS
    # Before BestModel: it makes the layers trainable again before a save.
    freeze = finetune.callback(exp)
    return [
        # First, so a diverged step raises before Backup can save its weights.
        cb.StopOnNonFinite(exp.steps_per_epoch, backup_dir),
        # Before Backup: the epoch's selection is on disk before the checkpoint
        # that skips the epoch on resume. The other order loses it to a crash
        # between the two, and the resumed run then selects a different epoch.
        *([freeze] if freeze else []),
        cb.BestModel(exp.model, exp.outdir / wd.BEST_MODEL, exp.outdir / wd.BEST_STATE),
        cb.Backup(
            str(backup_dir),
            exp.steps_per_epoch,
            cfg.checkpoint_every_steps,
            repair=exp.is_chief,
        ),
        cb.Throughput(exp.steps_per_epoch * cfg.batch_size),  # before the loggers
        tf.keras.callbacks.CSVLogger(str(exp.outdir / wd.CSV_LOG), append=True),
        tf.keras.callbacks.TensorBoard(
            str(exp.outdir / wd.TENSORBOARD), update_freq="epoch", profile_batch=0
        ),
        *extra,
    ]


def train(exp: Experiment, extra_callbacks: Sequence = ()) -> dict:
    """Trains (or resumes) to ``config.epochs``, saves, tests, returns a summary.

    The model reported is the one selected on the validation split
    (:mod:`bidense.training.selection`), tested once at the end. Raises
    errors.TrainingError when the loss stops being finite, no checkpoint is
    readable or a file cannot be written. ``extra_callbacks`` run after
    bidense's own (which restore the checkpoint first).
    """
    cfg = exp.config
    validating = exp.validation_ds is not None
    start = time.perf_counter()
    exp.fit_model.fit(
        exp.train_ds,
        epochs=cfg.epochs,
        steps_per_epoch=exp.steps_per_epoch,
        validation_data=exp.validation_ds,
        validation_steps=exp.eval_steps if validating else None,
        validation_freq=cfg.validation_freq,
        callbacks=make_callbacks(exp, extra_callbacks),
        verbose=cfg.verbose,
    )
    session_seconds = time.perf_counter() - start
    final = exp.outdir / wd.FINAL_MODEL
    # A full disk here loses nothing: the last checkpoint has it all.
    _write(exp, final, lambda: wd.save_model_atomic(exp.model, final))

    chosen = selection.select(exp)
    metrics = selection.test(exp, chosen.model)
    summary = summary_lib.summarize(exp, chosen, metrics, session_seconds)
    path = exp.outdir / wd.SUMMARY
    _write(exp, path, lambda: wd.atomic_write_text(path, json.dumps(summary, indent=2)))
    return summary


def _write(exp: Experiment, path: Path, write: Callable[[], None]) -> None:
    """Runs ``write``; a failure (OSError) becomes a one-line WriteFailedError."""
    try:
        write()
    except OSError as error:
        raise checkpoints.write_failed(
            path, error, exp.workdir / wd.CHECKPOINTS
        ) from None
