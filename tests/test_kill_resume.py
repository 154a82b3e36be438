"""SIGKILL and a full disk during training, then resume: same result (issue 7).

train.py runs in subprocesses (tests/crash_cli.py kills it with a real SIGKILL
or fails a write) with ``--deterministic``; the rerun of the same command must
resume, not restart, and end with exactly the weights, optimizer state and
metrics of an uninterrupted run.

The run: 2 epochs of 5 steps of 8 mock images (64 per pass, so the second epoch
starts mid-pass), a checkpoint every 2 steps. Keras then saves after global steps
2, 4, 5 (end of epoch 1), 6, 8, 10 and 10 again (end of epoch 2): checkpoints 1
to 7. A resumed process counts its every-2-steps from the step it resumed at.
Each test chains several failures, each rerun resuming the last one's run, so
that every failure mode is covered with few train.py processes.
"""

import io
import json
import signal
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
from mock_cli import TINY, run_cli

from bidense.training import checkpoints
from bidense.training import keras_internals as ki
from bidense.training import workdir as wd

CRASH_CLI = Path(__file__).resolve().parent / "crash_cli.py"
ARGS = [
    "--model", "binary_densenet28", "--dataset", "fashion_mnist",
    "--config.epochs=2", "--config.steps_per_epoch=5", "--config.batch_size=8",
    "--config.checkpoint_every_steps=2", "--config.verbose=0", "--deterministic",
    *TINY["binary_densenet28"],
]  # fmt: skip


def train(workdir, crash=None, extra=()):
    """train.py on ``workdir``; ``crash`` is a tests/crash_cli.py CRASH mode."""
    return run_cli(
        "train.py",
        *ARGS,
        *extra,
        "--workdir",
        workdir,
        launcher=CRASH_CLI if crash else None,
        env={"CRASH": crash} if crash else None,
        check=crash is None,
    )


def killed(result):
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def resumed_at(result, step, epoch, in_epoch):
    """The rerun says it resumes at ``step`` (the data stream starts there too)."""
    line = f"at global step {step} (epoch {epoch}, step {in_epoch})"
    assert line in result.stderr, result.stderr[-2000:]


def final_weights(run) -> dict:
    """Every array of final.keras (weights and BN statistics), by name."""
    with zipfile.ZipFile(run / wd.FINAL_MODEL) as archive:
        h5 = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    arrays = {}
    h5.visititems(
        lambda name, item: (
            arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None
        )
    )
    return arrays


def optimizer_state(run) -> dict:
    """The optimizer's variables (iterations, Adam moments) in the last checkpoint."""
    latest = tf.train.latest_checkpoint(str(run / wd.CHECKPOINTS / "chief"))
    reader = tf.train.load_checkpoint(latest)
    names = reader.get_variable_to_shape_map()
    return {
        n: reader.get_tensor(n) for n in names if n.startswith(ki.OPTIMIZER_KEY_PREFIX)
    }


def assert_same_run(run, reference):
    for state in (final_weights, optimizer_state):
        expected, actual = state(reference), state(run)
        assert expected and actual.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_array_equal(actual[name], value, err_msg=name)
    # Final evaluation (exact floats) and epochs counted across the resumes.
    keys = (
        "selected_epoch",
        "val_top1",
        "test_top1",
        "test_top5",
        "test_loss",
        "epochs",
    )
    summary, expected = (
        json.loads((r / wd.SUMMARY).read_text()) for r in (run, reference)
    )
    assert {k: summary[k] for k in keys} == {k: expected[k] for k in keys}
    # No step replayed or lost.
    assert int(optimizer_state(run)[ki.ITERATIONS_KEY]) == 10


@pytest.fixture(scope="module")
def reference(shared_by_workers):
    """The uninterrupted --deterministic run (one for both xdist workers)."""

    def uninterrupted(directory):
        train(directory / "run")
        return {}

    directory, _ = shared_by_workers("kill_resume_reference", uninterrupted)
    return directory / "run"


