"""One training run: set up (config, data, model, work dir), then train.

``setup`` does everything that can fail because of user input (config values,
dataset, model switches, work directory) before any training starts, so train.py
can turn those failures into one-line errors. The training loop is in
:mod:`bidense.training.loop`, the summaries in :mod:`bidense.training.summary`,
the model and optimizer in :mod:`bidense.training.modeling`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ml_collections
import tensorflow as tf

from bidense import data
from bidense.training import checkpoints, distill, modeling, precision, strategies
from bidense.training import config as config_lib
from bidense.training import workdir as wd
from bidense.training.config_checks import validate
from bidense.training.modeling import compile_model, make_optimizer


@dataclasses.dataclass
class Experiment:
    """Everything a training run needs, built and checked by :func:`setup`."""

    config: ml_collections.ConfigDict
    workdir: Path
    outdir: Path  # == workdir on the chief; workdir/workers/<id> on other workers
    strategy: tf.distribute.Strategy
    info: data.DatasetInfo
    model: tf.keras.Model  # the network trained, saved and reported
    fit_model: tf.keras.Model  # what fit runs: model, or a Distiller around it
    train_ds: tf.data.Dataset
    validation_ds: tf.data.Dataset | None  # selects best.keras; None: no selection
    test_ds: tf.data.Dataset  # evaluated once, on the selected model
    steps_per_epoch: int
    eval_steps: int | None
    resumes: bool
    start_step: int = 0  # global step the training stream (and Keras) resume at
    # What config.model.weights loaded (bidense.transfer.Report); None: from scratch.
    transfer: object | None = None

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the work dir's shared files (checkpoints)."""
        return self.outdir == self.workdir


@dataclasses.dataclass
class _Data:
    """The dataset of a run, short of the training stream (it needs the resume step)."""

    builder: object  # tfds.core.DatasetBuilder
    info: data.DatasetInfo
    validation_ds: tf.data.Dataset | None
    test_ds: tf.data.Dataset
    train_examples: int
    steps_per_epoch: int


def setup(
    cfg: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    strategy: str = "default",
    tpu_address: str = "",
    data_dir: str | None = None,
    manual_dir: str | None = None,
    restart: bool = False,
) -> Experiment:
    """Validates everything and builds the data and the compiled model."""
    validate(cfg)
    cfg = _resolve_precision(cfg)
    # Multi-worker strategies must exist before any other TensorFlow op runs.
    dist = strategies.make_strategy(strategy, tpu_address)
    chief = strategies.is_chief(dist)
    workdir = Path(workdir)
    outdir = _output_dir(workdir, dist, chief)
    resolved = config_lib.to_dict(cfg)
    if not restart:
        # Refuse a foreign work dir now, before the slow data preparation...
        wd.check_or_init(workdir, resolved, restart, write=False)

    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        # Process-wide and irreversible: every op then picks a deterministic
        # kernel (or raises), and tf.data keeps element order.
        tf.config.experimental.enable_op_determinism()
    source = _prepare_data(cfg, data_dir, manual_dir)
    if not restart:  # a folder's classes may have changed since the run began
        data.check_labels(workdir, source.info.class_names, cfg.dataset.name)
    with dist.scope():
        model, fit_model, transfer = _compiled_model(
            cfg, source.info, source.steps_per_epoch
        )
    # ...but claim it only once everything has been validated: a config.json left
    # by a failed setup would make the corrected command need --restart.
    resumes = wd.check_or_init(workdir, resolved, restart, write=chief)
    if chief:
        data.write_labels(workdir, source.info.class_names)
    # Keras restores model, optimizer and position but not the tf.data iterator:
    # the stream starts where Keras will resume (after --restart: at 0).
    start_step = checkpoints.resume_step(
        workdir / wd.CHECKPOINTS,
        source.steps_per_epoch,
        cfg.checkpoint_every_steps,
        repair=chief,
    )
    train_ds = data.train_dataset(
        source.builder,
        source.info,
        cfg.dataset,
        cfg.batch_size,
        cfg.seed,
        num_examples=source.train_examples,
        start_step=start_step,
        deterministic=cfg.deterministic,
    )
    return Experiment(
        config=cfg,
        workdir=workdir,
        outdir=outdir,
        strategy=dist,
        info=source.info,
        model=model,
        fit_model=fit_model,
        train_ds=train_ds,
        validation_ds=source.validation_ds,
        test_ds=source.test_ds,
        steps_per_epoch=source.steps_per_epoch,
        eval_steps=cfg.eval_steps or None,
        resumes=resumes,
        start_step=start_step,
        transfer=transfer,
    )


