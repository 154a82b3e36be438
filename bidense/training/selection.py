"""The model a run reports: chosen on validation, tested once on the test split.

During training, :class:`bidense.training.callbacks.BestModel` keeps the epoch
with the best validation top-1 as ``best.keras``. When training ends, that model
(or the final one, when the run has no validation split) is evaluated on the test
split, once; nothing is chosen after seeing a test number.

The test evaluation runs in float32 whatever ``config.precision`` trained with:
the reported number is then the one a float32 re-evaluation (evaluate.py) and
the float32 LCE export reproduce, instead of depending on bfloat16 rounding.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import tensorflow as tf

from bidense.training import modeling, precision
from bidense.training import workdir as wd

if TYPE_CHECKING:
    from bidense.training.experiment import Experiment

BEST, FINAL = "best", "final"


@dataclasses.dataclass(frozen=True)
class Selected:
    """The reported model, which checkpoint it is, and its validation record."""

    model: tf.keras.Model
    checkpoint: str  # BEST or FINAL
    epoch: int | None  # the epoch best.keras was saved at
    val_top1: float | None


def select(exp: Experiment) -> Selected:
    """``best.keras`` when the run validates (and it exists), else the final model."""
    state = wd.read_json(exp.outdir / wd.BEST_STATE, {})
    path = exp.outdir / wd.BEST_MODEL
    if exp.validation_ds is None or not path.is_file() or "val_accuracy" not in state:
        return Selected(exp.model, FINAL, None, None)
    import bidense  # noqa: F401  (registers bidense's layers for loading)

    model = tf.keras.models.load_model(path, compile=False)
    return Selected(model, BEST, state.get("epoch"), float(state["val_accuracy"]))


def test(exp: Experiment, model: tf.keras.Model) -> dict:
    """Loss, top-1 and top-5 of ``model`` on the test split, in float32."""
    model = precision.to_float32(model)
    inference = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    modeling.compile_model(inference, exp.info.num_classes)
    return inference.evaluate(
        exp.test_ds, steps=exp.eval_steps, verbose=0, return_dict=True
    )
