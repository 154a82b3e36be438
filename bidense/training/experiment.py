"""One training run: set up (config, data, model) and train (fit, save, summarise).

``setup`` does everything that can fail because of user input (config values,
dataset, model switches, work directory) before any training starts, so train.py
can turn those failures into one-line errors; ``train`` then runs ``Model.fit``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import ml_collections
import tensorflow as tf

import bidense
from bidense import data
from bidense.training import callbacks as cb
from bidense.training import config as config_lib
from bidense.training import precision, schedules, strategies
from bidense.training import workdir as wd

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass
class Experiment:
    config: ml_collections.ConfigDict
    workdir: Path
    outdir: Path  # == workdir on the chief; workdir/workers/<id> on other workers
    strategy: tf.distribute.Strategy
    info: data.DatasetInfo
    model: tf.keras.Model
    train_ds: tf.data.Dataset
    eval_ds: tf.data.Dataset
    steps_per_epoch: int
    eval_steps: int | None
    resumes: bool
    start_step: int = 0  # global step the training stream (and Keras) resume at


# Training keys and their types. Overrides keep the recipe's types, except that
# "none" sets any key to None (model switches may mean "builder decides"); these
# keys have no such meaning, and None would be a TypeError deep in Keras.
_TYPED_KEYS = {
    int: (
        "epochs", "batch_size", "validation_freq", "steps_per_epoch", "eval_steps",
        "checkpoint_every_steps", "seed", "verbose", "dataset.image_size",
        "dataset.crop_padding", "dataset.shuffle_buffer",
    ),
    float: (
        "optimizer.learning_rate", "optimizer.epsilon", "schedule.decay_factor",
        "schedule.warmup_epochs", "schedule.final_fraction",
    ),
    bool: ("jit_compile", "deterministic", "dataset.flip"),
    list: ("schedule.decay_epochs",),
}  # fmt: skip
_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
}


def _check_types(cfg: ml_collections.ConfigDict) -> None:
    for kind, keys in _TYPED_KEYS.items():
        for key in keys:
            node = cfg
            for part in key.split("."):
                node = node[part]
            if kind is bool or kind is list:
                ok = isinstance(node, bool if kind is bool else list | tuple)
            else:
                number = int | float if kind is float else int
                ok = isinstance(node, number) and not isinstance(node, bool)
            if not ok:
                raise config_lib.ConfigError(
                    f"config.{key} must be {_TYPE_NAMES[kind]}, got {node!r}"
                )


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Checks recipe values that Keras would only reject (obscurely) much later."""
    _check_types(cfg)
    for key in ("epochs", "batch_size", "validation_freq"):
        if cfg[key] < 1:
            raise config_lib.ConfigError(f"config.{key} must be >= 1, got {cfg[key]}")
    for key in ("steps_per_epoch", "eval_steps", "checkpoint_every_steps"):
        if cfg[key] < 0:
            raise config_lib.ConfigError(f"config.{key} must be >= 0, got {cfg[key]}")
    if cfg.optimizer.learning_rate <= 0:
        raise config_lib.ConfigError("config.optimizer.learning_rate must be > 0")
    if cfg.optimizer.name not in OPTIMIZERS:
        raise config_lib.ConfigError(
            f"config.optimizer.name must be one of {', '.join(OPTIMIZERS)}, "
            f"got {cfg.optimizer.name!r}"
        )
    if cfg.precision not in precision.PRECISIONS:
        raise config_lib.ConfigError(
            f"config.precision must be one of {', '.join(precision.PRECISIONS)}, "
            f"got {cfg.precision!r}"
        )
    if cfg.schedule.name not in ("step", "cosine", "constant"):
        raise config_lib.ConfigError(
            "config.schedule.name must be one of step, cosine, constant, "
            f"got {cfg.schedule.name!r}"
        )


def model_kwargs(cfg: ml_collections.ConfigDict) -> dict:
    """The model switches of the config, lists turned back into tuples."""
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config_lib.to_dict(cfg.model).items()
    }


def build_model(cfg, info: data.DatasetInfo, **extra) -> tf.keras.Model:
    """``bidense.create_model`` with the input shape and classes of the dataset.

    The layers compute in ``config.precision`` (float32 unless opted in).
    """
    with precision.dtype_policy(cfg.precision):
        return bidense.create_model(
            cfg.model_name,
            input_shape=data.model_input_shape(info, cfg.dataset),
            num_classes=info.num_classes,
            **{**model_kwargs(cfg), **extra},
        )


