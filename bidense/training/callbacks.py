"""Keras callbacks for checkpoints, throughput logging and the best model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import tensorflow as tf

from bidense.training import workdir as wd


class Backup(tf.keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, saving every epoch *and* every ``every_steps``.

    The state (model, optimizer with its iteration counter, epoch and step) goes
    through ``tf.train.CheckpointManager``: TensorFlow writes the checkpoint data
    under temporary names and then atomically replaces the small ``checkpoint``
    index file, so a crash mid-write leaves the previous checkpoint as the latest.
    Restoring on ``fit`` resumes at the saved epoch and step; the learning-rate
    schedule follows because it is a function of the restored iteration counter.
    Kept after training (``delete_checkpoint=False``), so rerunning a finished run
    trains nothing more.
    """

    def __init__(self, backup_dir, steps_per_epoch: int, every_steps: int = 0):
        super().__init__(
            backup_dir,
            save_freq=every_steps if every_steps else "epoch",
            delete_checkpoint=False,
        )
        self._steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch=epoch)
        else:
            # Marks the epoch as complete, so a restore starts the next one.
            self._backup(epoch=epoch, batch=self._steps_per_epoch - 1)


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
