"""Shared test settings: quiet TensorFlow, a fresh Keras session per test, and one
tiny finished training run for the tests that only need *some* finished run."""

import dataclasses
import functools
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under pytest-xdist every core runs a worker: one TensorFlow thread per worker
# (and per process it starts) keeps the tiny test models from contending for the
# cores with the other worker. Set before TensorFlow loads; the env is inherited.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def pytest_sessionstart(session):
    """Builds real Fashion-MNIST for TFDS once, before the xdist workers start.

    Several tests read it; two workers preparing it at the same time on a fresh
    machine would race on TFDS's data directory. Without Debian's copy the tests
    that need it skip (or, in CI, fail), as before.
    """
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller has prepared it
    from bidense.data import sources

    if os.path.isdir(sources.KNOWN_MANUAL_DIRS["fashion_mnist"]):
        sources.prepare("fashion_mnist")


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    tf.keras.backend.clear_session()


# Small shapes keep the suite fast on 2 CPU cores; the checks that need the full
# architecture (parameter counts, paper sizes) build it without running it.
TINY_RESNET_E = {"filters": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)}
TINY_DENSENET = {"growth_rate": 8, "initial_filters": 8, "blocks": (1, 1, 1, 1)}


def _tiny_switches(name: str) -> dict:
    return dict(TINY_RESNET_E if "resnet" in name else TINY_DENSENET)


@pytest.fixture
def tiny_switches():
    """``tiny_switches(name)``: overrides that make any registered model tiny."""
    return _tiny_switches


@dataclasses.dataclass(frozen=True)
class TinyRun:
    """A finished train.py run on mock Fashion-MNIST, shared by the whole session.

    Read-only: a test that writes into a run (evaluate.py's results, a resume, a
    corrupted checkpoint) works on ``copy(tmp_path / "run")``.
    """

    workdir: Path
    args: tuple[str, ...]  # train.py's arguments, without --workdir
    examples: int  # per split of the mock dataset (pass to run_cli)
    stdout: str
    stderr: str

    def copy(self, destination) -> Path:
        shutil.copytree(self.workdir, destination)
        return Path(destination)


def _tree(root: Path) -> dict:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def _shared_by_workers(tmp_path_factory, name: str, make) -> tuple[Path, dict]:
    """``make(directory) -> dict`` run once per session, whatever the xdist workers.

    Returns the directory and what ``make`` returned (JSON). Each xdist worker has
    its own session fixtures: without this, both cores would train the same tiny
    run. pytest-xdist's recipe: the workers' temporary directories share a
    parent, and a file lock lets the first worker build while the other waits.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this session's directory, shared by its workers
    directory, done = root / name, root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            directory.mkdir()
            done.write_text(json.dumps(make(directory)))
    return directory, json.loads(done.read_text())


@pytest.fixture(scope="session")
def shared_by_workers(tmp_path_factory):
    """``shared_by_workers(name, make)``: see :func:`_shared_by_workers`."""
    return functools.partial(_shared_by_workers, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_run(shared_by_workers):
    """train.py (the real command, in a subprocess) of a tiny BinaryDenseNet28:
    2 epochs of 3 steps of 16 mock images, one checkpoint per epoch."""
    from mock_cli import TINY, run_cli

    args = (
        "--model", "binary_densenet28", "--dataset", "fashion_mnist",
        "--config.epochs=2", "--config.batch_size=16", *TINY["binary_densenet28"],
    )  # fmt: skip
    examples = 48

    def train(directory: Path) -> dict:
        result = run_cli(
            "train.py", *args, "--workdir", directory / "run", examples=examples
        )
        return {"stdout": result.stdout, "stderr": result.stderr}

    directory, output = shared_by_workers("tiny_run", train)
    workdir = directory / "run"
    before = _tree(workdir)
    yield TinyRun(workdir, args, examples, output["stdout"], output["stderr"])
    assert _tree(workdir) == before, (
        "a test wrote into the shared tiny_run work dir; use tiny_run.copy(tmp_path)"
    )
