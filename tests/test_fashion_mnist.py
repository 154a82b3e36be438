"""Real data: a tiny binary ResNetE on the Debian package's Fashion-MNIST files.

TFDS builds ``fashion_mnist`` once (~25 s) from /usr/share/datasets/fashion-mnist
into the default data dir (~/tensorflow_datasets) and reuses it afterwards.
"""

import json
import os

import pytest
from mock_cli import run_cli

from bidense.data import sources

FILES = sources.KNOWN_MANUAL_DIRS["fashion_mnist"]

# 10 balanced classes: chance is 10 %. This tiny binary ResNetE reached 70.8 %
# after these 80 steps (5,120 images) when the test was written; 55 % leaves room
# for seed and thread-count noise while failing a broken pipeline or model
# (shuffled labels, a wrong normalisation or dead gradients stay near chance).
THRESHOLD = 0.55


@pytest.mark.slow
# CI installs the Debian package (.ci/run), so there a missing copy is a failure.
@pytest.mark.skipif(
    not os.path.isdir(FILES) and not os.environ.get("CI"),
    reason=f"needs {FILES} (apt-get install dataset-fashion-mnist)",
)
def test_tiny_binary_model_learns_and_evaluate_reproduces_it(tmp_path):
    run = tmp_path / "run"
    train = run_cli(
        "train.py", "--model", "binary_resnet_e18", "--dataset", "fashion_mnist",
        "--workdir", run, "--config.epochs=1", "--config.steps_per_epoch=80",
        "--config.batch_size=64", "--config.model.filters=(8,16,32,64)",
        "--config.optimizer.learning_rate=0.005", "--config.verbose=0",
        mock=False, timeout=600,
    )  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "binary_resnet_e18"
    # Selected on the last 5,000 training images, tested on all 10,000 test images.
    assert (summary["validation_examples"], summary["test_examples"]) == (5000, 10_000)
    assert summary["test_top1"] > THRESHOLD, train.stdout[-500:]

    run_cli("evaluate.py", "--workdir", run, mock=False, timeout=600)
    row = json.loads((run / "eval_best.json").read_text())
    assert row["examples"] == 10_000
    assert row["top1"] == pytest.approx(summary["test_top1"], abs=1e-6)
