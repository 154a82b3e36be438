"""Learning-rate schedules: step decay and cosine with warm-up, in epochs."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from bidense.training import schedules


def lr_at(schedule, epoch, steps_per_epoch=10):
    return float(schedule(tf.constant(int(epoch * steps_per_epoch))))


def test_step_decay_matches_the_paper_cifar10_recipe():
    # Adam 0.01, x0.3 at epochs 75/100/125 (Bethge et al. 2019, section 5).
    s = schedules.StepDecay(0.01, 10, [75, 100, 125], 0.3)
    assert lr_at(s, 0) == pytest.approx(0.01)
    assert lr_at(s, 74.9) == pytest.approx(0.01)
    assert lr_at(s, 75) == pytest.approx(0.003)
    assert lr_at(s, 100) == pytest.approx(0.0009)
    assert lr_at(s, 149) == pytest.approx(0.00027)


def test_cosine_with_warmup():
    s = schedules.CosineWithWarmup(1.0, 10, epochs=10, warmup_epochs=2)
    assert lr_at(s, 0) < 0.01
    assert lr_at(s, 1) == pytest.approx(0.5, abs=1e-3)
    assert lr_at(s, 2) == pytest.approx(1.0, abs=1e-3)
    assert lr_at(s, 6) == pytest.approx(0.5, abs=1e-3)
    assert lr_at(s, 10) == pytest.approx(0.0, abs=1e-6)
    values = [lr_at(s, e) for e in np.linspace(2, 10, 17)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_schedules_round_trip_through_keras_serialization():
    for s in (
        schedules.StepDecay(0.01, 10, [5], 0.1, 1.0),
        schedules.CosineWithWarmup(0.1, 10, 20, 2.0, 0.1),
    ):
        clone = tf.keras.optimizers.schedules.deserialize(
            tf.keras.optimizers.schedules.serialize(s)
        )
        assert lr_at(clone, 7) == pytest.approx(lr_at(s, 7))


def test_make_schedule_rejects_unknown_names():
    cfg = ml_collections.ConfigDict({"name": "linear", "warmup_epochs": 0.0})
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedules.make_schedule(cfg, 0.1, 10, 10)
