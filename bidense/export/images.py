"""The images an export is checked and calibrated on: the model's own data.

Parity (LCE vs Keras), ``--calibrate_bn`` and the int8 ranges read the dataset
the model was trained on, through bidense.data's usual path (``prepare``,
``dataset_info``, ``eval_dataset``: the evaluation preprocessing of training), so
any dataset train.py reads works. The dataset is a work dir's (its
``config.json``) or one named for a registry model (``export.py --dataset``).
Without one, or when a work dir's dataset is not on this machine, exports fall
back to synthetic images and say so (:attr:`ExportData.note`); int8 calibration
has no such fallback (:meth:`ExportData.require`).

Parity uses the test split (the first N images); calibration uses the training
split (its first N images, in the order TFDS prepared it, which TFDS and its
ImageFolder shuffle), never the test split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

LABELS_FILE = "labels.txt"  # a train.py work dir's class names, one per line


@dataclasses.dataclass
class ExportData:
    """Where an export's images come from: a dataset, or synthetic ones.

    Attributes:
        name: the dataset (TFDS name or folder), None for synthetic images.
        note: how the data was chosen, or why there is none.
        labels: class names in label-index order, if known.
    """

    name: str | None
    note: str
    labels: list[str] | None = None
    _builder: object = None
    _info: object = None
    _cfg_dataset: object = None

    @property
    def available(self) -> bool:
        return self.name is not None

    def require(self, purpose: str) -> None:
        """Raises ValueError (one line) when there is no data for ``purpose``."""
        if not self.available:
            raise ValueError(
                f"{purpose} needs the model's training data: {self.note}; pass "
                "--dataset NAME_OR_PATH (the dataset it was trained on)"
            )

    @property
    def test_split(self) -> str:
        return self._info.splits.test

    @property
    def train_split(self) -> str:
        return self._info.splits.train

    def _dataset(self, split: str, batch_size: int):
        from bidense import data

        return data.eval_dataset(
            self._builder, split, self._info, self._cfg_dataset, batch_size
        )

    def batches(self, split: str, n: int, batch_size: int = 32, labels=False):
        """Yields the first ``n`` examples of ``split`` in batches: float32 images
        as the model sees them (or (images, labels) pairs with ``labels``)."""
        left = n
        for images, targets in self._dataset(split, batch_size):
            if left <= 0:
                break
            batch = images.numpy()[:left]
            left -= len(batch)
            yield (batch, targets.numpy()[: len(batch)]) if labels else batch

    def examples(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` images of ``split`` and their labels (fewer if smaller)."""
        parts = list(self.batches(split, n, batch_size=min(n, 256), labels=True))
        if not parts:
            raise ValueError(f"dataset {self.name!r} split {split!r} is empty")
        return (
            np.concatenate([x for x, _ in parts]),
            np.concatenate([y for _, y in parts]),
        )

    def images(self, split: str, n: int) -> np.ndarray:
        """The first ``n`` images of ``split`` (fewer if it is smaller)."""
        return self.examples(split, n)[0]

    def test_images(self, n: int) -> np.ndarray:
        return self.images(self.test_split, n)

    def train_images(self, n: int) -> np.ndarray:
        return self.images(self.train_split, n)


def synthetic(note: str) -> ExportData:
    return ExportData(name=None, note=note)


def _read_labels(path: Path, num_classes: int | None) -> list[str] | None:
    if not path.is_file():
        return None
    labels = path.read_text().splitlines()
    if num_classes is not None and len(labels) != num_classes:
        raise ValueError(
            f"{path} has {len(labels)} class names for a model with {num_classes} "
            "outputs; restore it, or delete it to export without class names"
        )
    return labels


