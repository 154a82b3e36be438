"""Running a study's cells through train.py: skip finished, resume interrupted.

Every run is a ``train.py`` subprocess with the cell's overrides, so a study
trains with exactly the code and checkpoints of a single training run. The work
directory decides what happens:

* ``summary.json`` present: finished, skipped (train.py writes it last, atomically).
* ``config.json`` present, no summary: interrupted; the same command makes
  train.py resume from its last checkpoint (or refuse, if the study changed).
* otherwise: started fresh.

Subprocesses also isolate TensorFlow's memory and threads, which makes running N
cells in parallel a matter of N processes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bidense.ablation import grid
from bidense.ablation.study import Study, StudyError

LOG = "ablate.log"  # train.py's stdout and stderr, appended across sessions
TIMES = "ablate.json"  # wall time of every session the runner spent on the run
SUMMARY = "summary.json"  # bidense.training.workdir.SUMMARY (kept free of TF here)
CONFIG = "config.json"  # bidense.training.workdir.CONFIG


@dataclasses.dataclass
class Outcome:
    run: grid.Run
    status: str  # "skipped", "finished", "resumed", "failed", "cancelled"
    seconds: float = 0.0
    message: str = ""


def state(run: grid.Run) -> str:
    """``"done"``, ``"interrupted"`` or ``"new"``, from the files train.py wrote."""
    if (run.workdir / SUMMARY).is_file():
        return "done"
    if (run.workdir / CONFIG).is_file():
        return "interrupted"
    return "new"


def check_cells(study: Study, cells: list[grid.Cell], config_dir, build=True) -> None:
    """Resolves every cell's config and (``build``) builds its model once.

    Everything a typo can break fails here, before hours of training: unknown
    models or switches, values of the wrong type (via train.py's own override
    parser), and switch values the builders refuse (e.g. ``scaling="median"``).
    """
    import bidense
    from bidense.training import config as config_lib

    seen = set()
    for cell in cells:
        if cell.model not in bidense.list_models():
            raise StudyError(
                f"unknown model {cell.model!r}; choose one of: "
                + ", ".join(bidense.list_models())
            )
        switches = bidense.model_switches(cell.model)
        for key in cell.settings:
            is_switch = grid.config_key(key).startswith("model.")
            if key != grid.MODEL_KEY and is_switch and key not in switches:
                raise StudyError(
                    f"{cell.model} has no switch {key!r}; switches: "
                    + ", ".join(switches)
                )
        try:
            recipe = recipe_dict(config_dir, cell.model, study.dataset)
            cfg = config_lib.load_recipe(config_dir, cell.model, study.dataset)
            config_lib.apply_overrides(cfg, grid.overrides(study, cell, 0, recipe))
        except (config_lib.ConfigError, ValueError) as error:
            raise StudyError(f"cell {cell.name}: {error}") from None
        key = json.dumps(config_lib.to_dict(cfg.model), sort_keys=True)
        if build and (cell.model, key) not in seen:
            seen.add((cell.model, key))
            _build(cell, cfg)


@functools.lru_cache
def recipe_dict(config_dir, model: str, dataset: str) -> dict:
    """The resolved recipe ``configs/<model>.py`` for ``dataset``, as a dict."""
    from bidense.training import config as config_lib

    return config_lib.to_dict(config_lib.load_recipe(config_dir, model, dataset))


def _build(cell, cfg) -> None:
    """Builds the cell's model at CIFAR size: the switch checks are in the builders."""
    import tensorflow as tf

    import bidense
    from bidense.training import modeling

    kwargs = modeling.model_kwargs(cfg)
    kwargs.pop("weights", None)
    try:
        bidense.create_model(
            cell.model, input_shape=(32, 32, 3), num_classes=10, **kwargs
        )
    except ValueError as error:
        raise StudyError(f"cell {cell.name}: {error}") from None
    finally:
        tf.keras.backend.clear_session()


