"""Reliability (issue 7): divergence is caught, corrupt checkpoints are survived."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from mock_cli import run_cli
from test_train import CONFIG_DIR, tiny_config, train_args

import bidense
from bidense.training import checkpoints, errors, experiment
from bidense.training import config as config_lib
from bidense.training import keras_internals as ki
from bidense.training import workdir as wd


def error_lines(stderr):
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_divergence_stops_train_py_with_one_line_and_status_1(tmp_path):
    """An absurd SGD learning rate really overflows the loss within epoch 1."""
    run = tmp_path / "run"
    result = run_cli(
        "train.py",
        *train_args(run, "--config.optimizer.name=sgd"),
        "--config.optimizer.learning_rate=1e38",
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert errors[-1].startswith("train.py: error: loss is "), result.stderr[-2000:]
    assert "at epoch 1, step " in errors[-1] and "(global step " in errors[-1]
    # Nothing claims the run finished.
    assert not (run / wd.FINAL_MODEL).exists() and not (run / wd.SUMMARY).exists()


class Poison(tf.keras.callbacks.Callback):
    """Turns the weights into NaN after ``step``: the next step's loss is NaN."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            for weight in self.model.trainable_weights:
                weight.assign(tf.fill(weight.shape, np.nan))


def test_nan_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # 4 steps per epoch, a checkpoint every 2: saved at steps 2 and 4 (and at the
    # end of epoch 1); the NaN loss is at step 6, epoch 2's second step.
    cfg = tiny_config(checkpoint_every_steps=2, verbose=0)
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        exp = experiment.setup(cfg, tmp_path)
        with pytest.raises(errors.NonFiniteLossError) as info:
            experiment.train(exp, [Poison(step=5)])
    message = str(info.value)
    assert "\n" not in message
    assert "loss is nan at epoch 2, step 2/4 (global step 6)" in message
    latest = tf.train.latest_checkpoint(str(tmp_path / wd.CHECKPOINTS / "chief"))
    assert latest and latest in message
    reader = tf.train.load_checkpoint(latest)
    names = reader.get_variable_to_shape_map()
    assert int(reader.get_tensor(ki.ITERATIONS_KEY)) == 4
    for name in names:
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name  # the poison never got saved


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_run):
    run = tiny_run.copy(tmp_path / "run")
    args = [*tiny_run.args, "--workdir", run, "--config.verbose=0"]
    chief = run / wd.CHECKPOINTS / "chief"
    assert sorted(p.name for p in chief.glob("*.index")) == [
        "ckpt-1.index",
        "ckpt-2.index",
    ]  # one per epoch, and the previous one is kept
    (data,) = chief.glob("ckpt-2.data-*")
    data.write_bytes(data.read_bytes()[:100])  # as if the disk filled up

    result = run_cli("train.py", *args, examples=tiny_run.examples)
    assert "Traceback" not in result.stderr
    assert f"checkpoint {chief / 'ckpt-2'} is unreadable" in result.stderr
    assert f"resuming from checkpoint {chief / 'ckpt-1'}" in result.stderr
    assert (chief / f"{data.name}.corrupt").exists()  # kept for inspection
    # Epoch 2 was trained again, and counted once.
    summary = json.loads((run / wd.SUMMARY).read_text())
    assert summary["epochs"] == 2
    assert checkpoints.checkpoint_problem(str(chief / "ckpt-2")) is None  # rewritten

    # With every checkpoint damaged there is nothing to resume: one line, status 1.
    for data in chief.glob("ckpt-*.data-*"):
        if data.suffix != ".corrupt":
            data.write_bytes(b"")
    result = run_cli("train.py", *args, examples=tiny_run.examples, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no readable checkpoint in" in error_lines(result.stderr)[-1]


def test_damaged_checkpoint_index_file_is_rebuilt(tmp_path):
    """The small ``checkpoint`` file itself garbled: the files are scanned."""
    variable = tf.Variable(1.0)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(v=variable), str(tmp_path), max_to_keep=2
    )
    manager.save()
    manager.save()
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: \x00garbage")
    assert checkpoints.use_last_good_checkpoint(tmp_path) == str(tmp_path / "ckpt-2")
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
    assert checkpoints.use_last_good_checkpoint(tmp_path / "empty") is None


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files for the bad-input table: foreign weights, a foreign work dir, a file."""
    root = tmp_path_factory.mktemp("inputs")
    model = bidense.create_model(
        "binary_resnet_e18", input_shape=(28, 28, 1), num_classes=10,
        filters=(8, 8, 16, 16),
    )  # fmt: skip
    model.save_weights(root / "resnet.h5")
    (root / "garbage.h5").write_text("not an HDF5 file")
    (root / "a_file").write_text("not a directory")
    (root / "bad_run").mkdir()
    (root / "bad_run" / wd.FINAL_MODEL).write_bytes(b"PK\x03\x04 truncated")
    resnet_run = root / "resnet_run"
    resnet_run.mkdir()
    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_resnet_e18", "fashion_mnist")
    (resnet_run / wd.CONFIG).write_text(config_lib.to_json(cfg))
    return root


DENSENET = ["--model", "binary_densenet28", "--dataset", "fashion_mnist"]
TRAIN = [*DENSENET, "--config.batch_size=16"]  # the mock split has 64 examples
EVAL_WEIGHTS = [*DENSENET, "--weights"]
EXPORT_TO = ["--output", "{root}/model.tflite"]
EXPORT_DENSENET = ["--model", "binary_densenet28", *EXPORT_TO]

# (script, args, message in the last error line). {root} is the inputs fixture;
# train.py cases get a fresh --workdir unless they pass their own. Cases already
# in tests/test_train.py and tests/test_evaluate.py are not repeated here.
# absl's "did you mean" recursed once per character of an unknown flag name: a
# pasted run of dashes overflowed the stack (found by test_parsing_properties).
HUGE_FLAG = "-" * 3000 + "1"

BAD_INPUTS = [
    ("train.py", [*TRAIN, HUGE_FLAG], "unknown flag ----"),
    ("ablate.py", ["--study", "{root}/missing.py", HUGE_FLAG], "unknown flag ----"),
    ("export.py", [*EXPORT_DENSENET, HUGE_FLAG], "unknown flag ----"),
    ("train.py", [*TRAIN, "--strategy", "bogus"],
     "flag --strategy=bogus: value should be one of"),
    ("train.py", [*TRAIN, "--config.model.scaling=median"],
     "Invalid scaling='median'; choose one of"),
    ("train.py", [*TRAIN, "--config.=3"], "malformed override '--config.=3'"),
    ("train.py", [*TRAIN, "--config.epochs=two"], "config.epochs must be a number"),
    ("train.py", [*TRAIN, "--config.dataset.image_size=4"],
     "needs inputs of at least 8x8 pixels"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/missing.h5"],
     "missing.h5' does not exist"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/resnet.h5"],
     "resnet.h5' does not fit binary_densenet28"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/garbage.h5"],
     "garbage.h5' does not fit binary_densenet28"),
    ("train.py", [*TRAIN, "--workdir", "{root}/a_file"],
     "a_file exists and is not a directory"),
    ("train.py", [*TRAIN, "--workdir", "{root}/resnet_run"],
     "holds a run with another config"),
    ("evaluate.py", ["--checkpoint", "bogus", "--workdir", "{root}"],
     "flag --checkpoint=bogus: value should be one of <final|best>"),
    ("evaluate.py", ["--model", "resnet50", "--weights", "w.h5"],
     "unknown model 'resnet50'"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5"],
     "resnet.h5' does not fit binary_densenet28"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/garbage.h5"],
     "garbage.h5' does not fit binary_densenet28"),
    ("evaluate.py", ["--workdir", "{root}/a_file"], "no bidense run in --workdir"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5", "--config.epoch=3"],
     "unknown config key config.epoch; did you mean config.epochs?"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5", "--batch_size=-1"],
     "flag --batch_size=-1: -1 is not a non-negative integer"),
    ("evaluate.py", ["--max_examples=abc"], "flag --max_examples=abc"),
    ("ablate.py", ["--study", "{root}/missing.py"], "no study file"),
    ("ablate.py", ["--study", "configs/studies/densenet_growth_vs_blocks.py",
                   "--variant", "nope", "--dry_run"], "has no variant 'nope'"),
    ("export.py", ["--workdir", "{root}/missing_run", *EXPORT_TO],
     "missing_run (no such directory)"),
    ("export.py", ["--workdir", "{root}", *EXPORT_TO], "no final.keras in --workdir"),
    ("export.py", ["--workdir", "{root}/bad_run", *EXPORT_TO],
     "bad_run/final.keras ("),
    ("export.py", ["--workdir", "{root}/bad_run", "--checkpoint=last", *EXPORT_TO],
     "flag --checkpoint=last: value should be one of <final|best>"),
    ("export.py", [*EXPORT_DENSENET, "--converter=tflite"],
     "flag --converter=tflite: value should be one of <lean|keras>"),
    ("export.py", [*EXPORT_DENSENET, "--parity_images=all"],
     "flag --parity_images=all"),
    ("export.py", ["--model", "binary_densenet28"], "--output is required"),
    ("export.py", ["--model", "binary_densenet28", "--output", "{root}/no/m.tflite"],
     "/no/m.tflite: no directory"),
    ("export.py", ["--model", "binary_densenet28", "--output", "{root}"],
     "is a directory; give a file name"),
]  # fmt: skip


@pytest.mark.parametrize(
    "script, args, message", BAD_INPUTS, ids=[f"{s}:{m[:30]}" for s, _, m in BAD_INPUTS]
)
def test_bad_input_to_an_entry_point_is_one_line_and_nonzero(
    tmp_path, inputs, script, args, message
):
    args = [a.format(root=inputs) for a in args]
    workdir = tmp_path / "run"
    if script == "train.py" and "--workdir" not in args:
        args += ["--workdir", str(workdir)]
    mock = script in ("train.py", "evaluate.py")
    result = run_cli(script, *args, check=False, mock=mock)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = error_lines(result.stderr)
    assert errors and errors[-1].startswith(f"{script}: error: ")
    assert message in errors[-1], errors[-1]
    # A failed setup does not claim the work dir (the fixed command needs no
    # --restart).
    assert not (workdir / wd.CONFIG).exists()
