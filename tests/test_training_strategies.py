"""--strategy: MirroredStrategy on two logical CPUs, MultiWorkerMirroredStrategy
with two local worker processes on 127.0.0.1. Each trains a tiny model for a few
steps in subprocesses (a strategy must exist before TensorFlow initialises)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from mock_cli import TINY

import bidense  # noqa: F401  (registers the custom objects for load_model)
from bidense.training import strategies

ARGS = [
    "--model", "binary_resnet_e18", "--dataset", "fashion_mnist",
    "--config.epochs=1", "--config.batch_size=16", "--config.steps_per_epoch=3",
    "--config.eval_steps=1", *TINY["binary_resnet_e18"],
]  # fmt: skip


def test_mirrored_replicas_agree_on_the_weights_with_a_teacher_in_the_step(tmp_path):
    """After a few steps, both replicas hold identical trainable weights.

    BatchNorm's moving statistics are excluded: they are SyncOnRead variables,
    each replica keeps its own running averages and reads return their mean.
    A frozen teacher (a .keras file) runs in each replica's step, the harder
    case; the plain step under a mirrored strategy is the multi-worker test's.
    """
    teacher = str(tmp_path / "teacher.keras")
    bidense.create_model(
        "binary_resnet_e18", input_shape=(28, 28, 1), num_classes=10,
        filters=(8, 8, 16, 16), binary=False,
    ).save(teacher)  # fmt: skip
    script = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, tensorflow_datasets as tfds
from bidense.training import config, experiment, loop
cfg = config.load_recipe({str(Path(__file__).parent.parent / "configs")!r},
                         "binary_resnet_e18", "fashion_mnist")
config.apply_overrides(cfg, [
    ("epochs", "1"), ("batch_size", "16"), ("steps_per_epoch", "3"),
    ("eval_steps", "1"), ("verbose", "0"), ("model.filters", "(8,8,16,16)"),
    ("dataset.validation_examples", "16")]
    + [("distill.teacher", {teacher!r})])
with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    exp = experiment.setup(cfg, {str(tmp_path)!r}, strategy="mirrored")
    loop.train(exp)
assert exp.fit_model is not exp.model
worst = 0.0
for v in exp.model.trainable_weights:
    a, b = [x.numpy() for x in v.values]
    worst = max(worst, float(np.abs(a - b).max()))
print("replicas", exp.strategy.num_replicas_in_sync, "max_diff", worst)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2 max_diff 0.0" in result.stdout, result.stdout


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_strategy_two_local_workers_agree(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    mock_cli = Path(__file__).resolve().parent / "mock_cli.py"
    for index in range(2):
        env = {
            **os.environ,
            "MOCK_EXAMPLES": "64",
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(mock_cli),
                    "train.py",
                    *ARGS,
                    "--workdir",
                    str(tmp_path),
                    "--strategy",
                    "multi_worker",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=mock_cli.parent.parent,
            )  # fmt: skip
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=400))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "on 2 replica(s)" in err
    chief = tf.keras.models.load_model(tmp_path / "final.keras")
    other = tf.keras.models.load_model(tmp_path / "workers" / "1" / "final.keras")
    assert len(chief.weights) == len(other.weights)
    for a, b in zip(chief.weights, other.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Training moved the weights away from the (shared-seed) initialisation.
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 1


def test_unknown_strategy_and_missing_tf_config():
    with pytest.raises(ValueError, match="unknown strategy 'horovod'"):
        strategies.make_strategy("horovod")
    if "TF_CONFIG" not in os.environ:
        with pytest.raises(ValueError, match="needs the TF_CONFIG"):
            strategies.make_strategy("multi_worker")
