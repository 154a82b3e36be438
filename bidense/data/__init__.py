"""Input pipelines: TFDS datasets by name or image folders by path,
per-dataset preprocessing, tf.data; the class names kept beside a model."""

from bidense.data.folders import FolderSource, canonical_name, is_folder_name
from bidense.data.labels import (
    LABELS_FILE,
    LabelsError,
    check_labels,
    class_names,
    read_labels,
    write_labels,
)
from bidense.data.pipeline import (
    count_examples,
    eval_dataset,
    model_input_shape,
    train_dataset,
)
from bidense.data.sources import DatasetError, DatasetInfo, dataset_info, prepare
from bidense.data.splits import SplitError, Splits

__all__ = [
    "LABELS_FILE",
    "DatasetError",
    "DatasetInfo",
    "FolderSource",
    "LabelsError",
    "SplitError",
    "Splits",
    "canonical_name",
    "check_labels",
    "class_names",
    "count_examples",
    "dataset_info",
    "eval_dataset",
    "is_folder_name",
    "model_input_shape",
    "prepare",
    "read_labels",
    "train_dataset",
    "write_labels",
]
