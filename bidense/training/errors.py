"""Errors that stop training, each reported by train.py as one line (exit status 1).

TensorFlow-free, so the command-line layer can name them without loading TF.
"""

from __future__ import annotations

import re


class TrainingError(RuntimeError):
    """Training cannot go on (reported by train.py as one line, exit status 1)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or Inf; the message names the epoch and step."""


class CorruptCheckpointError(TrainingError):
    """Checkpoints exist, but none of them can be read."""


class WriteFailedError(TrainingError):
    """A checkpoint or model file could not be written (disk full, permissions)."""


def first_line(error: BaseException) -> str:
    """The gist of ``error`` in one line, without the file name TensorFlow prepends."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    if not text:
        return type(error).__name__
    # TensorFlow's file errors read "<file>; <strerror>"; the caller names the file.
    return re.sub(r"^\S*/\S*; ", "", text[0])
