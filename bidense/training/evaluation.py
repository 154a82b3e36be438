"""Evaluation of Keras models and LCE ``.tflite`` files on a dataset's test split.

Both paths see exactly the evaluation pipeline of training (same preprocessing
and normalisation), so a ``.tflite`` file's accuracy is directly comparable with
the Keras model it was converted from. The split is the run's test split (or its
validation split on request), chosen by the same rules as in training
(bidense.data.splits). Keras models are evaluated in float32, as train.py
tests them, whatever precision they were trained in.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import bidense

RESULT_COLUMNS = (
    "model",
    "dataset",
    "source",
    "format",
    "split",
    "top1",
    "top5",
    "loss",
    "examples",
    "params",
    "size_mib",
    "ops",
    "file_mib",
    "images_per_second",
    "seconds",
)


# What to do about a model file that does not load, by where it came from.
MODEL_PATH_HINT = (
    "give a model saved with model.save(): a .keras or .h5 file or a SavedModel "
    "directory"
)
WORKDIR_HINT = (
    "rerun the train.py command of this run: a finished run saves its models again"
)


def load_keras_model(path: str | Path, hint: str = MODEL_PATH_HINT) -> tf.keras.Model:
    """Loads a ``.keras``/``.h5`` file or a SavedModel dir saved by bidense.

    Any file that is not such a model (empty, truncated, weights only, foreign)
    is a one-line ValueError ending in ``hint``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"cannot load a Keras model from {path}: it is empty; {hint}")
    if path.suffix == ".tflite":
        raise ValueError(f"{path} is a TFLite flatbuffer: evaluate it with --tflite")
    try:
        return tf.keras.models.load_model(path, compile=False)
    # h5py (OSError), zipfile (BadZipFile), json, Keras (ValueError, KeyError,
    # TypeError): a foreign or damaged file can fail in any of them.
    except Exception as error:
        text = str(error).strip().splitlines()
        reason = (
            f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
        )
        if "No model config found" in reason:  # a save_weights() file
            reason, hint = (
                "it holds weights only",
                "evaluate it with --model NAME --weights FILE",
            )
        raise ValueError(
            f"cannot load a Keras model from {path} ({reason}); {hint}"
        ) from None


CHECKPOINTS = ("selected", "best", "final")


def workdir_model(workdir: str | Path, checkpoint: str = "selected") -> Path:
    """A model file of a train.py work dir, which must exist.

    "selected" is the model train.py reported: ``best.keras`` (chosen on the
    validation split) when the run has one, else ``final.keras``.
    """
    from bidense.training import workdir as wd

    if checkpoint == "selected":
        best = Path(workdir) / wd.BEST_MODEL
        checkpoint = "best" if best.is_file() else "final"
    name = {"final": wd.FINAL_MODEL, "best": wd.BEST_MODEL}[checkpoint]
    if not Path(workdir).is_dir():
        raise FileNotFoundError(f"no {name} in --workdir {workdir} (no such directory)")
    if not (Path(workdir) / name).is_file():
        raise FileNotFoundError(
            f"no {name} in --workdir {workdir} (has train.py finished?)"
        )
    return Path(workdir) / name


