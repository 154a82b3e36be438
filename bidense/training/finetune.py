"""Fine-tuning in train.py: pretrained weights into the recipe's model, and the
warm-up with the backbone frozen.

``--config.model.weights=`` names the weights (``imagenet``, ``fashion_mnist``,
a train.py work dir or a file). The model is built for the dataset (its input
size and classes), then the weights load by layer name and shape
(:mod:`bidense.transfer`): a new classifier where the classes differ, a stem
adapted to the input, and one line on stderr saying which layers are new.

Switches. The recipe's model switches are choices for training from scratch
(narrow widths for a laptop); the weights were trained with their own. The
backbone switches that the command line does not set are therefore taken from
the weights where they are known (:func:`adopt_switches`, said on stderr); a
switch set on the command line that differs is a one-line error naming it.

Warm-up (``config.finetune.freeze_epochs=N``). For the first N epochs only the
layers that did not come from the weights train: the classifier and any layer
freshly initialised for the new input. Every pretrained layer is frozen
(``trainable=False``), BatchNormalization included: a frozen Keras
BatchNormalization layer runs in inference mode, normalising with its
pretrained statistics and leaving them unchanged, as Keras's transfer-learning
guide recommends, so that a small new dataset and a random head do not destroy
them. From epoch N on everything trains, BatchNormalization in training mode:
its statistics then adapt to the new data at the BN momentum (0.9), which a
binary network needs, since the BN in front of each sign decides where the sign
flips. ``config.finetune.freeze_bn=true`` keeps the pretrained BN layers frozen
(inference mode, statistics and scale fixed) for the whole run instead.

The switch from the warm-up to full training happens inside one ``fit``: the
train step is traced anew with the new set of trainable variables, the optimizer
is the same object (its moments and iteration count carry on, so the learning
rate schedule, a function of the iteration count, continues). The optimizer's
slots are built for every variable before the warm-up, so checkpoints have the
same variables in both phases and a run killed during or after the warm-up
resumes in the right phase (from the epoch Keras restores).
"""

from __future__ import annotations

import sys

import ml_collections
import tensorflow as tf

from bidense import transfer
from bidense.training import config as config_lib


def validate(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigErrors for the ``finetune`` group (types are checked before)."""
    ft, weights = cfg.finetune, cfg.model.get("weights")
    if ft.freeze_epochs < 0:
        raise config_lib.ConfigError(
            f"config.finetune.freeze_epochs must be >= 0, got {ft.freeze_epochs}"
        )
    if ft.freeze_epochs > cfg.epochs:
        raise config_lib.ConfigError(
            f"config.finetune.freeze_epochs={ft.freeze_epochs} exceeds "
            f"config.epochs={cfg.epochs}"
        )
    if ft.learning_rate < 0:
        raise config_lib.ConfigError(
            f"config.finetune.learning_rate must be >= 0 (0: the recipe's default), "
            f"got {ft.learning_rate}"
        )
    for key in ("freeze_epochs", "reset_head", "freeze_bn"):
        if ft[key] and not weights:
            raise config_lib.ConfigError(
                f"config.finetune.{key} needs config.model.weights (the pretrained "
                "weights to fine-tune)"
            )


def adopt_switches(cfg: ml_collections.ConfigDict, given, weights=None) -> list[str]:
    """Sets the backbone switches the command line leaves open to the weights'.

    ``given``: the config keys set on the command line (``"model.filters"``);
    ``weights``: the weights (default ``config.model.weights``). Switches whose
    value the weights do not record are left alone, as are all switches of
    weights whose training configuration is unknown (a weights file). Returns
    the ``switch=value`` pairs changed, which it also says on stderr.
    """
    weights = weights or cfg.model.get("weights")
    if not weights:
        return []
    source = transfer.describe(weights, cfg.model_name)
    if source.switches is None or source.model_name not in (None, cfg.model_name):
        return []  # unknown, or another model: load_pretrained says so
    try:
        theirs = transfer.normalized_switches(cfg.model_name, source.switches)
        ours = transfer.normalized_switches(
            cfg.model_name, config_lib.to_dict(cfg.model)
        )
    except (ValueError, TypeError):
        return []  # a bad value: the build names it
    keys = (*transfer.backbone_switches(cfg.model_name, theirs), "pad_value")
    taken = []
    for key in keys:
        if f"model.{key}" in given or key not in cfg.model:
            continue
        if theirs[key] is None or theirs[key] == ours[key]:
            continue
        value = theirs[key]
        cfg.model[key] = list(value) if isinstance(value, tuple) else value
        taken.append(f"{key}={value!r}")
    if taken:
        print(
            f"fine-tuning from {source.name}: {', '.join(taken)} (the weights' "
            "values; set a switch with --config.model.KEY to choose it)",
            file=sys.stderr,
        )
    return taken


class FreezeBackbone(tf.keras.callbacks.Callback):
    """Freezes the pretrained layers for the first ``freeze_epochs`` epochs.

    ``network``: the model being fine-tuned (the student inside a distillation
    wrapper); ``pretrained``: the names of its layers that came from the
    weights (:attr:`bidense.transfer.Report.pretrained`); ``freeze_bn``: keep
    the pretrained BatchNormalization layers frozen after the warm-up too.
    """

    def __init__(self, network, pretrained, freeze_epochs: int, freeze_bn=False):
        super().__init__()
        pretrained = set(pretrained) - {transfer.HEAD}  # the head always trains
        self.warmup_frozen = [
            layer
            for layer in network.layers
            if layer.weights and layer.name in pretrained
        ]
        self.always_frozen = [
            layer
            for layer in self.warmup_frozen
            if freeze_bn and isinstance(layer, tf.keras.layers.BatchNormalization)
        ]
        self.freeze_epochs = freeze_epochs
        self._traced_for = None  # the warm-up state the train function was made for

    def _set(self, warmup: bool) -> None:
        for layer in self.warmup_frozen:
            layer.trainable = not warmup
        for layer in self.always_frozen:
            layer.trainable = False

    def _all_trainable(self) -> None:
        for layer in self.warmup_frozen:
            layer.trainable = True

    def on_epoch_begin(self, epoch, logs=None):
        warmup = epoch < self.freeze_epochs
        self._set(warmup)
        if self._traced_for != warmup:
            # Keras traces the train step once per fit, with the trainable
            # variables of that moment; fit calls model.train_function at every
            # step, so a new one trains the new set from this epoch on.
            self.model.make_train_function(force=True)
            self._traced_for = warmup

    def on_epoch_end(self, epoch, logs=None):
        # A saved model records each layer's trainable flag: best.keras and
        # final.keras must load as ordinary, trainable models. The train
        # function keeps the set it was traced with; on_epoch_begin sets the
        # flags back before the next step.
        self._all_trainable()

    def on_train_end(self, logs=None):
        self._all_trainable()


def callback(exp) -> FreezeBackbone | None:
    """The warm-up callback of an experiment, if its config asks for one."""
    ft = exp.config.finetune
    if exp.transfer is None or not (ft.freeze_epochs or ft.freeze_bn):
        return None
    return FreezeBackbone(
        exp.model, exp.transfer.pretrained, ft.freeze_epochs, freeze_bn=ft.freeze_bn
    )
