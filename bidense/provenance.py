"""Where a result came from: the command, the CPU, the wall time of each session.

A number in a results table is only worth what its provenance says: every
train.py session appends one line to ``sessions.jsonl`` in its work directory,
and ``bidense.results`` turns those into the command, CPU model and wall time
of each results row. Timings are only comparable on the same CPU model (the
project's machines vary between an AMD EPYC with AVX512_BF16 and an Intel Xeon
with AMX), so the CPU is recorded with every one.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import time
from pathlib import Path

SESSIONS = "sessions.jsonl"


@functools.cache
def cpu_info() -> dict:
    """``{"model": ..., "flags": set}`` of this machine's first CPU (Linux)."""
    info = {"model": "unknown", "flags": frozenset()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["model"] == "unknown":
            info["model"] = value.strip()
        elif key == "flags" and not info["flags"]:
            info["flags"] = frozenset(value.split())
    return info


def cpu_model() -> str:
    return cpu_info()["model"]


def has_fast_bfloat16() -> bool:
    """True on CPUs with bfloat16 matrix instructions (AVX512_BF16 or AMX-BF16).

    oneDNN runs Keras's ``mixed_bfloat16`` convolutions on them natively; on
    other CPUs bfloat16 is emulated and slower than float32.
    """
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info()["flags"])


def command_line(program: str, argv: list[str]) -> str:
    """``python PROGRAM ARGS...`` as a shell would need it to run again."""
    return shlex.join(["python", program, *argv])


class Session:
    """Times one process's work on a work dir and appends it to ``sessions.jsonl``."""

    def __init__(self, command: str, started: float | None = None):
        """``started``: the ``time.perf_counter()`` the session began at (now)."""
        self.command = command
        self._start = time.perf_counter() if started is None else started
        self.started = time.time() - (time.perf_counter() - self._start)

    def record(self, workdir: str | Path, **fields) -> dict:
        entry = {
            "command": self.command,
            "cpu": cpu_model(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "wall_seconds": round(time.perf_counter() - self._start, 1),
            **fields,
        }
        try:
            with open(Path(workdir) / SESSIONS, "a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as error:  # the run itself is saved; only its record is lost
            print(
                f"warning: cannot record this session in {workdir}/{SESSIONS} "
                f"({error.strerror or error})",
                file=sys.stderr,
            )
        return entry


def read_sessions(workdir: str | Path) -> list[dict]:
    """The sessions recorded in ``workdir`` (a damaged line is skipped)."""
    path = Path(workdir) / SESSIONS
    if not path.is_file():
        return []
    sessions = []
    for line in path.read_text().splitlines():
        try:
            sessions.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return sessions
