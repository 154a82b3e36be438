"""Keras callbacks for checkpoints, throughput logging and the best model."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from pathlib import Path

import tensorflow as tf

from bidense.training import workdir as wd

# Checkpoints kept on disk: the latest plus one to fall back to if the latest turns
# out to be corrupt (Keras's BackupAndRestore keeps only one).
KEEP_CHECKPOINTS = 2


class TrainingError(RuntimeError):
    """Training cannot go on (reported by train.py as one line, exit status 1)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or Inf; the message names the epoch and step."""


class CorruptCheckpointError(TrainingError):
    """Checkpoints exist, but none of them can be read."""


class WriteFailedError(TrainingError):
    """A checkpoint or model file could not be written (disk full, permissions)."""


def _first_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    if not text:
        return type(error).__name__
    # TensorFlow's file errors read "<file>; <strerror>"; the caller names the file.
    return re.sub(r"^\S*/\S*; ", "", text[0])


def write_failed(path, error: BaseException, checkpoint_dir) -> WriteFailedError:
    """The one-line error for a failed write of ``path``, saying what is kept."""
    kept = tf.train.latest_checkpoint(str(Path(checkpoint_dir) / "chief"))
    state = f"checkpoint {kept} is intact" if kept else "no checkpoint was written yet"
    return WriteFailedError(
        f"cannot write {path} ({_first_line(error)}); {state}; free disk space "
        "(or fix the permissions) and rerun the same command to resume"
    )


class Backup(tf.keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, saving every epoch *and* every ``every_steps``.

    The state (model, optimizer with its iteration counter, epoch and step) goes
    through ``tf.train.CheckpointManager``: TensorFlow writes the checkpoint data
    under temporary names and then atomically replaces the small ``checkpoint``
    index file, so a crash mid-write leaves the previous checkpoint as the latest.
    The last KEEP_CHECKPOINTS are kept; before restoring, the newest is read in
    full and, if unreadable (truncated, bit rot), set aside for the one before.
    Restoring on ``fit`` resumes at the saved epoch and step; the learning-rate
    schedule follows because it is a function of the restored iteration counter.
    Kept after training (``delete_checkpoint=False``), so rerunning a finished run
    trains nothing more.
    """

    def __init__(
        self, backup_dir, steps_per_epoch: int, every_steps: int = 0, repair=True
    ):
        super().__init__(
            backup_dir,
            save_freq=every_steps if every_steps else "epoch",
            delete_checkpoint=False,
        )
        self._steps_per_epoch = steps_per_epoch
        # Only the chief repairs: workers renaming the same files would race.
        self._repair = repair

    def on_train_begin(self, logs=None):
        # Before Keras restores: it would load the latest checkpoint blindly and a
        # truncated one fails deep inside TensorFlow (or restores garbage).
        chief_dir = Path(self.backup_dir) / "chief"
        if self._repair and chief_dir.is_dir():
            use_last_good_checkpoint(chief_dir)
        super().on_train_begin(logs)
        state = self._training_state
        for manager in {state.read_checkpoint_manager, state.write_checkpoint_manager}:
            # Keras hard-codes max_to_keep=1; no public way to change it. The
            # manager only reads this when deciding what to delete after a save.
            manager._max_to_keep = KEEP_CHECKPOINTS

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch=epoch)
        else:
            # Marks the epoch as complete, so a restore starts the next one.
            self._backup(epoch=epoch, batch=self._steps_per_epoch - 1)

    def _backup(self, epoch, batch=0):
        """Saves, or raises WriteFailedError leaving the previous checkpoint latest.

        TensorFlow writes the shards under ``ckpt-N_temp/``, merges them into
        ``ckpt-N.data-*`` and ``ckpt-N.index``, and only then updates the
        ``checkpoint`` index file; a failed write (disk full) never gets that far.
        Its leftovers are deleted, to give back the space they took.
        """
        manager = self._training_state.write_checkpoint_manager
        try:
            super()._backup(epoch, batch)
        except (OSError, tf.errors.OpError) as error:
            # CheckpointManager.save numbers the checkpoint before writing it.
            prefix = Path(f"{manager._prefix}-{int(manager._checkpoint.save_counter)}")
            if str(prefix) != manager.latest_checkpoint:
                shutil.rmtree(f"{prefix}_temp", ignore_errors=True)
                for path in prefix.parent.glob(f"{prefix.name}.*"):
                    path.unlink(missing_ok=True)
            raise write_failed(prefix, error, Path(self.backup_dir)) from None