def model_data(
    model: tf.keras.Model,
    *,
    workdir: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    manual_dir: str | None = None,
) -> ExportData:
    """The data ``model`` was trained on, if any.

    Args:
        model: the Keras model being exported (its input shape is checked
            against the dataset's).
        workdir: a train.py work dir: its ``config.json`` names the dataset and
            its preprocessing; its ``labels.txt`` the class names (without
            one, the dataset's, if it names its classes). A dataset that
            cannot be prepared here gives synthetic data, with the reason.
        dataset: a TFDS name or a folder (for a registry model): read with the
            dataset's default input settings, resized to the model's square
            input. Unlike a work dir's, a dataset that cannot be read is an
            error (DatasetError).
    """
    from bidense import data
    from bidense.training import evaluation, recipes
    from bidense.training import workdir as wd

    num_classes = _num_classes(model)
    labels = None
    if workdir is not None:
        workdir = Path(workdir)
        labels = _read_labels(workdir / LABELS_FILE, num_classes)
        if not (workdir / wd.CONFIG).is_file():
            return ExportData(None, f"--workdir {workdir} has no {wd.CONFIG}", labels)
        hint = "train.py writes it; restore it, or export with --model and --dataset"
        cfg = evaluation.read_run_config(workdir / wd.CONFIG, hint)
        source = f"the run's dataset, {wd.CONFIG}"
    elif dataset:
        cfg = recipes.dataset_config(dataset).copy_and_resolve_references()
        # Export reads training and test images only: no validation carve, which
        # would refuse a dataset smaller than the carve.
        cfg.dataset.validation_examples = 0
        source = "--dataset"
    else:
        return synthetic("no dataset (--model without --dataset)")

    name = cfg.dataset.name
    try:
        builder = data.prepare(name, data_dir, manual_dir)
        info = data.dataset_info(builder, cfg.dataset)
    except data.DatasetError as error:
        if workdir is None:
            raise
        return ExportData(None, f"dataset {name!r} is not available here ({error})")
    cfg_dataset = _fit_input(model, cfg.dataset, info, name, fixed=workdir is not None)
    if labels is None:  # no labels.txt: the dataset's class names, if it has them
        labels = _class_names(builder, num_classes)
    return ExportData(
        name=name,
        note=f"{name} ({source})",
        labels=labels,
        _builder=builder,
        _info=info,
        _cfg_dataset=cfg_dataset,
    )


def _class_names(builder, num_classes: int | None) -> list[str] | None:
    """The dataset's class names when there is one per model output, else None."""
    names = getattr(builder.info.features["label"], "names", None)
    if names and len(names) == num_classes:
        return list(names)
    return None


def _num_classes(model) -> int | None:
    shape = model.output_shape
    return shape[-1] if isinstance(shape, tuple) and len(shape) == 2 else None


def _fit_input(model, cfg_dataset, info, name: str, fixed: bool):
    """The dataset settings whose images have the model's input shape.

    A registry model (``fixed=False``) gets the dataset resized to its square
    input, as train.py's ``--config.dataset.image_size`` would; channels must
    match. A work dir's settings are the run's and must fit as they are.
    """
    from bidense import data

    want = tuple(model.input_shape[1:])
    got = data.model_input_shape(info, cfg_dataset)
    if got != want and not fixed and want[0] == want[1] and got[2] == want[2]:
        cfg_dataset = cfg_dataset.copy_and_resolve_references()
        cfg_dataset.image_size = want[0]
        got = data.model_input_shape(info, cfg_dataset)
    if got != want:
        fix = (
            "the run's config.json does not match its model"
            if fixed
            else "give the dataset the model was built for, or build the model for "
            "this dataset (--input_size, --channels)"
        )
        raise ValueError(
            f"dataset {name!r} gives {'x'.join(map(str, got))} images, the model "
            f"takes {'x'.join(map(str, want))}; {fix}"
        )
    return cfg_dataset


def dataset_images(name: str, split: str, n: int, shape, offset: int = 0):
    """``n`` preprocessed images of a TFDS dataset, resized to ``shape``.

    For demos, tests and benchmarks that need *some* real images at any input
    size (grey images are repeated over the channels), not a model's own data:
    that is :func:`model_data`.
    """
    from bidense import data
    from bidense.training import recipes

    cfg = recipes.dataset_config(name)
    builder = data.prepare(name)
    info = data.dataset_info(builder, cfg.dataset)
    ds = data.eval_dataset(builder, split, info, cfg.dataset, batch_size=256)
    x = np.concatenate(
        [images.numpy() for images, _ in ds.unbatch().skip(offset).take(n).batch(n)]
    )
    x = tf.image.resize(x, shape[:2]).numpy()
    if x.shape[-1] != shape[2]:
        x = np.repeat(x[..., :1], shape[2], axis=-1)
    return x.astype(np.float32)
