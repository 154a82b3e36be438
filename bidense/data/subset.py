"""Some classes, a few examples: the dataset filter for transfer experiments.

``config.dataset.classes`` keeps the examples of the listed labels and numbers
them 0..k-1 in the order given (``(5, 6, 7, 8, 9)``: label 5 becomes 0), in
every split; ``config.dataset.train_examples`` keeps the first N training
examples after that filter, in the split's canonical order (the training
stream then reads its files unshuffled, so the N are the same whatever the
seed). Validation and test splits keep all their examples of the classes.

:func:`restrict` gives the dataset's description the classes and example
counts after the filter; :func:`apply` filters a stream of ``(image, label)``
pairs (``bidense.data.pipeline`` applies it to every split it reads).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds


class SubsetError(ValueError):
    """The requested classes or examples do not fit the dataset; one line."""


def active(cfg_dataset) -> bool:
    return bool(cfg_dataset.get("classes") or cfg_dataset.get("train_examples"))


def validate(cfg_dataset) -> None:
    """Checks the keys' values before anything slow starts (types are checked)."""
    classes = list(cfg_dataset.get("classes") or [])
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in classes):
        raise SubsetError(
            f"config.dataset.classes must be label indices (integers >= 0), got "
            f"{classes}"
        )
    if len(set(classes)) != len(classes):
        raise SubsetError(f"config.dataset.classes lists a label twice: {classes}")
    if len(classes) == 1:
        raise SubsetError(
            f"config.dataset.classes={classes} keeps one class; keep at least two"
        )
    if (cfg_dataset.get("train_examples") or 0) < 0:
        raise SubsetError(
            "config.dataset.train_examples must be >= 0 (0 = all), got "
            f"{cfg_dataset.train_examples}"
        )


def _labels(builder, split: str) -> np.ndarray:
    """The labels of ``split`` in canonical order (images are not decoded)."""
    ds = builder.as_dataset(
        split=split,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    ds = ds.map(lambda example: example["label"]).batch(4096)
    return np.concatenate([batch.numpy() for batch in ds] or [np.zeros(0, np.int64)])


def restrict(builder, info, cfg_dataset):
    """``info`` (a DatasetInfo) for the subset: its classes and example counts."""
    if not active(cfg_dataset):
        return info
    validate(cfg_dataset)
    classes = list(cfg_dataset.get("classes") or [])
    wanted = cfg_dataset.get("train_examples") or 0
    unknown = [c for c in classes if c >= info.num_classes]
    if unknown:
        raise SubsetError(
            f"config.dataset.classes={classes}: {info.name} has no label "
            f"{unknown[0]} (its labels are 0..{info.num_classes - 1})"
        )

    def count(split):
        if split is None:
            return None
        labels = _labels(builder, split)
        return int(np.isin(labels, classes).sum()) if classes else len(labels)

    available = count(info.splits.train)
    if wanted > available:
        which = f" of classes {classes}" if classes else ""
        raise SubsetError(
            f"config.dataset.train_examples={wanted} exceeds the {available} "
            f"training examples{which} in {info.splits.train}"
        )
    return dataclasses.replace(
        info,
        num_classes=len(classes) or info.num_classes,
        train_examples=wanted or available,
        validation_examples=count(info.splits.validation),
        test_examples=count(info.splits.test),
    )


def shuffle_files(cfg_dataset) -> bool:
    """Whether the training stream may read its files in a shuffled order: not
    when it keeps the first N examples, which must be the same N in every run."""
    return not cfg_dataset.get("train_examples")


def apply(ds: tf.data.Dataset, cfg_dataset, train: bool = False) -> tf.data.Dataset:
    """Keeps the configured classes (relabelled) and, if ``train``, the first N."""
    classes = list(cfg_dataset.get("classes") or [])
    if classes:
        kept = tf.constant(classes, tf.int64)

        def keep(image, label):
            return tf.reduce_any(tf.equal(tf.cast(label, tf.int64), kept))

        def relabel(image, label):
            index = tf.argmax(
                tf.cast(tf.equal(tf.cast(label, tf.int64), kept), tf.int32)
            )
            return image, tf.cast(index, label.dtype)

        ds = ds.filter(keep).map(relabel)
    wanted = cfg_dataset.get("train_examples") or 0
    if train and wanted:
        ds = ds.take(wanted)
    return ds
