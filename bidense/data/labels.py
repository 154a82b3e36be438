"""Class names beside a model: ``labels.txt``, one name per line, in label order.

train.py writes it into every work directory (TFDS datasets and image folders
alike), so whatever reads a trained model (evaluate.py, export.py, an app that
runs the ``.tflite``) can turn a label index back into a name: line ``i`` is
the name of label ``i``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

LABELS_FILE = "labels.txt"


def class_names(info) -> tuple[str, ...]:
    """The class names of a :class:`bidense.data.DatasetInfo`, in label order."""
    return tuple(info.class_names)


def write_labels(directory: str | Path, names: Sequence[str]) -> Path:
    """Writes ``directory/labels.txt`` atomically; returns its path."""
    path = Path(directory) / LABELS_FILE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in names))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_labels(directory: str | Path) -> list[str] | None:
    """The names in ``directory/labels.txt``, or None if there is no such file."""
    path = Path(directory) / LABELS_FILE
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def check_labels(directory: str | Path, names: Sequence[str], dataset: str) -> None:
    """Refuses a dataset whose classes differ from those of the run in ``directory``.

    A model predicts the classes it was trained on, in that order; a folder whose
    class folders changed since (one added, renamed or removed) would be scored
    against the wrong names, or resume training with a classifier of another size.
    """
    saved = read_labels(directory)
    if saved is None or list(saved) == list(names):
        return
    raise LabelsError(
        f"{Path(directory) / LABELS_FILE} names the classes the model was trained "
        f"on ({_short(saved)}), but {dataset} has {_short(names)}; use the dataset "
        "the run was trained on (or, for train.py, --restart to train anew)"
    )


class LabelsError(ValueError):
    """A dataset's classes differ from a trained model's; one-line message."""


def _short(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"{shown}{more}" if names else "no classes"
