"""The private Keras and TensorFlow names behind bidense.training.keras_internals.

When a test here fails, the installed Keras (or TensorFlow) changed a private
detail bidense relies on for checkpointing and resuming; the message names it.
Adapt bidense/training/keras_internals.py (and its WRITTEN_AGAINST) to the new
version, then rerun tests/test_kill_resume.py and tests/test_reliability.py.
"""

import importlib
import inspect
import sys

import numpy as np
import pytest
import tensorflow as tf

from bidense.training import keras_internals as ki


def changed(what: str) -> str:
    return (
        f"tf.keras {ki.keras_version()} changed {what} (bidense.training."
        f"keras_internals was written against tf.keras {ki.WRITTEN_AGAINST}): "
        "adapt keras_internals.py to it"
    )


def worker_training_state_class():
    module = sys.modules[tf.keras.callbacks.BackupAndRestore.__module__]
    state = getattr(module, "worker_training_state", None)
    assert state is not None, changed(
        f"{module.__name__}.worker_training_state (the module of WorkerTrainingState)"
    )
    cls = getattr(state, "WorkerTrainingState", None)
    assert cls is not None, changed("worker_training_state.WorkerTrainingState")
    return cls


def tiny_model():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    return model


def test_the_version_is_the_one_the_adapter_was_written_against():
    assert ki.keras_version().startswith(ki.WRITTEN_AGAINST + "."), changed(
        "its version; check every private name in keras_internals.py"
    )


def test_backup_hook_has_the_signature_the_adapter_overrides():
    backup = getattr(tf.keras.callbacks.BackupAndRestore, "_backup", None)
    assert callable(backup), changed("BackupAndRestore._backup (its save hook)")
    parameters = inspect.signature(backup).parameters
    assert list(parameters) == ["self", "epoch", "batch"], changed(
        f"the signature of BackupAndRestore._backup to {list(parameters)}"
    )
    assert parameters["batch"].default == 0, changed(
        "the default batch of BackupAndRestore._backup"
    )


class Recorder(ki.BackupAndRestore):
    """Records what the adapter sees during a real ``fit``."""

    def __init__(self, backup_dir, save_freq):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self.saves, self.prefixes, self.managers = [], [], None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        assert hasattr(self, "_training_state"), changed(
            "BackupAndRestore._training_state (set in on_train_begin)"
        )
        for name in ("read_checkpoint_manager", "write_checkpoint_manager"):
            manager = getattr(self._training_state, name, None)
            assert isinstance(manager, tf.train.CheckpointManager), changed(
                f"WorkerTrainingState.{name} (a tf.train.CheckpointManager)"
            )
        self.managers = self.checkpoint_managers()
        assert self.write_manager() in self.managers
        for manager in self.managers:
            assert isinstance(getattr(manager, "_max_to_keep", None), int), changed(
                "CheckpointManager._max_to_keep (an int)"
            )
            assert isinstance(getattr(manager, "_prefix", None), str), changed(
                "CheckpointManager._prefix (a str)"
            )
            ki.set_max_to_keep(manager, 3)

    def save(self, epoch, batch=0):
        super().save(epoch, batch)
        self.saves.append((epoch, batch))
        manager = self.write_manager()
        self.prefixes.append(
            (str(ki.numbered_prefix(manager)), manager.latest_checkpoint)
        )


