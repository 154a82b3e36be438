"""Input pipelines: TFDS datasets by name, per-dataset preprocessing, tf.data."""

from bidense.data.pipeline import (
    count_examples,
    eval_dataset,
    model_input_shape,
    train_dataset,
)
from bidense.data.sources import DatasetError, DatasetInfo, dataset_info, prepare

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "count_examples",
    "dataset_info",
    "eval_dataset",
    "model_input_shape",
    "prepare",
    "train_dataset",
]