def ends_with_softmax(model: tf.keras.Model) -> bool:
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def compile_model(model, num_classes: int, optimizer=None, jit_compile=False) -> None:
    """Sparse cross-entropy, top-1 and top-5 accuracy, XLA if ``jit_compile``."""
    model.compile(
        optimizer=optimizer or "adam",
        loss=tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=not ends_with_softmax(model)
        ),
        metrics=[
            tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            tf.keras.metrics.SparseTopKCategoricalAccuracy(
                k=min(5, num_classes), name="top5"
            ),
        ],
        jit_compile=jit_compile,
    )


def make_optimizer(cfg, steps_per_epoch: int):
    schedule = schedules.make_schedule(
        cfg.schedule, cfg.optimizer.learning_rate, cfg.epochs, steps_per_epoch
    )
    if cfg.optimizer.name == "sgd":
        return tf.keras.optimizers.SGD(schedule, momentum=0.9)
    return tf.keras.optimizers.Adam(schedule, epsilon=cfg.optimizer.epsilon)


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
    # Multi-worker strategies must exist before any other TensorFlow op runs.
    dist = strategies.make_strategy(strategy, tpu_address)
    chief = strategies.is_chief(dist)
    workdir = Path(workdir)
    outdir = workdir
    if not chief:
        outdir = workdir / "workers" / str(dist.cluster_resolver.task_id)
        outdir.mkdir(parents=True, exist_ok=True)
    resolved = config_lib.to_dict(cfg)
    if not restart:
        # Refuse a foreign work dir now, before the slow data preparation...
        wd.check_or_init(workdir, resolved, restart, write=False)

    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        # Process-wide and irreversible: every op then picks a deterministic
        # kernel (or raises), and tf.data keeps element order.
        tf.config.experimental.enable_op_determinism()
    builder = data.prepare(cfg.dataset.name, data_dir, manual_dir)
    info = data.dataset_info(builder, cfg.dataset.train_split, cfg.dataset.eval_split)
    eval_ds = data.eval_dataset(builder, info, cfg.dataset, cfg.batch_size)
    train_examples = info.train_examples or data.count_examples(
        builder.as_dataset(split=cfg.dataset.train_split)
    )
    steps_per_epoch = cfg.steps_per_epoch or train_examples // cfg.batch_size
    if steps_per_epoch < 1:
        raise config_lib.ConfigError(
            f"config.batch_size={cfg.batch_size} exceeds the {train_examples} "
            f"training examples of {cfg.dataset.name}"
        )
    with dist.scope():
        model = build_model(cfg, info)
        compile_model(
            model,
            info.num_classes,
            make_optimizer(cfg, steps_per_epoch),
            jit_compile=cfg.jit_compile,
        )
    # ...but claim it only once everything has been validated: a config.json left
    # by a failed setup would make the corrected command need --restart.
    resumes = wd.check_or_init(workdir, resolved, restart, write=chief)
    # Keras restores model, optimizer and position but not the tf.data iterator:
    # the stream starts where Keras will resume (after --restart: at 0).
    start_step = cb.resume_step(
        workdir / wd.CHECKPOINTS,
        steps_per_epoch,
        cfg.checkpoint_every_steps,
        repair=chief,
    )
    train_ds = data.train_dataset(
        builder,
        info,
        cfg.dataset,
        cfg.batch_size,
        cfg.seed,
        num_examples=train_examples,
        start_step=start_step,
        deterministic=cfg.deterministic,
    )
    return Experiment(
        config=cfg,
        workdir=workdir,
        outdir=outdir,
        strategy=dist,
        info=info,
        model=model,
        train_ds=train_ds,
        eval_ds=eval_ds,
        steps_per_epoch=steps_per_epoch,
        eval_steps=cfg.eval_steps or None,
        resumes=resumes,
        start_step=start_step,
    )