class Throughput(tf.keras.callbacks.Callback):
    """Adds ``lr``, ``train_seconds`` and ``images_per_second`` to each epoch's logs.

    Training time runs from the epoch's start to the start of its evaluation, so
    images/s counts training only (the first epoch includes XLA compilation).
    Put it before the CSV and TensorBoard loggers, which then record the values.
    """

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        seconds = (self._train_end or time.perf_counter()) - self._start
        logs["train_seconds"] = seconds
        logs["images_per_second"] = self.images_per_epoch / max(seconds, 1e-9)
        lr = self.model.optimizer.learning_rate
        if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
            lr = lr(self.model.optimizer.iterations)
        logs["lr"] = float(tf.keras.backend.get_value(lr))


class BestModel(tf.keras.callbacks.Callback):
    """Saves the model whenever ``monitor`` (evaluation accuracy) improves.

    The best value so far lives in ``best.json`` beside the model, so a resumed run
    does not overwrite a better model from before the interruption.
    """

    def __init__(self, model_path, state_path, monitor="val_accuracy", write=True):
        super().__init__()
        self.model_path, self.state_path = Path(model_path), Path(state_path)
        self.monitor, self.write = monitor, write

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return  # no evaluation this epoch (validation_freq > 1)
        best = wd.read_json(self.state_path, {}).get(self.monitor, float("-inf"))
        if value > best and self.write:
            wd.save_model_atomic(self.model, self.model_path)
            state = {"epoch": epoch + 1, self.monitor: float(value)}
            wd.atomic_write_text(self.state_path, json.dumps(state, indent=2))


def _checkpoint_number(index_file: Path) -> int:
    match = re.fullmatch(r"ckpt-(\d+)\.index", index_file.name)
    return int(match.group(1)) if match else -1