def test_sigkill_at_three_points_then_resume(tmp_path, reference):
    """Killed three times, each rerun resuming where the last one died; the
    fourth run finishes with exactly the uninterrupted run's state."""
    run = tmp_path / "run"
    chief = run / wd.CHECKPOINTS / "chief"
    # (a) After checkpoint 3's files (end of epoch 1, step 5) are complete on
    # disk, before the ``checkpoint`` file names it.
    killed(train(run, crash="kill_before_record:3"))
    assert (chief / "ckpt-3.index").exists()
    assert tf.train.latest_checkpoint(str(chief)) == str(chief / "ckpt-2")

    # (b) Mid-epoch: the rerun finds the complete checkpoint 3 by scanning the
    # files, resumes there (step 5), saves checkpoint 4 two steps later (step 7:
    # every 2 steps of this process) and dies right after it.
    result = train(run, crash="kill_at_step:7")
    killed(result)
    assert f"resuming from checkpoint {chief / 'ckpt-3'}" in result.stderr
    resumed_at(result, 5, 2, 0)
    assert tf.train.latest_checkpoint(str(chief)) == str(chief / "ckpt-4")

    # (c) During a checkpoint write: the resumed run (from step 7) saves at step
    # 9 and at the end of epoch 2, step 10 (as checkpoints 5 and 6); it dies
    # inside the second, after the shard's files were written under their
    # temporary names.
    result = train(run, crash="kill_in_checkpoint:2")
    killed(result)
    resumed_at(result, 7, 2, 2)
    assert list((chief / "ckpt-6_temp").iterdir())  # really killed mid-write
    assert not (chief / "ckpt-6.index").exists()
    assert tf.train.latest_checkpoint(str(chief)) == str(chief / "ckpt-5")

    result = train(run)
    resumed_at(result, 9, 2, 4)
    assert_same_run(run, reference)


def test_disk_full_in_a_checkpoint_then_in_the_final_model(tmp_path, reference):
    """Each full disk is a one-line error that keeps the last good checkpoint;
    each rerun resumes from it."""
    run = tmp_path / "run"
    chief = run / wd.CHECKPOINTS / "chief"
    # (a) The 4th checkpoint write fails.
    result = train(run, crash="enospc_checkpoint:4")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error == (
        f"train.py: error: cannot write {chief / 'ckpt-4'} (No space left on "
        f"device); checkpoint {chief / 'ckpt-3'} is intact; free disk space (or "
        "fix the permissions) and rerun the same command to resume"
    )
    # The failed write's leftovers are gone, the previous checkpoint reads fully.
    assert sorted(p.name for p in chief.iterdir()) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
        "ckpt-3.data-00000-of-00001",
        "ckpt-3.index",
    ]
    assert checkpoints.checkpoint_problem(str(chief / "ckpt-3")) is None
    assert not (run / wd.FINAL_MODEL).exists()

    # (b) The rerun resumes (step 5), saves checkpoints 4 to 6 (steps 7, 9 and
    # the end, 10), then fails writing final.keras.
    result = train(run, crash="enospc_final_model")
    resumed_at(result, 5, 2, 0)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"train.py: error: cannot write {run / wd.FINAL_MODEL} (No space left on "
        f"device); checkpoint {chief / 'ckpt-6'} is intact; free disk space"
    ), error
    assert not list(run.glob(".final*"))  # the partial file is removed
    assert not (run / wd.FINAL_MODEL).exists() and not (run / wd.SUMMARY).exists()

    result = train(run)  # training was complete: the rerun only saves
    assert "at global step 10 (training is complete; " in result.stderr
    assert_same_run(run, reference)


def test_a_distilled_run_killed_mid_epoch_resumes_to_the_uninterrupted_run(
    tmp_path, tiny_run
):
    """--deterministic with a frozen teacher (a train.py work dir) in the step:
    the killed and resumed run ends bit-identical to the uninterrupted one."""
    teacher = [f"--config.distill.teacher={tiny_run.workdir}"]
    reference = tmp_path / "reference"
    train(reference, extra=teacher)
    run = tmp_path / "run"
    killed(train(run, crash="kill_at_step:7", extra=teacher))
    result = train(run, extra=teacher)
    resumed_at(result, 6, 2, 1)
    assert_same_run(run, reference)
