"""Experiment configuration: recipes from ``configs/``, command-line overrides, JSON.

A recipe is a Python file ``configs/<model>.py`` with ``get_config(arg)`` returning a
locked :class:`ml_collections.ConfigDict` (the big_vision convention); ``arg`` names the
dataset. Overrides come from the command line as ``--config.a.b=value`` (split off by
the entry points' ``cli.split_overrides``) and are validated against the recipe: an
unknown key or a value of the wrong type is a :class:`ConfigError` with a one-line
message, never silently ignored.
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import ml_collections

# Builder arguments that the data pipeline decides (input size, classes) or that
# only make sense outside training (weights), so they are not recipe switches.
_NON_SWITCH_ARGS = ("input_shape", "input_tensor", "include_top", "num_classes")


class ConfigError(ValueError):
    """A recipe, an override or a work directory does not fit; one-line message."""


def model_switches(model_name: str) -> dict[str, Any]:
    """Every architecture switch of ``model_name`` with its default.

    Every switch thus becomes overridable as ``--config.model.<switch>``, with its
    default recorded in the resolved config (None = the builder decides, e.g.
    ``stem`` from the input size). Tuples become lists, as ConfigDict stores them.
    """
    from bidense import registry

    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in registry.model_switches(model_name).items()
        if key not in _NON_SWITCH_ARGS
    }


def base_config(model_name: str | None, dataset: str) -> ml_collections.ConfigDict:
    """The defaults every recipe starts from (unlocked; the recipe locks it).

    ``model_name=None`` gives a dataset-only config (no model switches).
    """
    cfg = ml_collections.ConfigDict()
    cfg.model_name = model_name or ""
    # Every model switch, defaults from the builder (None = builder decides).
    cfg.model = ml_collections.ConfigDict(
        model_switches(model_name) if model_name else {}
    )
    # Weights to fine-tune from (bidense.training.finetune): None (from scratch),
    # "imagenet" (larq-zoo's), "fashion_mnist" (bidense's), a train.py work dir
    # or a weights file (.h5, .keras, compact .npz).
    cfg.model.weights = None

    cfg.dataset = ml_collections.ConfigDict()
    # A TFDS name, or a folder of class folders (./photos; absolute in config.json).
    cfg.dataset.name = dataset
    # Model selection never sees the test split (bidense.data.splits): "auto"
    # carves the last validation_examples training images out as the validation
    # split of datasets that have none (Fashion-MNIST, CIFAR-10); 0 turns it off.
    cfg.dataset.train_split = "train"
    cfg.dataset.validation_split = "auto"
    cfg.dataset.validation_examples = 5000
    cfg.dataset.test_split = "auto"
    # Image folders without a validation/ or test/ folder: the fraction of the
    # training images carved out for it, chosen by a hash of each file's path
    # (bidense.data.folders; validation_examples is for TFDS datasets).
    cfg.dataset.validation_fraction = 0.1
    cfg.dataset.test_fraction = 0.1
    # "auto" picks "imagenet" for large/variable-size images, else "pad_crop".
    cfg.dataset.preprocessing = "auto"
    # 0 = native size (small images; a folder's most common size) or 224 (large).
    cfg.dataset.image_size = 0
    # 0 = the images' own (a folder: 1 if every image is grey, else 3); 1 or 3
    # converts (grey <-> RGB) as images are read. The model's input follows.
    cfg.dataset.channels = 0
    cfg.dataset.crop_padding = 4  # pad-and-crop augmentation, pixels per side
    cfg.dataset.flip = True  # horizontal flips; wrong for digits (mnist)
    cfg.dataset.cache = "auto"  # "auto" caches decoded images if they fit
    cfg.dataset.shuffle_buffer = 10_000
    # A subset (bidense.data.subset), e.g. for transfer experiments: the label
    # indices to keep, relabelled 0..k-1 in the order given ([] = every class),
    # and the first N training examples after that filter (0 = all of them).
    cfg.dataset.classes = []
    cfg.dataset.train_examples = 0

    cfg.epochs = 1
    cfg.batch_size = 128
    cfg.steps_per_epoch = 0  # 0 = one pass over the training split
    cfg.eval_steps = 0  # 0 = the whole validation and test splits
    cfg.validation_freq = 1  # validate every N epochs (best model is chosen then)

    cfg.optimizer = ml_collections.ConfigDict()
    cfg.optimizer.name = "adam"
    cfg.optimizer.learning_rate = 1e-3
    cfg.optimizer.epsilon = 1e-8  # larq-zoo's Adam epsilon (Keras default is 1e-7)

    cfg.loss = ml_collections.ConfigDict()
    cfg.loss.label_smoothing = 0.0

    # Knowledge distillation (bidense.training.distill): a train.py work dir or a
    # .keras file; "" trains on the labels alone.
    cfg.distill = ml_collections.ConfigDict()
    cfg.distill.teacher = ""
    cfg.distill.alpha = 0.9
    cfg.distill.temperature = 4.0

    # Fine-tuning from config.model.weights (bidense.training.finetune).
    cfg.finetune = ml_collections.ConfigDict()
    # Peak learning rate with weights; 0 = optimizer.learning_rate for a binary
    # model, x 0.1 for the full-precision twin (bidense.training.recipes: why).
    cfg.finetune.learning_rate = 0.0
    # Warm-up epochs that train only the new layers (the head, a re-initialised
    # stem), every pretrained layer frozen: BatchNormalization in inference mode,
    # its statistics unchanged. Then everything trains.
    cfg.finetune.freeze_epochs = 0
    # A new, freshly initialised classifier even when the weights' has the same
    # number of classes (other classes than the weights were trained on).
    cfg.finetune.reset_head = False
    # Keep the pretrained BatchNormalization layers frozen (inference mode) for
    # the whole run, not only the warm-up.
    cfg.finetune.freeze_bn = False

    cfg.schedule = ml_collections.ConfigDict()
    cfg.schedule.name = "step"  # "step", "cosine" or "constant"
    cfg.schedule.decay_epochs = [0]  # step: epochs at which lr is multiplied
    cfg.schedule.decay_factor = 0.1
    cfg.schedule.warmup_epochs = 0.0  # linear warm-up (step and cosine)
    cfg.schedule.final_fraction = 0.0  # cosine: final lr as fraction of the peak

    # XLA compiles the train step. It keeps larq's numerics (tests/test_train.py)
    # but XLA:CPU's convolutions are 2-4x *slower* than TF's oneDNN kernels for
    # ResNetE18 and BinaryDenseNet28 (docs/performance.md), so it is opt-in.
    cfg.jit_compile = False
    # "auto": mixed bfloat16 (bfloat16 compute, float32 variables) where the CPU
    # computes bfloat16 natively (AVX512_BF16 or AMX), float32 elsewhere. The
    # converged headline recipe reached the same test top-1 in both over two
    # seeds (configs/studies/fmnist_precision.py) and bfloat16 trains faster
    # there; "float32" and "mixed_bfloat16" force one
    # (bidense/training/precision.py, docs/performance.md).
    cfg.precision = "auto"
    cfg.seed = 0
    # Bit-identical reruns and resumes: seeds, TF op determinism, an input stream
    # in a fixed order (train.py --deterministic; docs/reliability.md, its cost).
    cfg.deterministic = False
    cfg.checkpoint_every_steps = 0  # 0 = only at the end of every epoch
    cfg.verbose = 1  # 0 silent, 1 progress bar, 2 one line per epoch
    return cfg


def load_recipe(
    config_dir: str | Path, model_name: str, dataset: str, config_file=None
):
    """Loads ``get_config(dataset)`` from ``config_dir/<model_name>.py`` (or a file)."""
    path = Path(config_file) if config_file else Path(config_dir) / f"{model_name}.py"
    if not path.is_file():
        raise ConfigError(f"no recipe file {path} for model {model_name!r}")
    # A recipe is the user's Python: any error in it is reported in one line.
    # The loader is explicit so that any suffix loads (not only .py).
    name = f"bidense_recipe_{path.stem}"
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_loader(name, loader)
    )
    try:
        loader.exec_module(module)
        get_config = getattr(module, "get_config", None)
        if not callable(get_config):
            raise ConfigError(f"recipe {path} defines no get_config(dataset)")
        cfg = get_config(dataset)
    except ConfigError:
        raise
    except Exception as error:
        text = str(error).strip().splitlines()
        raise ConfigError(
            f"cannot load recipe {path}: {type(error).__name__}"
            + (f": {text[0]}" if text else "")
        ) from None
    if not isinstance(cfg, ml_collections.ConfigDict) or "model_name" not in cfg:
        raise ConfigError(
            f"get_config in recipe {path} returned {type(cfg).__name__}, not a "
            "ConfigDict with model_name (see configs/*.py: bidense.training.recipes)"
        )
    if cfg.model_name != model_name:
        raise ConfigError(
            f"recipe {path} is for {cfg.model_name!r}, not model {model_name!r}"
        )
    return cfg


def _parse_literal(raw: str):
    try:
        return ast.literal_eval(raw)
    # Pathologically nested input ("-" * 3000 + "1") makes CPython's parser raise
    # RecursionError, or MemoryError when deeper; neither is a literal.
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        return raw  # a bare word is a string


def _coerce(key: str, raw: str, current):
    """Parses ``raw`` into the type of ``current`` (the recipe's value)."""
    if isinstance(current, str):
        # A string stays a string: scaling="none" is a value, not a missing one.
        return raw
    if raw.strip().lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"config.{key} must be true or false, got {raw!r}")
    if isinstance(current, int | float) and not isinstance(current, bool):
        value = _parse_literal(raw)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config.{key} must be a number, got {raw!r}")
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():  # also nan, inf
                raise ConfigError(f"config.{key} must be an integer, got {raw!r}")
            return int(value)
        # A float: inf (1e400), nan and ints beyond float range make no sense in
        # any recipe and would only fail later, deep inside TensorFlow.
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ConfigError(f"config.{key} must be a finite number, got {raw!r}")
        return value
    if isinstance(current, list | tuple):
        value = _parse_literal(raw)
        if not isinstance(value, list | tuple):
            value = [value]
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list) and any(isinstance(v, str) for v in value):
            raise ConfigError(f"config.{key} must be a list of numbers, got {raw!r}")
        return value
    return _parse_literal(raw)  # None in the recipe: any literal


