"""evaluate.py: work dirs, saved models, registry name + weights, .tflite via LCE."""

import csv
import json
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from mock_cli import TINY, run_in_process

import bidense  # noqa: F401  (registers the custom objects for load_model)
from bidense import export
from bidense.training import evaluation

EXAMPLES = 48  # per split of the mock dataset; 3 evaluation batches of 16
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def mock_data():
    return tfds.testing.mock_data(
        num_examples=EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_run):
    """A copy of the shared finished tiny run (evaluate.py writes into it)."""
    assert tiny_run.examples == EXAMPLES
    return tiny_run.copy(tmp_path_factory.mktemp("eval") / "run")


def last_line(result):
    return result.stdout.strip().splitlines()[-1]


def test_workdir_evaluation_reproduces_train_accuracy(run):
    summary = json.loads((run / "summary.json").read_text())
    result = run_in_process("evaluate.py", "--workdir", run, examples=EXAMPLES)
    assert result.returncode == 0, result.stderr[-2000:]
    # The model train.py reported (best.keras, selected on validation), on the
    # test split, in float32 as train.py tested it.
    row = json.loads((run / "eval_best.json").read_text())
    assert row["split"] == "test"
    assert row["top1"] == pytest.approx(summary["test_top1"], abs=1e-6)
    assert row["loss"] == pytest.approx(summary["test_loss"], rel=1e-4)
    assert row["examples"] == EXAMPLES
    for key in ("top5", "params", "size_mib", "ops", "images_per_second"):
        assert row[key] > 0, key
    assert row["size_mib"] == pytest.approx(summary["size_mib"])
    assert f"top-1 {row['top1']:.2%}" in last_line(result)
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[-1]) == list(evaluation.RESULT_COLUMNS)
    assert float(rows[-1]["top1"]) == pytest.approx(row["top1"])


def test_saved_model_path_and_registry_name_with_weights(run, tmp_path):
    """In-process (same mock data as the subprocesses): --model_path, --model."""
    reference = json.loads((run / "summary.json").read_text())["test_top1"]
    with mock_data():
        row = evaluation.run(
            config_dir=CONFIG_DIR, model_path=run / "best.keras", results_csv=None
        )
        assert row["top1"] == pytest.approx(reference, abs=1e-6)
        assert row["model"] == "binary_densenet28"
        assert (run / "eval_best.json").exists()  # beside the model's config.json

        weights = tmp_path / "weights.h5"
        tf.keras.models.load_model(run / "best.keras").save_weights(weights)
        row = evaluation.run(
            config_dir=CONFIG_DIR,
            model_name="binary_densenet28",
            weights=str(weights),
            dataset="fashion_mnist",
            overrides=[
                tuple(a[len("--config.") :].split("="))
                for a in TINY["binary_densenet28"]
            ],
            output_json=tmp_path / "name.json",
        )
    assert row["top1"] == pytest.approx(reference, abs=1e-6)
    assert json.loads((tmp_path / "name.json").read_text())["top1"] == row["top1"]


def test_tflite_through_the_lce_interpreter_keeps_the_accuracy(run):
    model = tf.keras.models.load_model(run / "best.keras")
    export.export_model(model, run / "model.tflite")
    result = run_in_process(
        "evaluate.py", "--tflite", run / "model.tflite", examples=EXAMPLES
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lite = json.loads((run / "eval_tflite.json").read_text())
    keras = json.loads((run / "summary.json").read_text())
    assert lite["format"] == "tflite" and lite["examples"] == EXAMPLES
    # LCE computes the binary convs exactly; float ops may differ by ~1e-6, so
    # at most one of the 48 near-tied argmaxes may flip.
    assert abs(lite["top1"] - keras["test_top1"]) <= 1 / EXAMPLES + 1e-9
    assert lite["loss"] == pytest.approx(keras["test_loss"], rel=1e-2)
    assert lite["file_mib"] > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workdir": "/nonexistent/run"}, "no bidense run in --workdir /nonexistent"),
        ({"model_name": "binary_densenet28", "weights": "/nonexistent.h5",
          "dataset": "fashion_mnist"}, "no weights file at /nonexistent.h5"),
        ({"model_name": "binary_densenet28", "dataset": "fashion_mnist"},
         "needs --weights"),
        ({"tflite": "/nonexistent.tflite", "dataset": "fashion_mnist"},
         "no .tflite file at /nonexistent.tflite"),
        ({"model_path": "/nonexistent.keras", "dataset": "fashion_mnist"},
         "no saved model at /nonexistent.keras"),
        ({"model_path": "m.keras", "model_name": "binary_densenet28"},
         "evaluate one thing"),
        ({"model_path": "/nonexistent.keras"}, "--dataset is needed"),
    ],
)  # fmt: skip
def test_bad_input_raises_a_clear_error(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        evaluation.run(config_dir=CONFIG_DIR, **kwargs)
    assert "\n" not in str(info.value)


def test_cli_reports_bad_input_in_one_line():
    """In-process (tests/test_reliability.py runs the real process)."""
    result = run_in_process("evaluate.py", "--workdir", "/nonexistent/run", mock=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "evaluate.py: error: no bidense run in --workdir /nonexistent/run "
        "(/nonexistent/run/config.json missing)"
    )