def command(
    study: Study,
    run: grid.Run,
    *,
    launcher: Sequence[str] = (sys.executable,),
    train_script: str | Path = "train.py",
    extra_args: Sequence[str] = (),
    config_dir: str | Path | None = None,
) -> list[str]:
    """The train.py command of one run (``launcher`` may wrap it, e.g. mock data).

    ``config_dir`` (default: next to ``train_script``) holds the recipes, whose
    values are not repeated on the command line (see :func:`grid.overrides`).
    """
    config_dir = Path(config_dir or Path(train_script).resolve().parent / "configs")
    recipe = recipe_dict(config_dir, run.cell.model, study.dataset)
    return [
        *launcher,
        str(train_script),
        "--model", run.cell.model,
        # The recipe's name: a folder's absolute path (runs start elsewhere).
        "--dataset", recipe["dataset"]["name"],
        "--workdir", str(run.workdir),
        *[
            f"--config.{k}={v}"
            for k, v in grid.overrides(study, run.cell, run.seed, recipe)
        ],
        "--config.verbose=2",  # one line per epoch in ablate.log, not a progress bar
        *extra_args,
    ]  # fmt: skip


def thread_env(parallel: int) -> dict[str, str]:
    """Splits the cores between ``parallel`` processes (unless the user chose).

    TensorFlow otherwise sizes each process's thread pools to all cores, and N
    processes oversubscribe the CPU N times.
    """
    if parallel <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // parallel))
    names = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
    env = {name: threads for name in names if name not in os.environ}
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return env


def run_all(
    study: Study,
    runs: list[grid.Run],
    *,
    parallel: int = 1,
    launcher: Sequence[str] = (sys.executable,),
    train_script: str | Path = "train.py",
    extra_args: Sequence[str] = (),
    cwd: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[Outcome]:
    """Runs every unfinished run, ``parallel`` at a time; returns the outcomes.

    A failed run is reported and the others go on: one bad cell should not cost
    the rest of a night's study. Rerunning resumes the failed or interrupted ones.
    """
    env = {**os.environ, **thread_env(parallel)}
    lock = threading.Lock()
    total = len(runs)

    def say(text):
        with lock:
            echo(text)

    def one(index_run):
        index, run = index_run
        tag = f"[{index + 1}/{total}] {run.name}"
        before = state(run)
        if before == "done":
            say(f"{tag}: finished before, skipped")
            return Outcome(run, "skipped")
        say(f"{tag}: {'resuming' if before == 'interrupted' else 'starting'}")
        argv = command(
            study, run, launcher=launcher, train_script=train_script,
            extra_args=extra_args,
        )  # fmt: skip
        seconds, code = _execute(argv, run.workdir, env, cwd)
        if code == 0 and state(run) == "done":
            status = "resumed" if before == "interrupted" else "finished"
            say(f"{tag}: {status} in {seconds:.0f}s")
            return Outcome(run, status, seconds)
        message = last_error(run.workdir / LOG) or f"exit status {code}"
        say(f"{tag}: FAILED ({message}); log: {run.workdir / LOG}")
        return Outcome(run, "failed", seconds, message)

    stop = threading.Event()

    def guarded(index_run):
        # After Ctrl-C no queued run may start (the running ones got SIGINT too).
        return Outcome(index_run[1], "cancelled") if stop.is_set() else one(index_run)

    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        return list(pool.map(guarded, enumerate(runs)))
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _execute(argv, workdir: Path, env, cwd) -> tuple[float, int]:
    """Runs ``argv`` with output appended to the run's log; records wall time."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(workdir / LOG, "a") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        code = subprocess.call(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    seconds = time.perf_counter() - start
    times = read_times(workdir)
    times["sessions"].append(round(seconds, 3))
    (workdir / TIMES).write_text(json.dumps(times))
    return seconds, code


def read_times(workdir: Path) -> dict:
    path = Path(workdir) / TIMES
    if not path.is_file():
        return {"sessions": []}
    try:
        times = json.loads(path.read_text())
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        times = None
    sessions = times.get("sessions") if isinstance(times, dict) else None
    if not isinstance(sessions, list) or not all(
        isinstance(s, int | float) for s in sessions
    ):
        raise StudyError(
            f"{path} is damaged; delete it (it only holds the wall times of the "
            "run's sessions) and rerun the same command"
        )
    return times


def last_error(log: Path) -> str:
    """The last line that names an error (train.py prints one-line errors)."""
    if not log.is_file():
        return ""
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:300]
