"""Training checkpoints: finding, checking and repairing them, and the resume position.

Checkpoints are written by :class:`bidense.training.callbacks.Backup` (Keras's
BackupAndRestore) under ``<workdir>/checkpoints/chief``. TensorFlow writes each
checkpoint's data under temporary names and then atomically replaces the small
``checkpoint`` index file, so a crash mid-write leaves the previous checkpoint as
the latest; what this module guards against is a checkpoint that is complete on
disk but unreadable (truncated by a full disk, bit rot) or a damaged index file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import tensorflow as tf

from bidense.training import keras_internals as ki
from bidense.training import workdir as wd
from bidense.training.errors import CorruptCheckpointError, WriteFailedError, first_line

# Checkpoints kept on disk: the latest plus one to fall back to if the latest turns
# out to be corrupt (Keras's BackupAndRestore keeps only one).
KEEP_CHECKPOINTS = 2


def latest(backup_dir: str | Path) -> str | None:
    """The prefix of the latest recorded checkpoint under ``backup_dir``, or None."""
    return tf.train.latest_checkpoint(str(ki.chief_dir(backup_dir)))


def write_failed(path, error: BaseException, backup_dir) -> WriteFailedError:
    """The one-line error for a failed write of ``path``, saying what is kept."""
    kept = latest(backup_dir)
    state = f"checkpoint {kept} is intact" if kept else "no checkpoint was written yet"
    return WriteFailedError(
        f"cannot write {path} ({first_line(error)}); {state}; free disk space "
        "(or fix the permissions) and rerun the same command to resume"
    )


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
    so they would pile up. Names are relative, as CheckpointManager writes them
    (so a work dir can be moved or copied).
    """
    names = [Path(prefix).name for prefix in prefixes]
    times = [(directory / f"{name}.index").stat().st_mtime for name in names]
    lines = [f"model_checkpoint_path: {json.dumps(names[-1])}"]
    lines += [f"all_model_checkpoint_paths: {json.dumps(name)}" for name in names]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
    lines.append(f"last_preserved_timestamp: {min(times) - 1.0!r}")
    wd.atomic_write_text(directory / "checkpoint", "\n".join(lines) + "\n")


def resume_step(backup_dir, steps_per_epoch: int, every_steps: int, repair=True):
    """The global step at which ``Model.fit`` with Backup will resume.

    0 without a checkpoint. Otherwise Keras's own rule applied to the epoch and
    batch saved in the checkpoint Backup will restore
    (:func:`bidense.training.keras_internals.resume_step`). The training stream
    must start at this batch. On the chief (``repair``), corrupt checkpoints are
    set aside first, exactly as Backup does just before restoring.
    """
    chief = ki.chief_dir(backup_dir)
    if not chief.is_dir():
        return 0
    if repair:
        prefix = use_last_good_checkpoint(chief)
    else:
        prefix = tf.train.latest_checkpoint(str(chief))
    if prefix is None:
        return 0
    try:
        epoch, batch = ki.saved_position(prefix)
    except Exception as error:  # TF raises many types (NotFound, DataLoss, ...)
        raise CorruptCheckpointError(
            f"cannot read the training position from {prefix} ({first_line(error)}); "
            "rerun with --restart to start over"
        ) from None
    return ki.resume_step(epoch, batch, steps_per_epoch, per_step=bool(every_steps))
