"""Honest model selection: which split trains, which selects, which is reported."""

import numpy as np
import pytest

from bidense.data import splits

FASHION_MNIST = {"train": 60_000, "test": 10_000}
IMAGENET = {"train": 1_281_167, "validation": 50_000, "test": 100_000}


def test_a_dataset_without_validation_gets_the_last_5000_training_images():
    chosen = splits.resolve(FASHION_MNIST)
    assert chosen == splits.Splits(
        train="train[:55000]", validation="train[55000:]", test="test"
    )


def test_the_number_of_carved_images_is_configurable_and_zero_turns_it_off():
    assert splits.resolve(FASHION_MNIST, validation_examples=1000).validation == (
        "train[59000:]"
    )
    off = splits.resolve(FASHION_MNIST, validation_examples=0)
    assert off == splits.Splits(train="train", validation=None, test="test")


def test_a_dataset_with_validation_and_test_splits_uses_them():
    both = {"train": 100, "validation": 10, "test": 10}
    assert splits.resolve(both) == splits.Splits("train", "validation", "test")


def test_imagenet_reports_validation_and_selects_on_a_carve_of_train():
    chosen = splits.resolve(IMAGENET, test="validation", validation_examples=10_000)
    assert chosen.test == "validation"
    assert chosen.validation == "train[1271167:]"
    assert chosen.train == "train[:1271167]"


def test_explicit_splits_are_taken_as_given():
    chosen = splits.resolve(
        FASHION_MNIST, train="train[:50%]", validation="train[50%:]", test="test"
    )
    assert chosen == splits.Splits("train[:50%]", "train[50%:]", "test")
    none = splits.resolve(FASHION_MNIST, validation="")
    assert none.validation is None and none.train == "train"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation": "test"}, "selecting the model on the split it is tested on"),
        ({"validation_examples": 60_000}, "leaves no training examples"),
        ({"validation_examples": -1}, "must be >= 0"),
        ({"train": "train[:80%]"}, "cannot carve a validation split"),
        ({"train": "extra"}, "no split 'extra'"),
    ],
)
def test_splits_that_cannot_work_are_one_line_errors(kwargs, message):
    with pytest.raises(splits.SplitError, match=message) as info:
        splits.resolve(FASHION_MNIST, **kwargs)
    assert "\n" not in str(info.value)


def test_no_test_split_is_an_error_naming_the_key():
    with pytest.raises(splits.SplitError, match="config.dataset.test_split"):
        splits.resolve({"train": 100})


def _labels_and_checksums(builder, split):
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    labels, sums = [], []
    for image, label in ds.batch(5000).as_numpy_iterator():
        labels.append(label)
        sums.append(image.reshape(len(image), -1).astype(np.int64) @ np.arange(784))
    return np.concatenate(labels), np.concatenate(sums)


@pytest.mark.slow
def test_on_real_fashion_mnist_the_carve_is_disjoint_complete_and_stable():
    from bidense import data

    builder = data.prepare("fashion_mnist")
    chosen = splits.resolve(splits.available_splits(builder))
    assert chosen.validation == "train[55000:]" and chosen.test == "test"
    all_labels, all_images = _labels_and_checksums(builder, "train")
    train_labels, train_images = _labels_and_checksums(builder, chosen.train)
    val_labels, val_images = _labels_and_checksums(builder, chosen.validation)
    assert (len(train_labels), len(val_labels)) == (55_000, 5_000)
    # The two slices partition the training split in its canonical order: the
    # validation images are exactly the last 5,000, none of them trains.
    np.testing.assert_array_equal(
        np.concatenate([train_images, val_images]), all_images
    )
    np.testing.assert_array_equal(
        np.concatenate([train_labels, val_labels]), all_labels
    )
    # Every class is represented in the carve (it is not sorted by label).
    assert min(np.bincount(val_labels, minlength=10)) > 400
    # A second read, as a resumed or --deterministic run does, is identical.
    again_labels, again_images = _labels_and_checksums(builder, chosen.validation)
    np.testing.assert_array_equal(again_images, val_images)
    np.testing.assert_array_equal(again_labels, val_labels)
