"""train.py: the CLI on mock data, resuming, XLA numerics, bad input."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from mock_cli import TINY, run_in_process

import bidense
from bidense import provenance
from bidense.training import config as config_lib
from bidense.training import experiment, loop, modeling
from bidense.training import workdir as wd

CONFIG_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "configs"


def train_args(workdir, *extra, model="binary_densenet28", dataset="fashion_mnist"):
    return [
        "--model", model, "--dataset", dataset, "--workdir", workdir,
        "--config.epochs=2", "--config.batch_size=16", *TINY[model], *extra,
    ]  # fmt: skip


def test_train_cli_writes_a_complete_work_dir_and_resumes(tmp_path, tiny_run):
    """The shared tiny run is train.py's output: check it, then resume a copy."""
    summary_line = tiny_run.stdout.strip().splitlines()[-1]
    assert summary_line.startswith("binary_densenet28 on fashion_mnist: test top-1")
    assert "images/s" in summary_line

    run = tiny_run.workdir
    for name in (wd.CONFIG, wd.FINAL_MODEL, wd.BEST_MODEL, wd.BEST_STATE, wd.SUMMARY):
        assert (run / name).is_file(), name
    assert list((run / wd.CHECKPOINTS / "chief").glob("ckpt-*.index"))
    assert list((run / wd.TENSORBOARD).rglob("events.out.tfevents.*"))
    resolved = json.loads((run / wd.CONFIG).read_text())
    assert resolved["epochs"] == 2 and resolved["model"]["growth_rate"] == 8
    with open(run / wd.CSV_LOG) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert all(float(r["images_per_second"]) > 0 and r["val_accuracy"] for r in rows)
    summary = json.loads((run / wd.SUMMARY).read_text())
    assert f"test top-1 {summary['test_top1']:.2%}" in summary_line
    # Selected on the carved validation split, reported on the test split.
    assert summary["splits"] == {
        "train": "train[:32]",
        "validation": "train[32:]",
        "test": "test",
    }
    best = json.loads((run / wd.BEST_STATE).read_text())
    assert summary["selected"] == "best"
    assert summary["selected_epoch"] == best["epoch"]
    assert summary["val_top1"] == best["val_accuracy"]
    assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(
        summary["val_top1"]
    )
    assert f"validation top-1 {summary['val_top1']:.2%}" in summary_line
    # Each session records how it was run.
    (session,) = provenance.read_sessions(run)
    assert session["command"].startswith("python train.py --model binary_densenet28")
    assert session["wall_seconds"] > 0 and session["cpu"]

    # Plain Keras loads the final model once bidense is imported.
    model = tf.keras.models.load_model(run / wd.FINAL_MODEL)
    assert model.name == "binary_densenet28"
    assert model.predict(np.zeros((1, 28, 28, 1)), verbose=0).shape == (1, 10)

    # The same command again resumes a finished run: nothing more is trained.
    run = tiny_run.copy(tmp_path / "run")
    command = [*tiny_run.args, "--workdir", run]
    # In-process from here on: the subprocess above is train.py's own command.
    again = run_in_process("train.py", *command, examples=tiny_run.examples)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Resuming from" in again.stderr
    with open(run / wd.CSV_LOG) as f:
        assert len(list(csv.DictReader(f))) == 2
    resumed = json.loads((run / wd.SUMMARY).read_text())
    assert resumed["test_top1"] == summary["test_top1"]
    assert len(provenance.read_sessions(run)) == 2

    # Another config in the same work dir is refused, --restart starts over.
    other = run_in_process(
        "train.py", *command, "--config.model.binary=false", examples=tiny_run.examples
    )
    assert other.returncode == 2
    assert "model.binary: true -> false" in other.stderr and "--restart" in other.stderr
    assert "Traceback" not in other.stderr


