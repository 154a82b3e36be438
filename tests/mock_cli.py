"""Runs train.py or evaluate.py inside ``tfds.testing.mock_data`` (test helper).

    python tests/mock_cli.py train.py --model ... (same flags)

Environment: ``MOCK_EXAMPLES`` (examples per split, default 64) and
``LOGICAL_CPUS`` (split the CPU into that many logical devices first, so
MirroredStrategy has two replicas on a one-CPU machine).

:func:`run_cli` runs an entry point in a subprocess; :func:`run_in_process` runs
the same command in the test's process (no TensorFlow import per call), through
the entry point's ``cli.Command`` with its own fresh flags: what to use when
the process boundary itself is not what a test checks.
"""

import contextlib
import functools
import importlib.util
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

REPO = Path(__file__).resolve().parent.parent


def main():
    script, args = sys.argv[1], sys.argv[2:]
    cpus = int(os.environ.get("LOGICAL_CPUS", "0"))
    if cpus:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * cpus,
        )
    sys.argv = [script, *args]
    sys.path.insert(0, str(REPO))  # as python would for the script: cli.py beside it
    with tfds.testing.mock_data(
        num_examples=int(os.environ.get("MOCK_EXAMPLES", "64")),
        policy=tfds.testing.MockPolicy.USE_CODE,
    ):
        runpy.run_path(str(REPO / script), run_name="__main__")


if __name__ == "__main__":
    main()


def run_cli(
    script, *args, examples=64, env=None, timeout=300, check=True, mock=True,
    launcher=None,
):  # fmt: skip
    """Runs ``script`` (train.py/evaluate.py) in a subprocess, on mock data if ``mock``.

    ``launcher``: another wrapper script than this one (e.g. tests/crash_cli.py).
    Returns the CompletedProcess; with ``check`` a non-zero exit fails with stderr.
    """
    full_env = {**os.environ, "MOCK_EXAMPLES": str(examples), **(env or {})}
    # This checkout's bidense, whatever an editable install elsewhere points at:
    # the script's own directory, not the cwd, starts a subprocess's sys.path.
    path = [str(REPO), *filter(None, [full_env.get("PYTHONPATH")])]
    full_env["PYTHONPATH"] = os.pathsep.join(path)
    wrapper = [str(launcher or Path(__file__).resolve())] if mock else []
    result = subprocess.run(
        [sys.executable, *wrapper, script, *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{script} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


@functools.cache
def entry_point(script: str):
    """The module of an entry point (``train.py``, ...), imported once.

    Importing defines no flags (each ``cli.Command`` call defines its own), so
    all four entry points live side by side in one process.
    """
    name = f"{Path(script).stem}_entry_point"
    spec = importlib.util.spec_from_file_location(name, REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(script, *args, examples=64, mock=True):
    """Runs ``script`` with ``args`` in this process, on mock data if ``mock``.

    Returns a CompletedProcess with the exit status and what the command
    printed (Python-level stdout and stderr). An exception other than the
    SystemExit of ``cli.fail`` propagates: in a real process it would be a
    traceback.
    """
    argv = [script, *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    data = (
        tfds.testing.mock_data(
            num_examples=examples, policy=tfds.testing.MockPolicy.USE_CODE
        )
        if mock
        else contextlib.nullcontext()
    )
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        with data:
            try:
                status = entry_point(script).COMMAND.call(argv)
            except SystemExit as exit:
                status = exit.code
    return subprocess.CompletedProcess(
        argv, status, stdout.getvalue(), stderr.getvalue()
    )


# Mock data has a few dozen examples per split, and no validation split of its
# own: 16 of them are carved out for validation (the default 5,000 do not fit).
MOCK_VALIDATION = "--config.dataset.validation_examples=16"
# Narrow models for tests: a few thousand parameters, seconds per epoch.
TINY = {
    "binary_resnet_e18": ["--config.model.filters=(8,8,16,16)", MOCK_VALIDATION],
    "binary_densenet28": [
        "--config.model.growth_rate=8",
        "--config.model.initial_filters=8",
        "--config.model.blocks=(1,1,1,1)",
        MOCK_VALIDATION,
    ],
}