def evaluate_keras(model, dataset, num_classes: int, steps=None, jit_compile=False):
    """Top-1, top-5, loss and images/s of ``model`` (in float32) on ``dataset``."""
    from bidense.training.modeling import compile_model
    from bidense.training.precision import to_float32

    model = to_float32(model)
    compile_model(model, num_classes, jit_compile=jit_compile)
    # One warm-up batch so graph tracing does not count against throughput.
    model.evaluate(dataset.take(1), verbose=0)
    start = time.perf_counter()
    metrics = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    seconds = time.perf_counter() - start
    examples = _count(dataset, steps)
    return {
        "top1": float(metrics["accuracy"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "examples": examples,
        "seconds": seconds,
        "images_per_second": examples / seconds,
    }


def _count(dataset, steps) -> int:
    ds = dataset.take(steps) if steps else dataset
    return int(sum(int(tf.shape(x)[0]) for x, _ in ds))


def load_tflite(path: str | Path, num_threads: int = 1):
    """LCE's interpreter (runs Lce* ops; x86 uses slow reference kernels) for a file.

    A file that is not a complete TFLite model is a one-line ValueError: it is
    checked in Python first (export.flatbuffer.check_flatbuffer), because
    TFLite's loader crashes the process on a truncated file.
    """
    import larq_compute_engine as lce

    from bidense.export.flatbuffer import FlatbufferError, check_flatbuffer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .tflite file at {path}")
    flatbuffer = path.read_bytes()
    hint = "export the model again with export.py (or copy the file again)"
    try:
        check_flatbuffer(flatbuffer)
    except FlatbufferError as error:
        if flatbuffer.startswith((b"PK\x03\x04", b"\x89HDF")):  # zip (.keras), HDF5
            hint = "it looks like a Keras model: evaluate that with --model_path"
        raise ValueError(f"--tflite {path}: {error}; {hint}") from None
    try:
        # ``testing`` is an attribute of the package (the tflite interpreter
        # module), not an importable submodule.
        return lce.testing.Interpreter(flatbuffer, num_threads=num_threads)
    except RuntimeError as error:  # TFLite refused the model
        text = str(error).strip().splitlines()
        raise ValueError(
            f"LCE's interpreter cannot run --tflite {path} "
            f"({text[0] if text else 'RuntimeError'}); {hint}"
        ) from None


def evaluate_tflite(
    path: str | Path, dataset, max_examples: int = 0, num_threads=1, interpreter=None
):
    """Top-1, top-5, loss and images/s of a ``.tflite`` file (one image at a time).

    ``interpreter``: the file's, if already loaded (:func:`load_tflite`).
    """
    from bidense.export.parity import predict_float

    path = Path(path)
    interpreter = interpreter or load_tflite(path, num_threads)
    expected = tuple(interpreter.input_shapes[0][1:])
    correct1 = correct5 = 0
    nll, examples, seconds = 0.0, 0, 0.0
    for images, labels in dataset:
        images, labels = images.numpy(), labels.numpy()
        if max_examples:
            images, labels = (
                images[: max_examples - examples],
                labels[: max_examples - examples],
            )
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"{path} expects inputs of shape {expected}, the dataset gives "
                f"{tuple(images.shape[1:])}; pass the dataset/config it was trained on"
            )
        start = time.perf_counter()
        # predict_float: int8-I/O files (export.py --int8_io) take float images too.
        probs = np.asarray(predict_float(interpreter, images), dtype=np.float64)
        seconds += time.perf_counter() - start
        probs = probs.reshape(len(labels), -1)
        if interpreter.output_types[0] == np.int8:  # a softmax in steps of 1/256
            probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        elif not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):  # logits
            probs = np.exp(probs - probs.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
        top5 = np.argsort(-probs, axis=1)[:, :5]
        correct1 += int((top5[:, 0] == labels).sum())
        correct5 += int((top5 == labels[:, None]).any(axis=1).sum())
        nll -= float(
            np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)).sum()
        )
        examples += len(labels)
        if max_examples and examples >= max_examples:
            break
    return {
        "top1": correct1 / examples,
        "top5": correct5 / examples,
        "loss": nll / examples,
        "examples": examples,
        "seconds": seconds,
        "images_per_second": examples / seconds if seconds else 0.0,
        "file_mib": path.stat().st_size / 2**20,
    }


def model_columns(model) -> dict:
    """``params``, ``size_mib`` and ``ops`` of a Keras model (bidense.model_stats)."""
    stats = bidense.model_stats(model)
    return {
        "params": int(model.count_params()),
        "size_mib": float(stats["size_mib"]),
        "ops": float(stats["ops"]),
    }