class Interrupt(tf.keras.callbacks.Callback):
    """Simulates a crash: raises once ``optimizer.iterations`` reaches ``step``."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) >= self.step:
            raise KeyboardInterrupt


class Snapshot(tf.keras.callbacks.Callback):
    """Weights and step at train start and right after step ``at`` (if given)."""

    def __init__(self, at=None):
        super().__init__()
        self.at, self.saved = at, None

    def on_train_begin(self, logs=None):
        self.start_step = int(self.model.optimizer.iterations)
        self.start = [w.numpy() for w in self.model.weights]

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.at:
            self.saved = [w.numpy() for w in self.model.weights]


def tiny_config(**changes):
    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_densenet28", "fashion_mnist")
    overrides = [("batch_size", "8"), ("epochs", "2"), ("steps_per_epoch", "4")]
    overrides += [
        tuple(a[len("--config.") :].split("=")) for a in TINY["binary_densenet28"]
    ]
    overrides += [(k, str(v)) for k, v in changes.items()]
    return config_lib.apply_overrides(cfg, overrides)


@pytest.mark.parametrize("every_steps, crash_at, resumed_at", [(0, 6, 4), (2, 7, 6)])
def test_resume_restores_model_optimizer_and_position(
    tmp_path, every_steps, crash_at, resumed_at
):
    """Crash mid-run; the rerun continues from the last checkpoint, exactly.

    Epochs have 4 steps. Per-epoch checkpoints: a crash at step 6 resumes at
    step 4 (start of epoch 2). Every 2 steps: a crash at step 7 resumes at 6.
    """
    cfg = tiny_config(checkpoint_every_steps=every_steps, verbose=0)
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        exp = experiment.setup(cfg, tmp_path)
        # Backup runs before Snapshot, so Snapshot sees the checkpointed weights.
        before = Snapshot(at=resumed_at)
        with pytest.raises(KeyboardInterrupt):
            loop.train(exp, [before, Interrupt(step=crash_at)])
        tf.keras.backend.clear_session()

        exp = experiment.setup(cfg, tmp_path)
        assert exp.resumes
        assert exp.start_step == resumed_at  # where the data stream starts too
        after = Snapshot()
        summary = loop.train(exp, [after])
    assert after.start_step == resumed_at  # optimizer step (and lr schedule) restored
    for restored, saved in zip(after.start, before.saved, strict=True):
        np.testing.assert_array_equal(restored, saved)  # model and BN state
    assert int(exp.model.optimizer.iterations) == 8  # nothing replayed or skipped
    assert summary["epochs"] == 2  # one CSV row per epoch across both runs
    # The optimizer's slots exist before fit: its step is traced once, not a
    # second time for variables made in the first trace.
    assert exp.fit_model.train_function.experimental_get_tracing_count() == 1


def test_xla_keeps_the_numerics_of_larq_quantizers():
    """One training step with and without XLA: same loss, same updated weights."""
    results = []
    x = np.random.RandomState(0).randn(16, 28, 28, 1).astype("float32")
    y = np.arange(16) % 10
    for jit in (False, True):
        tf.keras.utils.set_random_seed(1)
        model = bidense.create_model(
            "binary_densenet28", input_shape=(28, 28, 1), num_classes=10,
            growth_rate=8, initial_filters=8, blocks=(1, 1, 1, 1),
        )  # fmt: skip
        modeling.compile_model(
            model, 10, tf.keras.optimizers.Adam(1e-3), jit_compile=jit
        )
        loss = [model.train_on_batch(x, y)[0] for _ in range(3)]
        results.append((loss, [w.numpy() for w in model.weights]))
    (loss_a, weights_a), (loss_b, weights_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-4)
    for a, b in zip(weights_a, weights_b, strict=True):
        # Sign quantizers are discontinuous: a latent weight within float
        # round-off of 0 could flip. Three Adam steps of 1e-3 leave them far away.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet50"],
         "unknown model 'resnet50'; choose one of: binary_densenet28"),
        (["--model", "binary_resnet_e18", "--dataset", "no_such_set"],
         "unknown TFDS dataset 'no_such_set'"),
        (["--model", "binary_resnet_e18", "--config.epoch=2"],
         "unknown config key config.epoch; did you mean config.epochs?"),
        (["--model", "binary_resnet_e18", "--dataset", "imagenet2012"],
         "ILSVRC2012_img_train.tar"),
        (["--model", "binary_resnet_e18", "--config.epochs"], "needs a value"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_error(tmp_path, args, message):
    """In-process (tests/test_reliability.py runs the real process once)."""
    # Real TFDS (an empty data dir) for the dataset errors, mock data otherwise.
    real = "--dataset" in args
    result = run_in_process(
        "train.py", "--workdir", tmp_path / "run", "--data_dir", tmp_path / "tfds",
        *args, mock=not real,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors and message in errors[-1], result.stderr[-2000:]


def test_bad_switch_values_are_refused_before_training(tmp_path):
    for changes, message in [
        ({"model.scaling": "median"}, "scaling"),
        ({"model.gradient": "swish"}, "gradient"),
        ({"epochs": 0}, "config.epochs must be >= 1"),
        ({"optimizer.name": "lamb"}, "config.optimizer.name must be one of adam, sgd"),
        ({"schedule.name": "linear"}, "config.schedule.name must be one of"),
        (
            {"batch_size": 1000, "steps_per_epoch": 0},
            "exceeds the 40 training examples",
        ),
    ]:
        cfg = tiny_config(**changes)
        with tfds.testing.mock_data(
            num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
        ):
            with pytest.raises(ValueError, match=message) as info:
                experiment.setup(cfg, tmp_path / "run", restart=True)
        assert "\n" not in str(info.value)


def test_distillation_in_bfloat16_resumes_exactly_and_saves_only_the_student(
    tmp_path, tiny_run
):
    """A frozen teacher (a train.py work dir) beside the bfloat16 student.

    The crashed run resumes at its checkpoint with the student's weights and the
    optimizer's position; neither the checkpoints nor the saved models hold the
    teacher, and the reported model is the student.
    """
    cfg = tiny_config(
        verbose=0, precision="mixed_bfloat16", **{"distill.teacher": tiny_run.workdir}
    )
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        exp = experiment.setup(cfg, tmp_path)
        assert exp.fit_model is not exp.model
        before = Snapshot(at=4)
        with pytest.raises(KeyboardInterrupt):
            loop.train(exp, [before, Interrupt(step=6)])
        tf.keras.backend.clear_session()

        exp = experiment.setup(cfg, tmp_path)
        assert exp.resumes and exp.start_step == 4
        after = Snapshot()
        summary = loop.train(exp, [after])
    for restored, saved in zip(after.start, before.saved, strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert int(exp.fit_model.optimizer.iterations) == 8 and summary["epochs"] == 2
    assert exp.fit_model.train_function.experimental_get_tracing_count() == 1
    convs = [layer for layer in exp.model.layers if "conv" in layer.name]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)

    student_weights = len(exp.model.weights)
    latest = tf.train.latest_checkpoint(str(tmp_path / wd.CHECKPOINTS / "chief"))
    stored = [
        name
        for name, _ in tf.train.list_variables(latest)
        if name.startswith("model/")
        and not name.startswith("model/optimizer/")
        and "OPTIMIZER_SLOT" not in name
    ]
    assert len(stored) == student_weights  # the teacher is as large: not there
    for saved in (wd.FINAL_MODEL, wd.BEST_MODEL):
        model = tf.keras.models.load_model(tmp_path / saved)
        assert model.name == "binary_densenet28"
        assert len(model.weights) == student_weights
