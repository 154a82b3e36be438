"""Finding, preparing and reading image-classification datasets offline.

Any TFDS dataset with an ``image`` and a ``label`` feature works by name. Datasets
that TFDS cannot download by itself (imagenet2012) or that this machine has locally
(Debian's ``dataset-fashion-mnist``) are prepared from a *manual_dir*. A path
(``./photos``, ``/data/photos``) is a folder of class folders, read through TFDS's
ImageFolder (:mod:`bidense.data.folders`).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from bidense.data import subset
from bidense.data.splits import Splits, for_dataset

# Local copies of datasets that TFDS can then prepare without internet.
KNOWN_MANUAL_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}

# What TFDS expects in the manual dir, said in our error message.
MANUAL_FILES = {
    "imagenet2012": "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
    "(from image-net.org)",
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline and the model need to know about a dataset."""

    name: str  # a TFDS name, or a folder's absolute path
    # (H, W, C) as the pipeline reads the images: C after the conversion that
    # dataset.channels asks for; H and W None for variable-size images (a
    # folder's are the most common size, which the others are resized to).
    image_shape: tuple
    num_classes: int
    splits: Splits  # which examples train, select the model, and are reported
    train_examples: int | None
    validation_examples: int | None
    test_examples: int | None
    class_names: tuple[str, ...] = ()  # label i is class_names[i] (labels.txt)


class DatasetError(ValueError):
    """A dataset cannot be found or prepared; one-line message."""


def default_manual_dir(name: str, manual_dir: str | None) -> str | None:
    """``manual_dir`` if given, else a known local copy of ``name`` if present."""
    if manual_dir:
        return manual_dir
    local = KNOWN_MANUAL_DIRS.get(name.split(":")[0])
    return local if local and os.path.isdir(local) else None


def get_builder(name: str, data_dir: str | None = None):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        if "/" in name or os.sep in name:
            raise DatasetError(
                f"no folder {name} in {os.getcwd()}, and no TFDS dataset of that "
                "name; give an existing folder of class folders, or a TFDS name "
                "(see tfds.list_builders())"
            ) from None
        hint = f"; for the folder {name}, write ./{name}" if os.path.isdir(name) else ""
        raise DatasetError(
            f"unknown TFDS dataset {name!r} (see tfds.list_builders()){hint}"
        ) from None
    except (ValueError, AssertionError) as error:
        raise DatasetError(f"dataset {name!r}: {_first_line(error)}") from None


def prepare(name: str, data_dir=None, manual_dir=None):
    """Returns the TFDS builder of ``name``, preparing it first if needed.

    For a folder (``folders.is_folder_name``): a checked
    :class:`~bidense.data.folders.FolderSource`, which reads like a builder once
    :func:`dataset_info` has configured it.
    """
    from bidense.data import folders

    if folders.is_folder_name(name):
        return folders.open_folder(name)
    builder = get_builder(name, data_dir)
    manual_dir = default_manual_dir(name, manual_dir)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as error:  # TFDS raises many types; all mean "not prepared".
        base = name.split(":")[0]
        where = manual_dir or os.path.join(
            data_dir or tfds.core.constants.DATA_DIR, "downloads", "manual"
        )
        if base in MANUAL_FILES or builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
            files = MANUAL_FILES.get(base, "the files named in TFDS's instructions")
            raise DatasetError(
                f"dataset {name!r} needs a manual download: put {files} in "
                f"{where} (or pass --manual_dir), then rerun"
            ) from None
        raise DatasetError(
            f"cannot prepare dataset {name!r} (no internet?): {_first_line(error)}"
        ) from None
    return builder


def dataset_info(builder, cfg_dataset) -> DatasetInfo:
    """Image shape, classes, splits and their sizes; checks it is classification.

    ``cfg_dataset`` is a config's ``dataset`` group: its split settings decide
    the train, validation and test splits (bidense.data.splits), and
    ``dataset.channels`` the channels the pipeline converts the images to.
    """
    from bidense.data import folders

    channels = cfg_dataset.get("channels", 0)
    if channels not in folders.CHANNELS:
        raise DatasetError(
            "config.dataset.channels must be 0 (the images' own), 1 (grey) or 3 "
            f"(RGB), got {channels!r}"
        )
    if isinstance(builder, folders.FolderSource):
        return builder.dataset_info(cfg_dataset)
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DatasetError(
            f"dataset {builder.name!r} has no 'image' and 'label' features; "
            "only image classification is supported"
        )
    chosen = for_dataset(builder, cfg_dataset)
    shape = tuple(features["image"].shape)
    info = DatasetInfo(
        name=builder.name,
        image_shape=(*shape[:2], channels or shape[2]),
        num_classes=features["label"].num_classes,
        splits=chosen,
        train_examples=_num_examples(builder, chosen.train),
        validation_examples=chosen.validation
        and _num_examples(builder, chosen.validation),
        test_examples=_num_examples(builder, chosen.test),
        class_names=tuple(features["label"].names),
    )
    return subset.restrict(builder, info, cfg_dataset)  # classes, train_examples


def _num_examples(builder, split: str) -> int | None:
    try:
        return builder.info.splits[split].num_examples or None
    except (KeyError, ValueError):
        return None  # unknown (e.g. tfds.testing.mock_data); counted later


def read(
    builder, split: str, shuffle_files: bool, seed: int, reshuffle: bool = True
) -> tf.data.Dataset:
    """``(uint8 image, int label)`` pairs of ``split``.

    ``reshuffle=False`` gives every iterator the same file order: with True, the
    order depends on how many iterators this process has made before, which a
    resumed process does not repeat.
    """
    read_config = tfds.ReadConfig(
        shuffle_seed=seed, shuffle_reshuffle_each_iteration=reshuffle
    )
    try:
        return builder.as_dataset(
            split=split,
            as_supervised=True,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )
    except (ValueError, KeyError, AssertionError) as error:
        raise DatasetError(
            f"dataset {builder.name!r} split {split!r}: {_first_line(error)}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
