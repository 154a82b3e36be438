"""Every private Keras and TensorFlow-checkpoint name bidense relies on, in one place.

Written against tf.keras 2.15 (Keras 2.15.0, TensorFlow 2.15). Nothing else in
bidense, its tests or benchmarks touches these names, except the test that checks
each of them on the installed version and names the one that changed
(tests/test_training_keras_internals.py). Why each is needed:

* ``BackupAndRestore._backup(epoch, batch)``: the one method through which Keras
  writes every checkpoint (every ``save_freq`` steps and at epoch ends).
  Overriding it is the only way to clean up after a failed write (disk full) and
  to mark an epoch complete when saving every N steps. :class:`BackupAndRestore`
  below turns it into the public :meth:`BackupAndRestore.save`.
* ``BackupAndRestore._training_state``: the ``WorkerTrainingState`` Keras makes in
  ``on_train_begin``; its ``read_checkpoint_manager`` and
  ``write_checkpoint_manager`` are the ``tf.train.CheckpointManager`` objects
  that restore and save.
* ``CheckpointManager._max_to_keep``: ``WorkerTrainingState`` hard-codes
  ``max_to_keep=1`` and there is no public way to change it; the manager reads
  it only when deciding what to delete after a save.
* ``CheckpointManager._prefix``: ``<directory>/ckpt``; with the public
  ``checkpoint.save_counter`` it names the checkpoint a failed save was writing
  (``save`` numbers the checkpoint before writing it), so its leftovers can go.
* The layout of the checkpoint: ``WorkerTrainingState`` saves under
  ``<backup_dir>/chief`` and stores the epoch and batch of the save in variables
  named ``ckpt_saved_epoch`` and ``ckpt_saved_batch`` (-1: not saved yet).
  Reading them without building a model tells where ``fit`` will resume, which
  the data pipeline must know before it is made (:func:`resume_step` mirrors
  ``WorkerTrainingState.maybe_load_initial_counters_from_ckpt``). The optimizer's
  iteration counter is stored as ``model/optimizer/_iterations``.
* TensorFlow's checkpoint-writing functions that tests/crash_cli.py interrupts
  to simulate a crash or a full disk (:data:`CHECKPOINT_WRITE_HOOKS`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import tensorflow as tf

WRITTEN_AGAINST = "2.15"  # the tf.keras version these names were checked on

CHIEF = "chief"  # WorkerTrainingState's subdirectory of backup_dir
UNSAVED = -1  # WorkerTrainingState.CKPT_SAVED_{EPOCH,BATCH}_UNUSED_VALUE


def variable_key(*path: str) -> str:
    """The checkpoint key of the variable tracked at ``path`` (object-graph naming)."""
    return "/".join(path) + "/.ATTRIBUTES/VARIABLE_VALUE"


SAVED_EPOCH_KEY = variable_key("ckpt_saved_epoch")
SAVED_BATCH_KEY = variable_key("ckpt_saved_batch")
OPTIMIZER_KEY_PREFIX = "model/optimizer/"
ITERATIONS_KEY = variable_key("model", "optimizer", "_iterations")

# (module, function name) pairs that tests/crash_cli.py replaces: the op that
# merges a checkpoint's shards (ckpt-N_temp/) into ckpt-N.*, and the function that
# then records ckpt-N in the ``checkpoint`` index file.
CHECKPOINT_WRITE_HOOKS = {
    "merge_shards": ("tensorflow.python.ops.gen_io_ops", "merge_v2_checkpoints"),
    "record_checkpoint": (
        "tensorflow.python.checkpoint.checkpoint_management",
        "update_checkpoint_state_internal",
    ),
}


def keras_version() -> str:
    """The version of the Keras package behind ``tf.keras``."""
    package = tf.keras.callbacks.BackupAndRestore.__module__.split(".")[0]
    return importlib.import_module(package).__version__


def chief_dir(backup_dir: str | Path) -> Path:
    """Where ``BackupAndRestore(backup_dir)`` reads and writes its checkpoints."""
    return Path(backup_dir) / CHIEF


def saved_position(prefix: str) -> tuple[int, int]:
    """(epoch, batch) stored in the checkpoint at ``prefix`` (-1 where unsaved).

    Raises whatever TensorFlow raises for an unreadable checkpoint.
    """
    reader = tf.train.load_checkpoint(prefix)
    epoch, batch = (
        int(reader.get_tensor(k)) for k in (SAVED_EPOCH_KEY, SAVED_BATCH_KEY)
    )
    return epoch, batch


def resume_step(epoch: int, batch: int, steps_per_epoch: int, per_step: bool) -> int:
    """The global step ``fit`` resumes at after restoring (``epoch``, ``batch``).

    Keras's rule (``WorkerTrainingState.maybe_load_initial_counters_from_ckpt``):
    with per-step saves (``per_step``, an integer ``save_freq``) it resumes after
    the saved batch, or at the next epoch if that batch was the epoch's last; with
    per-epoch saves at the start of the epoch after the saved one.
    """
    if per_step:
        if batch < 0:  # UNSAVED
            return 0
        if batch == steps_per_epoch - 1:
            return (epoch + 1) * steps_per_epoch
        return epoch * steps_per_epoch + batch + 1
    return (epoch + 1) * steps_per_epoch if epoch >= 0 else 0


def set_max_to_keep(manager: tf.train.CheckpointManager, count: int) -> None:
    """Keeps the last ``count`` checkpoints from the next save on."""
    manager._max_to_keep = count


def numbered_prefix(manager: tf.train.CheckpointManager) -> Path:
    """``<directory>/ckpt-N`` for the manager's current save counter N.

    During a save (and after a failed one) that is the checkpoint being written.
    """
    return Path(f"{manager._prefix}-{int(manager.checkpoint.save_counter)}")


class BackupAndRestore(tf.keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore with public names for the private parts bidense uses.

    Subclasses override :meth:`save` (called for every checkpoint Keras writes)
    and use :meth:`checkpoint_managers` between ``on_train_begin`` and the end of
    training.
    """

    def _backup(self, epoch, batch=0):
        # Keras's own hook: on_train_batch_end and on_epoch_end call it to save.
        self.save(epoch, batch)

    def save(self, epoch: int, batch: int = 0) -> None:
        """Writes one checkpoint: model, optimizer, ``epoch`` and ``batch``."""
        super()._backup(epoch, batch)

    def checkpoint_managers(self) -> set[tf.train.CheckpointManager]:
        """The managers that restore and save (one object on the chief)."""
        state = self._training_state
        return {state.read_checkpoint_manager, state.write_checkpoint_manager}

    def write_manager(self) -> tf.train.CheckpointManager:
        """The manager that saves (on non-chief workers: to a temporary dir)."""
        return self._training_state.write_checkpoint_manager
