"""Which examples train, which select the model, which are reported: the splits.

Model selection (``best.keras``, early decisions, recipe choices) must never see
the split that is reported as the result. Datasets such as Fashion-MNIST and
CIFAR-10 ship only ``train`` and ``test``; for them a validation split is carved
from the end of the training split (``dataset.validation_examples``, 5,000 by
default), so the model trains on ``train[:N-5000]``, is selected on
``train[N-5000:]`` and is tested once, at the end, on ``test``.

The carve is a pair of TFDS slices of the split's canonical order, which TFDS
keeps fixed for a prepared dataset: the same examples land on the same side in
every run, resume and ``--deterministic`` rerun, whatever the seed. Datasets
that have both a ``validation`` and a ``test`` split use them as they are.
ImageNet has no public test labels: its ``validation`` split is what the
literature reports, so it is the test split here and the selection split is
carved from ``train``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

AUTO = "auto"
# A plain split name ("train"), not already sliced or combined ("train[:50%]").
_PLAIN_SPLIT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class SplitError(ValueError):
    """The requested splits do not fit the dataset; one-line message."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """TFDS split strings: ``validation`` is None when selection is turned off."""

    train: str
    validation: str | None
    test: str


def resolve(
    available: Mapping[str, int | None],
    *,
    train: str = "train",
    validation: str = AUTO,
    test: str = AUTO,
    validation_examples: int = 5000,
) -> Splits:
    """The train, validation and test splits for a dataset with ``available`` splits.

    ``available`` maps the dataset's split names to their sizes (None if unknown).
    ``validation``: "auto" (the dataset's own ``validation`` split when it also
    has a separate test split, else the last ``validation_examples`` of
    ``train``), a TFDS split string, or "" for none. ``test``: "auto" (``test``,
    else ``validation``) or a TFDS split string.
    """
    if validation_examples < 0:
        raise SplitError(
            f"dataset.validation_examples must be >= 0, got {validation_examples}"
        )
    if test == AUTO:
        test = next((s for s in ("test", "validation") if s in available), "")
        if not test:
            raise SplitError(
                f"the dataset has no test or validation split (it has: "
                f"{', '.join(sorted(available))}); set config.dataset.test_split"
            )
    if validation != AUTO:
        if validation == test:
            raise SplitError(
                f"config.dataset.validation_split and test_split are both "
                f"{test!r}: selecting the model on the split it is tested on "
                "inflates the result; pick another split (or '' for none)"
            )
        return Splits(train=train, validation=validation or None, test=test)
    if "validation" in available and test != "validation":
        return Splits(train=train, validation="validation", test=test)
    if validation_examples == 0:
        return Splits(train=train, validation=None, test=test)
    return carve(available, train, test, validation_examples)


def carve(available, train: str, test: str, count: int) -> Splits:
    """Keeps the last ``count`` examples of ``train`` apart for validation."""
    if not _PLAIN_SPLIT.match(train):
        raise SplitError(
            f"cannot carve a validation split out of train_split={train!r} (a "
            "sliced split); set config.dataset.validation_split to a split of "
            "your own, or config.dataset.validation_examples=0 for none"
        )
    size = available.get(train)
    if size is None:
        raise SplitError(
            f"the dataset has no split {train!r} of known size (it has: "
            f"{', '.join(sorted(available))}); set config.dataset.train_split"
        )
    if count >= size:
        raise SplitError(
            f"config.dataset.validation_examples={count} leaves no training "
            f"examples in {train!r} ({size} examples); use a smaller number"
        )
    cut = size - count
    return Splits(train=f"{train}[:{cut}]", validation=f"{train}[{cut}:]", test=test)


def available_splits(builder) -> dict[str, int | None]:
    """The prepared dataset's split names and sizes.

    ``tfds.testing.mock_data`` (tests) prepares nothing and knows no splits; it
    serves any split name with the same number of random examples, so the usual
    ``train`` and ``test`` are assumed, with the training split counted.
    """
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    if splits:
        return splits
    from bidense.data.pipeline import count_examples

    train = builder.as_dataset(split="train")
    return {"train": count_examples(train), "test": None}


def for_dataset(builder, cfg_dataset) -> Splits:
    """:func:`resolve` with the settings of a config's ``dataset`` group."""
    return resolve(
        available_splits(builder),
        train=cfg_dataset.train_split,
        validation=cfg_dataset.validation_split,
        test=cfg_dataset.test_split,
        validation_examples=cfg_dataset.validation_examples,
    )