def write_results(row: dict, json_path=None, csv_path=None) -> None:
    """Writes the row as JSON and appends it to a CSV file (header once)."""
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(row, indent=2) + "\n")
    if csv_path:
        csv_path = Path(csv_path)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({key: row.get(key, "") for key in RESULT_COLUMNS})


def result_line(row: dict) -> str:
    return (
        f"{row['model']} on {row['dataset']} {row['split']} ({row['format']}): "
        f"top-1 {row['top1']:.2%} top-5 {row['top5']:.2%} loss {row['loss']:.4f} "
        f"on {row['examples']} images, {row['images_per_second']:.0f} images/s"
    )


def _limit(dataset, examples: int, batch_size: int):
    if not examples:
        return dataset
    return dataset.unbatch().take(examples).batch(batch_size)


def read_run_config(path: Path, hint: str):
    """A work dir's resolved ``config.json``; ValueError (ending in ``hint``) if it
    is not train.py's."""
    import ml_collections

    from bidense.training import recipes
    from bidense.training import workdir as wd

    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not valid JSON ({reason}); {hint}") from None
    if isinstance(raw, dict):  # a run from before a key existed still evaluates
        raw = wd.with_added_keys(raw)
    dataset = raw.get("dataset") if isinstance(raw, dict) else None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise ValueError(f"{path} is not a train.py config (no dataset.name); {hint}")
    from bidense.training import workdir as wd

    raw = wd.with_added_keys(raw)  # a run from before a key existed
    dataset = raw["dataset"]
    # Evaluation reads the batch size and every input setting of the run.
    expected = recipes.dataset_config(dataset["name"])
    missing = [k for k in ("model_name", "batch_size", "eval_steps") if k not in raw]
    missing += [f"dataset.{key}" for key in expected.dataset if key not in dataset]
    if missing:
        raise ValueError(
            f"{path} is not a complete train.py config (no {', '.join(missing)}); "
            f"{hint}"
        )
    for key in ("batch_size", "eval_steps"):
        if not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 0:
            raise ValueError(f"{path}: {key} must be an integer, got {raw[key]!r}")
    return ml_collections.ConfigDict(raw)


def _find_config(workdir, model_path, tflite):
    """The resolved training config that belongs to what is evaluated, if any."""
    from bidense.training import workdir as wd

    if workdir:
        path = Path(workdir) / wd.CONFIG
        if not path.is_file():
            raise FileNotFoundError(
                f"no bidense run in --workdir {workdir} ({path} missing)"
            )
        hint = (
            "train.py writes it; restore it, or delete it and evaluate the model "
            "with --model_path and --dataset"
        )
        return read_run_config(path, hint), Path(workdir)
    for artifact in (model_path, tflite):
        if artifact and (Path(artifact).parent / wd.CONFIG).is_file():
            parent = Path(artifact).parent
            hint = (
                "a model beside a config.json is taken for a train.py run's: restore "
                "that file, or move the model to another directory and pass --dataset"
            )
            return read_run_config(parent / wd.CONFIG, hint), parent
    return None, None


