"""A study definition and loading it from ``configs/studies/<name>.py``.

A study file holds ``VARIANTS = {name: Study(...)}`` and ``DEFAULT = name``; the
variants share a grid and differ in dataset, width and recipe (the paper's recipe
on CIFAR-10/ImageNet for GPU users, a reduced Fashion-MNIST one for a CPU).

Grid axes come in two forms:

* ``"scaling": ["none", "xnor"]``: one model switch (or a dotted recipe key such
  as ``"optimizer.learning_rate"``), one value per level; the value is the label.
* ``"shape": {"4x1/k256": {"blocks": (1, 1, 1, 1), "growth_rate": 256}, ...}``:
  coupled settings under a label, for ablations that change several switches at
  once (paper 6.2: halve the growth rate while doubling the blocks). The key
  ``"model"`` switches the registered model (and with it the recipe file).

The reference cell maps every axis to one label; the summary reports each
cell's difference to it (the paper's tables compare against the plain,
unscaled, STE, FP-downsampling network).
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
from pathlib import Path
from typing import Any

# The recipe of the paper's ImageNet ablation runs, as the authors logged them
# (hpi-xnor/BMXNet-v2-wiki, Binary-Network-Results.md): Adam 1e-3, 40 epochs,
# batch 256 (128 x 2 GPUs), x0.1 at epochs 34 and 37. Study files spread it into
# their imagenet2012 config.
PAPER_IMAGENET_ABLATION = {
    "epochs": 40,
    "batch_size": 256,
    "optimizer.learning_rate": 1e-3,
    "schedule.decay_epochs": (34, 37),
    "schedule.decay_factor": 0.1,
}


class StudyError(ValueError):
    """A study file or a grid does not fit; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Study:
    """A base recipe plus a grid of switches, seeds and a reference cell.

    Attributes:
        name: short name, used in plot titles and the summary.
        model: registered model of the base recipe (``configs/<model>.py``).
        dataset: TFDS name or image folder (a path, relative to where ablate.py
            runs); picks the recipe's dataset branch (``get_config(arg)``).
        grid: ordered axes (see the module docstring).
        reference: axis -> label of the cell every other cell is compared with.
        seeds: one run per seed and cell; at least two for a standard deviation.
        config: overrides for every cell, dotted keys (``"epochs"``,
            ``"model.filters"``), applied before the grid's settings.
        description: what the study reproduces (shown in the summary).
    """

    name: str
    model: str
    dataset: str
    grid: dict[str, Any]
    reference: dict[str, str]
    seeds: tuple[int, ...] = (1, 2)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def replace(self, **changes) -> Study:
        return dataclasses.replace(self, **changes)


def load_study(path: str | Path, variant: str | None = None) -> tuple[Study, str]:
    """Imports a study file and returns ``(study, variant name)``."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"no study file {path}")
    # An explicit loader: a study file with another suffix than .py loads too.
    name = f"bidense_study_{path.stem}"
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_loader(name, loader)
    )
    try:
        loader.exec_module(module)
    except Exception as error:  # a user's file: report it, don't dump a traceback
        raise StudyError(
            f"cannot load {path}: {type(error).__name__}: {error}"
        ) from None
    variants = getattr(module, "VARIANTS", None)
    if not isinstance(variants, dict) or not variants:
        raise StudyError(f"{path} defines no VARIANTS = {{name: Study(...)}}")
    variant = variant or getattr(module, "DEFAULT", None) or next(iter(variants))
    if variant not in variants:
        raise StudyError(
            f"{path} has no variant {variant!r}; choose one of: {', '.join(variants)}"
        )
    study = variants[variant]
    if not isinstance(study, Study):
        raise StudyError(f"{path}: VARIANTS[{variant!r}] is not a Study")
    check_shape(study)
    return study, variant


def check_shape(study: Study) -> None:
    """Structural checks that need no model: axes, labels, reference, seeds."""
    kinds = {"name": str, "model": str, "dataset": str, "grid": dict,
             "reference": dict, "config": dict}  # fmt: skip
    for field, kind in kinds.items():
        value = getattr(study, field)
        if not isinstance(value, kind):
            raise StudyError(
                f"study {field} must be a {kind.__name__}, got {value!r:.80}"
            )
    if not isinstance(study.seeds, tuple | list):
        raise StudyError(f"seeds must be integers, got {study.seeds!r:.80}")
    if not study.grid:
        raise StudyError(f"study {study.name!r} has an empty grid")
    for axis, levels in study.grid.items():
        if isinstance(levels, dict):
            if not levels or not all(isinstance(s, dict) for s in levels.values()):
                raise StudyError(
                    f"axis {axis!r}: a coupled axis maps labels to dicts of settings"
                )
        elif not isinstance(levels, list | tuple) or not levels:
            raise StudyError(f"axis {axis!r} needs a non-empty list of values")
    if not study.seeds or len(set(study.seeds)) != len(study.seeds):
        raise StudyError(f"study {study.name!r} needs distinct seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in study.seeds):
        raise StudyError(f"seeds must be integers, got {study.seeds!r}")
    missing = [axis for axis in study.grid if axis not in study.reference]
    unknown = [axis for axis in study.reference if axis not in study.grid]
    if missing or unknown:
        raise StudyError(
            f"reference must name one level of every axis (missing: {missing}, "
            f"unknown: {unknown})"
        )
    for axis, label in study.reference.items():
        if str(label) not in labels(study.grid[axis]):
            raise StudyError(
                f"reference {axis}={label!r} is not a level of axis {axis!r} "
                f"({', '.join(labels(study.grid[axis]))})"
            )


# -- level labels ---------------------------------------------------------------
# A plain axis labels each level with its value written as train.py's override
# parser reads it, so the label of a level is also its command-line text
# (bidense.ablation.grid builds the overrides with the same format_value).


def labels(levels) -> list[str]:
    """The labels of one axis's levels (values themselves for a plain axis)."""
    if isinstance(levels, dict):
        return [str(label) for label in levels]
    return [format_value(value) for value in levels]


def format_value(value) -> str:
    """A value as train.py's override parser reads it (bidense.training.config)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        # Always list syntax: "(1)" would parse as the number 1.
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)
