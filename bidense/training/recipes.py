"""Recipe building blocks shared by the files in ``configs/``.

Each ``configs/<model>.py`` calls :func:`make` with its model's numbers, so the
numbers stay visible in the config file while the structure is written once.

* ImageNet (``imagenet2012``): larq-zoo's training recipe for the model (Adam,
  epsilon 1e-8, per-epoch step decay; reference table in docs/results.md).
* CIFAR (``cifar10``, ``cifar100``): the paper's CIFAR-10 ablation recipe
  (Bethge et al. 2019, section 5 and the authors' logged runs): Adam 0.01, 150
  epochs, learning rate x0.3 at epochs 75/100/125, batch 128, crop + mirror.
* Anything else (``fashion_mnist``, ``mnist``, ..., and image folders given by
  path): a short laptop-CPU recipe on a narrow version of the model: Adam 1e-3
  cosine-decayed over a few epochs.

Fine-tuning (``config.model.weights`` set) uses the same recipe at the same
peak learning rate for a binary model, ten times lower for its full-precision
twin (:func:`peak_learning_rate`).
"""

from __future__ import annotations

import dataclasses

from bidense.data.folders import canonical_name, is_folder_name
from bidense.training.config import ConfigError, base_config

# Fine-tuning's peak learning rate, as a factor of the recipe's from-scratch peak.
# A float network fine-tunes at a tenth of it, the common starting point: its
# weights already compute useful features, and the first steps, driven by the
# gradients of a random new head, should not move them far. A binary network
# fine-tunes at the full peak: its weights change only when a latent weight
# crosses zero, so at a tenth of the peak its signs barely change in a short
# fine-tune and the new head learns on the old classes' features.
# benchmarks/transfer.py measured it over three seeds (docs/own_data.md):
# BinaryDenseNet28 fine-tuned on 500 images of five new classes reached about
# 91.6 % test top-1 at the peak, 72.1 % at a tenth of it, 90.4 % from scratch.
# config.finetune.learning_rate sets the value itself.
BINARY_FINETUNE_LR_FACTOR = 1.0
FLOAT_FINETUNE_LR_FACTOR = 0.1


def finetune_lr_factor(cfg) -> float:
    """:data:`BINARY_FINETUNE_LR_FACTOR`, or for the full-precision twin
    (``model.binary=False``) :data:`FLOAT_FINETUNE_LR_FACTOR`."""
    if cfg.model.get("binary", True):
        return BINARY_FINETUNE_LR_FACTOR
    return FLOAT_FINETUNE_LR_FACTOR


def peak_learning_rate(cfg) -> float:
    """The schedule's peak: ``optimizer.learning_rate``, or with
    ``model.weights`` set ``finetune.learning_rate`` (0: the recipe's times
    :func:`finetune_lr_factor`)."""
    if not cfg.model.get("weights"):
        return cfg.optimizer.learning_rate
    return cfg.finetune.learning_rate or (
        cfg.optimizer.learning_rate * finetune_lr_factor(cfg)
    )


@dataclasses.dataclass(frozen=True)
class StepRecipe:
    """Adam with per-epoch step decay (larq-zoo's ``TrainBinary*`` tasks)."""

    epochs: int
    batch_size: int
    learning_rate: float
    decay_epochs: tuple
    decay_factor: float


# The paper's CIFAR-10 ablation runs (Bethge et al. 2019, arXiv:1906.08637,
# section 5.1).
PAPER_CIFAR10 = StepRecipe(
    epochs=150,
    batch_size=128,
    learning_rate=0.01,
    decay_epochs=(75, 100, 125),
    decay_factor=0.3,
)


@dataclasses.dataclass(frozen=True)
class LaptopRecipe:
    """A few epochs of a narrow model, cosine-decayed: minutes on two CPU cores."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_epochs: float = 0.5
    model: dict = dataclasses.field(default_factory=dict)


def make(model_name: str, arg: str | None, imagenet: StepRecipe, laptop: LaptopRecipe):
    """The locked config of ``model_name`` for the dataset named by ``arg``."""
    dataset = arg or "fashion_mnist"
    cfg = base_config(model_name, dataset)
    base = _dataset_fields(cfg, dataset)
    if base == "imagenet2012":
        _step(cfg, imagenet)
    elif base in ("cifar10", "cifar100"):
        _step(cfg, PAPER_CIFAR10)
    else:
        cfg.epochs = laptop.epochs
        cfg.batch_size = laptop.batch_size
        cfg.optimizer.learning_rate = laptop.learning_rate
        cfg.schedule.name = "cosine"
        cfg.schedule.warmup_epochs = laptop.warmup_epochs
        for key, value in laptop.model.items():
            if key not in cfg.model:
                raise ConfigError(f"{model_name} has no switch {key!r}")
            cfg.model[key] = list(value) if isinstance(value, tuple) else value
    cfg.lock()
    return cfg


def dataset_config(dataset: str):
    """A model-less config with only the dataset settings (for evaluate.py).

    ``dataset``: a TFDS name or an image folder's path.
    """
    cfg = base_config(None, dataset)
    _dataset_fields(cfg, dataset)
    cfg.lock()
    return cfg


def _dataset_fields(cfg, dataset: str) -> str:
    """Sets the per-dataset input settings; returns the dataset's base name.

    An image folder keeps the defaults (crop with 4 pixels of padding, flips;
    its size and channels come from its images: bidense.data.folders) and is
    recorded by its absolute path, which is also its base name.
    """
    if is_folder_name(dataset):
        cfg.dataset.name = canonical_name(dataset)
        return cfg.dataset.name
    base = dataset.split(":")[0]
    if base == "imagenet2012":
        # No public test labels: the literature reports the validation split,
        # so it is the test split here and selection uses a carve of train.
        cfg.dataset.test_split = "validation"
        cfg.dataset.validation_examples = 10_000
        cfg.dataset.preprocessing = "imagenet"
        cfg.dataset.image_size = 224
    elif base in ("cifar10", "cifar100"):
        cfg.dataset.preprocessing = "pad_crop"
        cfg.dataset.crop_padding = 4
    else:
        # 28x28 garments: 2-pixel shifts; digits must not be mirrored.
        cfg.dataset.crop_padding = 2 if base in ("fashion_mnist", "mnist") else 4
        cfg.dataset.flip = base != "mnist"
    return base


def _step(cfg, recipe: StepRecipe) -> None:
    cfg.epochs = recipe.epochs
    cfg.batch_size = recipe.batch_size
    cfg.optimizer.learning_rate = recipe.learning_rate
    cfg.schedule.name = "step"
    cfg.schedule.decay_epochs = list(recipe.decay_epochs)
    cfg.schedule.decay_factor = recipe.decay_factor
