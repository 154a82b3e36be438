"""Runs train.py like mock_cli.py, but crashes it at a chosen point (test helper).

    CRASH=kill_at_step:7 python tests/crash_cli.py train.py --model ... (same flags)

``CRASH`` is ``MODE:N``:

* ``kill_at_step:N``: SIGKILL right after global training step N (mid-epoch).
* ``kill_in_checkpoint:N``: SIGKILL inside the N-th checkpoint write of this
  process, after TensorFlow wrote the data and index of the shard under
  ``ckpt-K_temp/`` and before it merged them into ``ckpt-K.*`` and recorded
  ``ckpt-K`` in the ``checkpoint`` file.
* ``kill_before_record:N``: SIGKILL after the N-th checkpoint's files are
  complete, before the ``checkpoint`` file names it.
* ``enospc_checkpoint:N``: the N-th checkpoint write fails as TensorFlow's file
  system reports a full disk (ResourceExhaustedError, "No space left on
  device"), leaving its shard under ``ckpt-K_temp/``.
* ``enospc_final_model:1``: writing final.keras fails with OSError(ENOSPC) after
  a partial file is written.

A real SIGKILL: no Python cleanup, no atexit, no flushing runs.
"""

import errno
import importlib
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mock_cli  # noqa: E402
import tensorflow as tf  # noqa: E402

from bidense.training import keras_internals as ki  # noqa: E402


def die():
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep(tf.keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            die()


def wrap(hook: str, make_wrapper) -> None:
    """Replaces TensorFlow's ``hook`` (keras_internals.CHECKPOINT_WRITE_HOOKS)."""
    module_name, name = ki.CHECKPOINT_WRITE_HOOKS[hook]
    module = importlib.import_module(module_name)
    setattr(module, name, make_wrapper(getattr(module, name)))


def install(mode: str, n: int) -> None:
    calls = {"merge": 0, "record": 0}
    if mode == "kill_at_step":
        from bidense.training import loop

        train = loop.train
        loop.train = lambda exp, extra=(): train(exp, [*extra, KillAtStep(n)])
    elif mode in ("kill_in_checkpoint", "enospc_checkpoint"):

        def merge_or_fail(merge):
            def merge_shards(checkpoint_prefixes, destination_prefix, **kwargs):
                calls["merge"] += 1
                if calls["merge"] == n:
                    if mode == "kill_in_checkpoint":
                        die()
                    raise tf.errors.ResourceExhaustedError(
                        None,
                        None,
                        f"{destination_prefix.numpy().decode()}.index; "
                        "No space left on device",
                    )
                return merge(checkpoint_prefixes, destination_prefix, **kwargs)

            return merge_shards

        wrap("merge_shards", merge_or_fail)
    elif mode == "kill_before_record":

        def record_or_die(record):
            def record_checkpoint(*args, **kwargs):
                calls["record"] += 1  # each save records twice (before/after sweep)
                if calls["record"] == 2 * n - 1:
                    die()
                return record(*args, **kwargs)

            return record_checkpoint

        wrap("record_checkpoint", record_or_die)
    elif mode == "enospc_final_model":
        save = tf.keras.Model.save

        def save_or_fail(self, filepath, *args, **kwargs):
            if Path(filepath).name.startswith(".final"):
                Path(filepath).write_bytes(b"PK\x03\x04 partial")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
            return save(self, filepath, *args, **kwargs)

        tf.keras.Model.save = save_or_fail
    else:
        raise SystemExit(f"crash_cli.py: unknown CRASH mode {mode!r}")


if __name__ == "__main__":
    mode, _, count = os.environ["CRASH"].partition(":")
    install(mode, int(count or 1))
    mock_cli.main()