def train(exp: Experiment, extra_callbacks=()) -> dict:
    """Trains (or resumes) to ``config.epochs``, saves the models, returns a summary.

    Raises callbacks.TrainingError when the loss stops being finite or no
    checkpoint is readable.

    ``extra_callbacks`` run after bidense's own (which restore the checkpoint first).
    """
    cfg = exp.config
    images_per_epoch = exp.steps_per_epoch * cfg.batch_size
    checkpoints = exp.workdir / wd.CHECKPOINTS
    callbacks = [
        # First, so a diverged step raises before Backup can save its weights.
        cb.StopOnNonFinite(exp.steps_per_epoch, checkpoints),
        cb.Backup(
            str(checkpoints),
            exp.steps_per_epoch,
            cfg.checkpoint_every_steps,
            repair=exp.outdir == exp.workdir,
        ),
        cb.Throughput(images_per_epoch),  # before the loggers, which record it
        cb.BestModel(exp.outdir / wd.BEST_MODEL, exp.outdir / wd.BEST_STATE),
        tf.keras.callbacks.CSVLogger(str(exp.outdir / wd.CSV_LOG), append=True),
        tf.keras.callbacks.TensorBoard(
            str(exp.outdir / wd.TENSORBOARD), update_freq="epoch", profile_batch=0
        ),
        *extra_callbacks,
    ]
    start = time.perf_counter()
    exp.model.fit(
        exp.train_ds,
        epochs=cfg.epochs,
        steps_per_epoch=exp.steps_per_epoch,
        validation_data=exp.eval_ds,
        validation_steps=exp.eval_steps,
        validation_freq=cfg.validation_freq,
        callbacks=callbacks,
        verbose=cfg.verbose,
    )
    session_seconds = time.perf_counter() - start
    final = exp.outdir / wd.FINAL_MODEL
    try:
        wd.save_model_atomic(exp.model, final)
    except OSError as error:  # disk full: the last checkpoint has it all
        raise cb.write_failed(final, error, checkpoints) from None

    metrics = exp.model.evaluate(
        exp.eval_ds, steps=exp.eval_steps, verbose=0, return_dict=True
    )
    summary = summarize(exp, metrics, session_seconds)
    try:
        wd.atomic_write_text(exp.outdir / wd.SUMMARY, json.dumps(summary, indent=2))
    except OSError as error:
        raise cb.write_failed(exp.outdir / wd.SUMMARY, error, checkpoints) from None
    return summary


def summarize(exp: Experiment, metrics: dict, session_seconds: float) -> dict:
    """Final metrics plus time and throughput over all epochs (across resumes)."""
    epochs = _read_csv(exp.outdir / wd.CSV_LOG)
    train_seconds = sum(float(row["train_seconds"]) for row in epochs)
    images = exp.steps_per_epoch * exp.config.batch_size * len(epochs)
    stats = bidense.model_stats(exp.model)
    return {
        "model": exp.config.model_name,
        "dataset": exp.config.dataset.name,
        "workdir": str(exp.workdir),
        # From the step counter, not log.csv: a kill between an epoch's last
        # checkpoint and its CSV row loses the row, not the epoch.
        # get_value: under a distribution strategy ``iterations`` is a
        # MirroredVariable, which int() does not take.
        "epochs": int(tf.keras.backend.get_value(exp.model.optimizer.iterations))
        // exp.steps_per_epoch,
        "top1": float(metrics["accuracy"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "params": int(exp.model.count_params()),
        "size_mib": float(stats["size_mib"]),
        "ops": float(stats["ops"]),
        "train_seconds": train_seconds,
        "session_seconds": session_seconds,
        "train_images_per_second": images / train_seconds if train_seconds else 0.0,
        "eval_examples": exp.info.eval_examples,
    }


def _read_csv(path: Path) -> list[dict]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("train_seconds")]
    # An epoch is logged twice when a run falls back to an older checkpoint and
    # repeats it; the later row is the one that counts.
    return list({row["epoch"]: row for row in rows}.values())


def summary_line(summary: dict) -> str:
    minutes, seconds = divmod(summary["train_seconds"], 60)
    return (
        f"{summary['model']} on {summary['dataset']}: top-1 {summary['top1']:.2%} "
        f"top-5 {summary['top5']:.2%} loss {summary['loss']:.4f} | "
        f"{summary['epochs']} epochs, {int(minutes)}m{seconds:04.1f}s training, "
        f"{summary['train_images_per_second']:.0f} images/s | "
        f"{summary['size_mib']:.3f} MiB | {summary['workdir']}"
    )