def test_backup_and_restore_internals_during_a_real_fit(tmp_path):
    """Every save goes through the hook; managers, prefixes and keys are as used."""
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    recorder = Recorder(tmp_path, save_freq=1)
    tiny_model().fit(x, y, batch_size=4, epochs=2, callbacks=[recorder], verbose=0)

    # Keras calls _backup after every step (save_freq=1): 2 epochs of 2 steps.
    assert recorder.saves == [(0, 0), (0, 1), (1, 0), (1, 1)], changed(
        f"when BackupAndRestore calls _backup (got {recorder.saves})"
    )
    # numbered_prefix names the checkpoint the save just wrote.
    for prefix, latest in recorder.prefixes:
        assert prefix == latest, changed(
            f"CheckpointManager._prefix/save numbering ({prefix} != {latest})"
        )
    chief = ki.chief_dir(tmp_path)
    assert tf.train.latest_checkpoint(str(chief)) == recorder.prefixes[-1][0], changed(
        f"the checkpoint directory of BackupAndRestore (not {chief})"
    )
    # _max_to_keep=3 took effect: 3 of the 4 checkpoints are kept.
    kept = sorted(p.name for p in chief.glob("ckpt-*.index"))
    assert kept == ["ckpt-2.index", "ckpt-3.index", "ckpt-4.index"], changed(
        f"how CheckpointManager uses _max_to_keep (kept {kept})"
    )

    reader = tf.train.load_checkpoint(recorder.prefixes[-1][0])
    keys = reader.get_variable_to_shape_map()
    for key in (ki.SAVED_EPOCH_KEY, ki.SAVED_BATCH_KEY, ki.ITERATIONS_KEY):
        assert key in keys, changed(f"the checkpoint key {key} (keys: {sorted(keys)})")
    assert any(k.startswith(ki.OPTIMIZER_KEY_PREFIX) for k in keys), changed(
        f"the checkpoint prefix {ki.OPTIMIZER_KEY_PREFIX} of the optimizer"
    )
    assert ki.saved_position(recorder.prefixes[-1][0]) == (1, 1)
    assert int(reader.get_tensor(ki.ITERATIONS_KEY)) == 4


@pytest.mark.parametrize("per_step", [False, True], ids=["per_epoch", "per_step"])
def test_resume_rule_is_keras_own(tmp_path, per_step):
    """ki.resume_step == WorkerTrainingState.maybe_load_initial_counters_from_ckpt."""
    cls = worker_training_state_class()
    for name in ("CKPT_SAVED_EPOCH_UNUSED_VALUE", "CKPT_SAVED_BATCH_UNUSED_VALUE"):
        assert getattr(cls, name, None) == ki.UNSAVED, changed(
            f"WorkerTrainingState.{name} (the 'not saved yet' value)"
        )
    steps_per_epoch = 5
    state = cls(tiny_model(), str(tmp_path), 2 if per_step else "epoch")
    mode = sys.modules[type(state).__module__].mode_keys.ModeKeys.TRAIN
    for epoch in (-1, 0, 3):
        for batch in (-1, 0, 2, steps_per_epoch - 1):
            state._ckpt_saved_epoch.assign(epoch)
            state._ckpt_saved_batch.assign(batch)
            initial_epoch, initial_step = state.maybe_load_initial_counters_from_ckpt(
                steps_per_epoch, 0, mode
            )
            expected = int(initial_epoch) * steps_per_epoch + int(initial_step)
            ours = ki.resume_step(epoch, batch, steps_per_epoch, per_step)
            assert ours == expected, changed(
                f"where fit resumes after saving epoch {epoch}, batch {batch} "
                f"(Keras: global step {expected}, keras_internals.resume_step: {ours})"
            )


@pytest.mark.parametrize("hook", sorted(ki.CHECKPOINT_WRITE_HOOKS))
def test_checkpoint_write_hooks_of_the_crash_tests_exist(hook):
    module_name, name = ki.CHECKPOINT_WRITE_HOOKS[hook]
    function = getattr(importlib.import_module(module_name), name, None)
    assert callable(function), changed(f"{module_name}.{name} (tests/crash_cli.py)")
    if hook == "merge_shards":  # tests/crash_cli.py reads these two by name
        parameters = list(inspect.signature(function).parameters)
        assert parameters[:2] == ["checkpoint_prefixes", "destination_prefix"], changed(
            f"the parameters of {module_name}.{name} to {parameters}"
        )
