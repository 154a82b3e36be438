"""Real data: a tiny binary ResNetE on the Debian package's Fashion-MNIST files.

TFDS builds ``fashion_mnist`` once (~25 s) from /usr/share/datasets/fashion-mnist
into the default data dir (~/tensorflow_datasets) and reuses it afterwards.
"""

import json
import os

import pytest
from mock_cli import run_in_process

from bidense import weights
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
    # In-process (the commands' own parsing and main, without a TensorFlow
    # import per command): what is tested is the data, not the process.
    train = run_in_process(
        "train.py", "--model", "binary_resnet_e18", "--dataset", "fashion_mnist",
        "--workdir", run, "--config.epochs=1", "--config.steps_per_epoch=80",
        "--config.batch_size=64", "--config.model.filters=(8,16,32,64)",
        "--config.optimizer.learning_rate=0.005", "--config.verbose=0",
        mock=False,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "binary_resnet_e18"
    # Selected on the last 5,000 training images, tested on all 10,000 test images.
    assert (summary["validation_examples"], summary["test_examples"]) == (5000, 10_000)
    assert summary["test_top1"] > THRESHOLD, train.stdout[-500:]

    evaluate = run_in_process("evaluate.py", "--workdir", run, mock=False)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    row = json.loads((run / "eval_best.json").read_text())
    assert row["examples"] == 10_000
    assert row["top1"] == pytest.approx(summary["test_top1"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(FILES) and not os.environ.get("CI"),
    reason=f"needs {FILES} (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.parametrize("name", sorted(weights.FASHION_MNIST_WEIGHTS))
def test_shipped_weights_reproduce_their_test_top1(name, tmp_path):
    """evaluate.py --model NAME --weights fashion_mnist, without --dataset (the
    weights' own data), on all 10,000 test images gives the test top-1 recorded
    in the weights table, to 0.01 pp."""
    output = tmp_path / "row.json"
    result = run_in_process(
        "evaluate.py", "--model", name, "--weights", "fashion_mnist",
        "--output_json", output, "--results_csv", tmp_path / "results.csv", mock=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(output.read_text())
    assert (row["dataset"], row["examples"]) == ("fashion_mnist", 10_000)
    assert abs(row["top1"] - weights.FASHION_MNIST_WEIGHTS[name].test_top1) <= 1e-4


def test_at_least_one_resnet_e_and_one_densenet_ship_fashion_mnist_weights():
    shipped = set(weights.FASHION_MNIST_WEIGHTS)
    assert any("resnet_e" in name for name in shipped), shipped
    assert any("densenet" in name for name in shipped), shipped