def run(
    *,
    config_dir,
    workdir=None,
    checkpoint="selected",
    split="test",
    model_path=None,
    model_name=None,
    weights=None,
    tflite=None,
    dataset=None,
    overrides=(),
    data_dir=None,
    manual_dir=None,
    batch_size=0,
    max_examples=0,
    num_threads=1,
    output_json=None,
    results_csv=None,
) -> dict:
    """Evaluates a work dir, a saved model, a registry model + weights or a .tflite.

    Returns the results row; writes it as JSON and appends it to a CSV file
    (defaults: ``eval_<kind>.json`` and ``results.csv`` in the run's directory).
    """
    from bidense import data
    from bidense.training import config as config_lib
    from bidense.training import finetune, modeling, recipes
    from bidense.training import workdir as wd

    sources = [s for s in (workdir, model_path, model_name) if s]
    if len(sources) > 1 or not (sources or tflite):
        raise ValueError(
            "evaluate one thing: --workdir, --model_path, --model (with --weights) "
            "or --tflite"
        )
    if model_name and not weights:
        raise ValueError("--model needs --weights (a weights file, or 'imagenet')")
    if checkpoint not in CHECKPOINTS:
        raise ValueError(
            f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}"
        )
    if split not in ("test", "validation"):
        raise ValueError(f"--split must be test or validation, got {split!r}")
    cfg, rundir = _find_config(workdir, model_path, tflite)
    # A folder is recorded by its absolute path; --dataset may be relative.
    if cfg is not None and dataset and data.canonical_name(dataset) != cfg.dataset.name:
        raise ValueError(
            f"--dataset {dataset} differs from the run's dataset {cfg.dataset.name}"
        )
    if cfg is None:
        if not dataset:
            raise ValueError("--dataset is needed (no config.json next to the model)")
        if model_name:
            cfg = config_lib.load_recipe(config_dir, model_name, dataset)
        else:
            cfg = recipes.dataset_config(dataset)
    config_lib.apply_overrides(cfg, list(overrides))
    if model_name and weights:
        if weights not in ("imagenet", "fashion_mnist") and not Path(weights).exists():
            raise FileNotFoundError(f"no weights file at {weights}")
        # Named weights (and work dirs) know their switches: those not given
        # on the command line follow them, as in train.py.
        finetune.adopt_switches(cfg, {k for k, _ in overrides}, weights=weights)
    batch_size = batch_size or cfg.batch_size
    limit = max_examples or (cfg.eval_steps * batch_size if cfg.eval_steps else 0)

    # Load what is evaluated before touching the data, so a wrong path fails fast.
    keras_model = interpreter = None
    if tflite:
        interpreter = load_tflite(tflite, num_threads)
        if rundir and (rundir / wd.FINAL_MODEL).is_file():
            # For its stats (params, size, ops).
            keras_model = load_keras_model(rundir / wd.FINAL_MODEL, hint=WORKDIR_HINT)
    elif workdir:
        path = workdir_model(workdir, checkpoint)
        checkpoint = path.stem  # "selected" resolved: best or final
        keras_model = load_keras_model(path, hint=WORKDIR_HINT)
    elif model_path:
        keras_model = load_keras_model(model_path)

    builder = data.prepare(cfg.dataset.name, data_dir, manual_dir)
    info = data.dataset_info(builder, cfg.dataset)
    if rundir is not None:  # the classes the model was trained on (labels.txt)
        data.check_labels(rundir, info.class_names, cfg.dataset.name)
    split_name = getattr(info.splits, split)
    if split_name is None:
        raise ValueError(
            "this run has no validation split (config.dataset.validation_examples "
            "was 0); evaluate --split test"
        )
    eval_ds = _limit(
        data.eval_dataset(builder, split_name, info, cfg.dataset, batch_size),
        limit,
        batch_size,
    )
    if model_name:
        # Built in float32 straight away: evaluate_keras computes in float32,
        # whatever precision the recipe trains in.
        cfg.precision = "float32"
        keras_model = modeling.build_model(cfg, info, weights=weights)

    if tflite:
        metrics = evaluate_tflite(tflite, eval_ds, interpreter=interpreter)
        kind, source = "tflite", str(tflite)
    else:
        metrics = evaluate_keras(keras_model, eval_ds, info.num_classes)
        kind = "keras"
        source = str(workdir or model_path or f"{model_name}:{weights}")
    row = {
        "model": keras_model.name if keras_model is not None else cfg.model_name,
        "dataset": cfg.dataset.name,
        "source": source,
        "format": kind,
        "split": split_name,
        **metrics,
        **(model_columns(keras_model) if keras_model is not None else {}),
    }
    if rundir is not None:
        suffix = "tflite" if tflite else (checkpoint if workdir else Path(source).stem)
        output_json = output_json or rundir / f"eval_{suffix}.json"
        results_csv = results_csv or rundir / "results.csv"
    write_results(row, output_json, results_csv)
    return row
