"""The Keras callbacks of a training run: checkpoints, throughput, best model, NaN stop.

Checkpoint repair and the resume position are in :mod:`bidense.training.checkpoints`;
the errors these callbacks raise are in :mod:`bidense.training.errors`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import tensorflow as tf

from bidense.training import checkpoints, modeling
from bidense.training import keras_internals as ki
from bidense.training import workdir as wd
from bidense.training.errors import NonFiniteLossError


class Backup(ki.BackupAndRestore):
    """Keras's BackupAndRestore, saving every epoch *and* every ``every_steps``.

    The state (model, optimizer with its iteration counter, epoch and step) goes
    through ``tf.train.CheckpointManager``: TensorFlow writes the checkpoint data
    under temporary names and then atomically replaces the small ``checkpoint``
    index file, so a crash mid-write leaves the previous checkpoint as the latest.
    The last ``checkpoints.KEEP_CHECKPOINTS`` are kept; before restoring, the
    newest is read in full and, if unreadable (truncated, bit rot), set aside for
    the one before.
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
        chief_dir = ki.chief_dir(self.backup_dir)
        if self._repair and chief_dir.is_dir():
            checkpoints.use_last_good_checkpoint(chief_dir)
        super().on_train_begin(logs)
        for manager in self.checkpoint_managers():
            ki.set_max_to_keep(manager, checkpoints.KEEP_CHECKPOINTS)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self.save(epoch)
        else:
            # Marks the epoch as complete, so a restore starts the next one.
            self.save(epoch, batch=self._steps_per_epoch - 1)

    def save(self, epoch, batch=0):
        """Saves, or raises WriteFailedError leaving the previous checkpoint latest.

        TensorFlow writes the shards under ``ckpt-N_temp/``, merges them into
        ``ckpt-N.data-*`` and ``ckpt-N.index``, and only then updates the
        ``checkpoint`` index file; a failed write (disk full) never gets that far.
        Its leftovers are deleted, to give back the space they took.
        """
        manager = self.write_manager()
        try:
            super().save(epoch, batch)
        except (OSError, tf.errors.OpError) as error:
            prefix = ki.numbered_prefix(manager)
            if str(prefix) != manager.latest_checkpoint:
                shutil.rmtree(f"{prefix}_temp", ignore_errors=True)
                for path in prefix.parent.glob(f"{prefix.name}.*"):
                    path.unlink(missing_ok=True)
            raise checkpoints.write_failed(prefix, error, self.backup_dir) from None


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
    """Saves ``model`` whenever ``monitor`` (validation accuracy) improves.

    The best value so far lives in ``best.json`` beside the model, so a resumed run
    does not overwrite a better model from before the interruption. ``model`` is
    the network being trained: the model ``fit`` runs on, or the student inside
    a distillation wrapper.
    """

    def __init__(self, model, model_path, state_path, monitor="val_accuracy"):
        super().__init__()
        self.network = model
        self.model_path, self.state_path = Path(model_path), Path(state_path)
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return  # no evaluation this epoch (validation_freq > 1)
        best = wd.read_json(self.state_path, {}).get(self.monitor, float("-inf"))
        if value > best:
            wd.save_model_atomic(self.network, self.model_path)
            state = {"epoch": epoch + 1, self.monitor: float(value)}
            wd.atomic_write_text(self.state_path, json.dumps(state, indent=2))


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
        step = modeling.global_step(self.model)
        kept = checkpoints.latest(self.checkpoint_dir)
        where = f"kept the last good checkpoint {kept}" if kept else "no checkpoint yet"
        raise NonFiniteLossError(
            f"loss is {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}/"
            f"{self.steps_per_epoch} (global step {step}); stopped, {where}; "
            "lower config.optimizer.learning_rate (with --restart or a new --workdir)"
        )