def _all_keys(cfg: ml_collections.ConfigDict, prefix="") -> list[str]:
    keys = []
    for key, value in cfg.items():
        keys.append(prefix + key)
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(_all_keys(value, prefix + key + "."))
    return keys


def apply_overrides(
    cfg: ml_collections.ConfigDict, overrides: list[tuple[str, str]]
) -> ml_collections.ConfigDict:
    """Applies ``(dotted_key, raw_value)`` pairs to ``cfg`` in place and returns it."""
    for key, raw in overrides:
        *parents, leaf = key.split(".")
        node = cfg
        for part in [*parents, leaf]:
            parent, node = (
                node,
                (
                    node.get(part, _MISSING)
                    if isinstance(node, ml_collections.ConfigDict)
                    else _MISSING
                ),
            )
            if node is _MISSING:
                close = difflib.get_close_matches(key, _all_keys(cfg), n=1)
                hint = f"; did you mean config.{close[0]}?" if close else ""
                # repr only when needed: a pasted newline must not split the
                # one-line error, but plain keys read better bare.
                shown = key if key.isprintable() else repr(key)
                raise ConfigError(f"unknown config key config.{shown}{hint}")
        if isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(
                f"config.{key} is a group; set one of its keys: "
                + ", ".join(f"config.{key}.{k}" for k in node)
            )
        value = _coerce(key, raw, node)
        try:
            parent[leaf] = value
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config.{key}={raw!r}: {error}") from None
    return cfg


class _Missing:
    pass


_MISSING = _Missing()


def to_dict(cfg: ml_collections.ConfigDict) -> dict:
    """A plain, JSON-ready dict (tuples become lists)."""
    return json.loads(cfg.to_json())


def to_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_json_file(path: str | Path) -> ml_collections.ConfigDict:
    """Reads a resolved config written by :func:`to_json` (e.g. a work dir's)."""
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def diff(old: dict, new: dict, prefix="") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(diff(a, b, prefix + key + "."))
        elif a != b:
            keys.append(f"{prefix}{key}: {_show(a)} -> {_show(b)}")
    return keys


def _show(value) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value)
