"""Runs train.py or evaluate.py inside ``tfds.testing.mock_data`` (test helper).

    python tests/mock_cli.py train.py --model ... (same flags)

Environment: ``MOCK_EXAMPLES`` (examples per split, default 64) and
``LOGICAL_CPUS`` (split the CPU into that many logical devices first, so
MirroredStrategy has two replicas on a one-CPU machine).
"""

import os
import runpy
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
    import subprocess

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


# Narrow models for tests: a few thousand parameters, seconds per epoch.
TINY = {
    "binary_resnet_e18": ["--config.model.filters=(8,8,16,16)"],
    "binary_densenet28": [
        "--config.model.growth_rate=8",
        "--config.model.initial_filters=8",
        "--config.model.blocks=(1,1,1,1)",
    ],
}
