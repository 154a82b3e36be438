"""Input pipelines: TFDS datasets by name, per-dataset preprocessing, tf.data."""

from bidense.data.pipeline import (
    count_examples,
    eval_dataset,
    model_input_shape,
    train_dataset,
)
from bidense.data.sources import DatasetError, DatasetInfo, dataset_info, prepare
from bidense.data.splits import SplitError, Splits

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "SplitError",
    "Splits",
    "count_examples",
    "dataset_info",
    "eval_dataset",
    "model_input_shape",
    "prepare",
    "train_dataset",
]