def _resolve_precision(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``precision="auto"`` made concrete for this machine, in a copy.

    config.json records what the run computes in, so results rows and
    evaluate.py read the real precision, and a resume of the run on a CPU that
    would resolve "auto" otherwise is refused as a config change (naming
    ``precision``) instead of silently mixing precisions in one run.
    """
    if cfg.precision != precision.AUTO:
        return cfg
    resolved = cfg.copy_and_resolve_references()
    with resolved.unlocked():
        resolved.precision = precision.resolve(cfg.precision)
    return resolved


def _output_dir(workdir: Path, dist: tf.distribute.Strategy, chief: bool) -> Path:
    """The work dir on the chief; a private subdirectory on the other workers."""
    if chief:
        return workdir
    outdir = workdir / "workers" / str(dist.cluster_resolver.task_id)
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


def _prepare_data(cfg, data_dir, manual_dir) -> _Data:
    """Prepares the dataset, chooses its splits, builds the evaluation streams.

    ``cfg.dataset.name`` is a TFDS name or an image folder (bidense.data.folders):
    both give a builder and a DatasetInfo, and everything after is the same.
    """
    builder = data.prepare(cfg.dataset.name, data_dir, manual_dir)
    info = data.dataset_info(builder, cfg.dataset)
    validation_ds = None
    if info.splits.validation:
        validation_ds = data.eval_dataset(
            builder, info.splits.validation, info, cfg.dataset, cfg.batch_size
        )
    test_ds = data.eval_dataset(
        builder, info.splits.test, info, cfg.dataset, cfg.batch_size
    )
    train_examples = info.train_examples or data.count_examples(
        builder.as_dataset(split=info.splits.train)
    )
    steps_per_epoch = cfg.steps_per_epoch or train_examples // cfg.batch_size
    if steps_per_epoch < 1:
        raise config_lib.ConfigError(
            f"config.batch_size={cfg.batch_size} exceeds the {train_examples} "
            f"training examples of {cfg.dataset.name} ({info.splits.train})"
        )
    return _Data(builder, info, validation_ds, test_ds, train_examples, steps_per_epoch)


def _compiled_model(cfg, info: data.DatasetInfo, steps_per_epoch: int):
    """The recipe's model, the model ``fit`` trains (in the strategy's scope) and
    what ``config.model.weights`` loaded into it (None: trained from scratch).

    With ``config.distill.teacher`` the model fit runs is a Distiller around the
    recipe's model, which stays the network that is saved and reported.
    """
    model, transfer = modeling.build_training_model(cfg, info)
    optimizer = make_optimizer(cfg, steps_per_epoch)
    # The slots of every trainable variable, made now rather than in fit's first
    # step, for two reasons. A tf.function that creates variables on its first
    # call is traced a second time, so building them here saves one trace of
    # the whole train step (seconds at start-up). And Keras 2.15's optimizers
    # make their slots once, for the variables of the first step: a fine-tuning
    # warm-up's first step trains only the head (bidense.training.finetune).
    optimizer.build(model.trainable_variables)
    if not cfg.distill.teacher:
        compile_model(
            model,
            info.num_classes,
            optimizer,
            jit_compile=cfg.jit_compile,
            label_smoothing=cfg.loss.label_smoothing,
        )
        return model, model, transfer
    teacher = distill.load_teacher(
        cfg.distill.teacher, model.input_shape[1:], info.num_classes
    )
    fit_model = distill.Distiller(
        model, teacher, alpha=cfg.distill.alpha, temperature=cfg.distill.temperature
    )
    fit_model.compile(
        optimizer,
        metrics=modeling.accuracy_metrics(info.num_classes),
        jit_compile=cfg.jit_compile,
    )
    return model, fit_model, transfer
