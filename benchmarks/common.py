"""Helpers shared by the benchmark scripts (not a benchmark itself)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys


def fail(program: str, message: str) -> None:
    """One line ``PROGRAM: error: message`` on stderr and exit status 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)


def machine() -> str:
    """CPU model, cores, the vector extensions that matter here, Python and TF."""
    cpu = platform.processor() or platform.machine()
    lines: list[str] = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        lines = f.readlines()
    for line in lines:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    words = next((line.split() for line in lines if line.startswith("flags")), [])
    extensions = ", ".join(w for w in ("avx2", "avx512f", "avx512_bf16") if w in words)
    import tensorflow as tf

    return (
        f"{cpu}, {os.cpu_count()} cores ({extensions}), Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}"
    )