def checkpoint_problem(prefix: str) -> str | None:
    """Why the checkpoint at ``prefix`` is unusable, or None if it reads fully.

    Reads every tensor once: the index alone does not show a truncated data file,
    and reading makes TensorFlow verify each tensor's checksum (bit rot).
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # TF raises many types (DataLoss, OutOfRange, ...)
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}"
    return None


def use_last_good_checkpoint(directory: str | Path) -> str | None:
    """Points ``directory``'s checkpoint index at its newest readable checkpoint.

    Unreadable newer checkpoints are reported on stderr and renamed to
    ``*.corrupt`` (kept for inspection, out of the way of later saves). Scans the
    files rather than trusting the ``checkpoint`` index file, which may itself be
    damaged. Returns the prefix used, None if there are no checkpoints, and raises
    CorruptCheckpointError if there are some but none is readable.
    """
    directory = Path(directory)
    indexes = sorted(directory.glob("ckpt-*.index"), key=_checkpoint_number)
    if not indexes:
        return None
    good = []
    for index in reversed(indexes):
        prefix = str(index.with_suffix(""))
        if good:
            good.append(prefix)  # older than a good one: kept as is, not read
            continue
        problem = checkpoint_problem(prefix)
        if problem is None:
            good.append(prefix)
            continue
        print(
            f"warning: checkpoint {prefix} is unreadable ({problem}); "
            "falling back to the previous one",
            file=sys.stderr,
        )
        for path in directory.glob(f"{Path(prefix).name}.*"):
            if path.suffix != ".corrupt":
                path.rename(path.with_name(path.name + ".corrupt"))
    if not good:
        raise CorruptCheckpointError(
            f"no readable checkpoint in {directory} (all renamed to *.corrupt); "
            "rerun with --restart to start over"
        )
    try:
        state = tf.train.get_checkpoint_state(str(directory))
        recorded = state and Path(state.model_checkpoint_path).name
    except Exception:  # a damaged index file is a text-proto ParseError
        recorded = None
    if recorded != Path(good[0]).name:
        print(f"warning: resuming from checkpoint {good[0]}", file=sys.stderr)
        _write_checkpoint_state(directory, list(reversed(good)))
    return good[0]


def _write_checkpoint_state(directory: Path, prefixes: list[str]) -> None:
    """Writes the ``checkpoint`` index file listing ``prefixes`` (oldest first).

    By hand, atomically, because tf.train's update_checkpoint_state is deprecated.
    Timestamps are needed: CheckpointManager never deletes entries without one,
    so they would pile up. Names are relative, as CheckpointManager writes them.
    """
    names = [Path(prefix).name for prefix in prefixes]
    times = [(directory / f"{name}.index").stat().st_mtime for name in names]
    lines = [f"model_checkpoint_path: {json.dumps(names[-1])}"]
    lines += [f"all_model_checkpoint_paths: {json.dumps(name)}" for name in names]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
    lines.append(f"last_preserved_timestamp: {min(times) - 1.0!r}")
    wd.atomic_write_text(directory / "checkpoint", "\n".join(lines) + "\n")


def resume_step(backup_dir, steps_per_epoch: int, every_steps: int, repair=True):
    """The global step at which ``Model.fit`` with :class:`Backup` will resume.

    0 without a checkpoint. Otherwise Keras's own rule
    (``WorkerTrainingState.maybe_load_initial_counters_from_ckpt``), applied to
    the epoch and batch saved in the checkpoint Backup will restore: with
    per-step saves it resumes after the saved batch, with per-epoch saves at the
    start of the next epoch. The training stream must start at this batch. On
    the chief (``repair``), corrupt checkpoints are set aside first, exactly as
    Backup does just before restoring.
    """
    chief = Path(backup_dir) / "chief"
    if not chief.is_dir():
        return 0
    if repair:
        prefix = use_last_good_checkpoint(chief)
    else:
        prefix = tf.train.latest_checkpoint(str(chief))
    if prefix is None:
        return 0
    try:
        reader = tf.train.load_checkpoint(prefix)
        epoch, batch = (
            int(reader.get_tensor(f"ckpt_saved_{name}/.ATTRIBUTES/VARIABLE_VALUE"))
            for name in ("epoch", "batch")
        )
    except Exception as error:  # TF raises many types (NotFound, DataLoss, ...)
        raise CorruptCheckpointError(
            f"cannot read the training position from {prefix} ({_first_line(error)}); "
            "rerun with --restart to start over"
        ) from None
    if every_steps:
        if batch < 0:
            return 0
        if batch == steps_per_epoch - 1:
            return (epoch + 1) * steps_per_epoch
        return epoch * steps_per_epoch + batch + 1
    return (epoch + 1) * steps_per_epoch if epoch >= 0 else 0


class StopOnNonFinite(tf.keras.callbacks.Callback):
    """Raises NonFiniteLossError at the first step whose loss is NaN or Inf.

    Must come before Backup in the callback list, so the diverged weights never
    reach a checkpoint: the last good checkpoint stays the latest.
    """

    def __init__(self, steps_per_epoch: int, checkpoint_dir):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint_dir = Path(checkpoint_dir)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        step = int(tf.keras.backend.get_value(self.model.optimizer.iterations))
        kept = tf.train.latest_checkpoint(str(self.checkpoint_dir / "chief"))
        where = f"kept the last good checkpoint {kept}" if kept else "no checkpoint yet"
        raise NonFiniteLossError(
            f"loss is {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}/"
            f"{self.steps_per_epoch} (global step {step}); stopped, {where}; "
            "lower config.optimizer.learning_rate (with --restart or a new --workdir)"
        )
