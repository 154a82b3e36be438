"""Writes a train.py work dir's model as a compact weights file, with its table entry.

    python -m bidense.pretrained --workdir runs/e18_fmnist

writes ``bidense/pretrained/fashion_mnist/<model>.npz`` (``--output`` for
another path) and prints the entry for
:data:`bidense.weights.FASHION_MNIST_WEIGHTS`: file, sha256, switches and the
run's test top-1. The run must be a finished Fashion-MNIST run of all ten
classes whose test top-1 covers the whole test split (``config.eval_steps=0``,
the default), since ``evaluate.py --weights fashion_mnist`` must reproduce it.

The model is the one train.py reported (``best.keras``, else ``final.keras``),
the one its summary.json's test top-1 belongs to.
The switches recorded are those it was built with (``stem`` from its input size,
``pad_value`` read from its binary convolutions). Before the file is kept, it
is loaded into a freshly built model, whose outputs on random inputs must equal
the saved model's bit for bit. Prints the file's size and sha256 and the entry
for :data:`bidense.weights.FASHION_MNIST_WEIGHTS`.
"""

from __future__ import annotations

import json
import pprint
from pathlib import Path

import numpy as np
import tensorflow as tf

import bidense
from bidense import transfer
from bidense import weights as weights_lib
from bidense.pretrained import compact


def _run_config(workdir: Path) -> dict:
    config = transfer.run_config(workdir)
    if config is None:
        path = workdir / "config.json"
        raise ValueError(f"--workdir {workdir} holds no train.py run ({path})")
    return config


def _test_top1(workdir: Path, config: dict) -> float:
    """The run's test top-1, after checking it is one the table may pin."""
    dataset = config.get("dataset") or {}
    if dataset.get("name") != "fashion_mnist":
        raise ValueError(
            f"--workdir {workdir} trained on {dataset.get('name')!r}; the table "
            "holds Fashion-MNIST weights (train with --dataset fashion_mnist)"
        )
    if dataset.get("classes") or dataset.get("train_examples"):
        raise ValueError(
            f"--workdir {workdir} trained on a subset of Fashion-MNIST "
            "(config.dataset.classes or train_examples); pack a run of all of it"
        )
    if config.get("eval_steps"):
        raise ValueError(
            f"--workdir {workdir} evaluated {config['eval_steps']} test batches, "
            "not the whole test split; rerun it with config.eval_steps=0"
        )
    path = workdir / "summary.json"
    try:
        top1 = json.loads(path.read_text())["test_top1"]
    except (OSError, ValueError, KeyError, TypeError):
        top1 = None
    if not isinstance(top1, float | int) or isinstance(top1, bool):
        raise ValueError(
            f"--workdir {workdir} has no test top-1 in {path.name}; has train.py "
            "finished? (resume it with the same command)"
        )
    return float(top1)


def _pad_value(model: tf.keras.Model):
    """What the model's binary convolutions pad with (None: it has none)."""
    for layer in model.layers:
        if compact.binary_kernel_index(layer) is not None and layer.padding == "same":
            return float(layer.pad_values)
    return None


def pack_workdir(workdir, output=None, seed: int = 0) -> dict:
    """Writes the compact file of ``workdir``'s model to ``output`` (default:
    ``<model>.npz`` in :data:`bidense.weights.FASHION_MNIST_DIR`).

    Returns ``{"model", "path", "mib", "sha256", "spec"}`` (``spec``: the table
    entry's fields).
    Raises a one-line ValueError if the run is not one, the file would exceed
    ``weights.MAX_FILE_MIB`` or the reloaded model's outputs differ.
    """
    from bidense.training.precision import to_float32

    workdir = Path(workdir)
    config = _run_config(workdir)
    name = config["model_name"]
    test_top1 = _test_top1(workdir, config)
    output = Path(output or weights_lib.FASHION_MNIST_DIR / f"{name}.npz")
    if not output.parent.is_dir():
        raise ValueError(f"--output {output}: no directory {output.parent}")
    saved = to_float32(
        tf.keras.models.load_model(
            weights_lib.workdir_model_file(workdir), compile=False
        )
    )
    switches = {k: v for k, v in config["model"].items() if k != "weights"}
    pad = _pad_value(saved)
    if pad is not None:
        switches["pad_value"] = pad
    input_shape = tuple(saved.input_shape[1:])
    num_classes = int(saved.output_shape[-1])
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in switches.items()}
    rebuilt = bidense.create_model(
        name, input_shape=input_shape, num_classes=num_classes, **kwargs
    )
    resolved = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in rebuilt.bidense_config.items()
        if k in bidense.model_switches(name)
    }
    meta = {
        "model": name,
        "switches": resolved,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "dataset": config.get("dataset", {}).get("name"),
    }
    compact.save(saved, output, meta)
    try:
        weights_lib.load_weights_file(rebuilt, output)
        images = np.random.RandomState(seed).uniform(-1, 1, (8, *input_shape))
        images = images.astype(np.float32)
        if not np.array_equal(rebuilt(images), saved(images)):
            raise ValueError(
                f"{output}: the reloaded model's outputs differ from {workdir}'s "
                "model; the file was not kept"
            )
        mib = output.stat().st_size / 2**20
        if mib > weights_lib.MAX_FILE_MIB:
            raise ValueError(
                f"{output} would be {mib:.2f} MiB, over the {weights_lib.MAX_FILE_MIB} "
                "MiB a file in the repository may take; the file was not kept"
            )
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    spec = {
        "file": output.name,
        "sha256": weights_lib.sha256_of(output),
        "switches": {
            k: tuple(v) if isinstance(v, list) else v for k, v in resolved.items()
        },
    }
    if input_shape != (28, 28, 1):
        spec["input_shape"] = input_shape
    if num_classes != 10:
        spec["num_classes"] = num_classes
    spec["test_top1"] = test_top1
    return {
        "model": name,
        "path": output,
        "mib": mib,
        "sha256": spec["sha256"],
        "spec": spec,
    }


def table_entry(name: str, spec: dict) -> str:
    """The Python text of a :data:`bidense.weights.FASHION_MNIST_WEIGHTS` entry."""
    fields = "\n".join(
        f"        {key}={pprint.pformat(value, width=70, sort_dicts=False)},".replace(
            "\n", "\n        "
        )
        for key, value in spec.items()
    )
    return f'    "{name}": PretrainedSpec(\n{fields}\n    ),'
