"""Grid expansion: cells, their names and work directories, train.py overrides.

A cell is one combination of axis levels; a run is a cell with one seed. Every
run trains in its own work directory ``<study workdir>/cells/<cell>/seed<k>`` so
that train.py's own checkpoints resume it and its ``summary.json`` marks it done.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

import ml_collections

from bidense.ablation.study import Study, StudyError, format_value
from bidense.training.config import base_config

MODEL_KEY = "model"  # in a coupled axis: switches the registered model


@dataclasses.dataclass(frozen=True)
class Cell:
    """One combination of levels: ``labels`` per axis, merged ``settings``."""

    labels: dict[str, str]
    settings: dict[str, Any]
    model: str

    @property
    def name(self) -> str:
        return "_".join(
            f"{safe_name(a)}-{safe_name(label)}" for a, label in self.labels.items()
        )


@dataclasses.dataclass(frozen=True)
class Run:
    cell: Cell
    seed: int
    workdir: Path

    @property
    def name(self) -> str:
        return f"{self.cell.name}/seed{self.seed}"


def safe_name(text: str) -> str:
    """Keeps names portable as directory names: letters, digits, ``._+=``."""
    return re.sub(r"[^A-Za-z0-9._+=]+", "", str(text).replace("/", "+")) or "x"


def _level_settings(axis: str, levels) -> list[tuple[str, dict]]:
    if isinstance(levels, dict):
        return [(str(label), dict(s)) for label, s in levels.items()]
    return [(format_value(value), {axis: value}) for value in levels]


def expand(study: Study) -> list[Cell]:
    """All cells of the grid, in grid order (the last axis varies fastest)."""
    axes = [_level_settings(axis, levels) for axis, levels in study.grid.items()]
    cells = []
    for combo in itertools.product(*axes):
        settings: dict[str, Any] = {}
        for label_settings in combo:
            for key, value in label_settings[1].items():
                if key in settings and settings[key] != value:
                    raise StudyError(
                        f"two axes set {key!r} differently ({settings[key]!r} vs "
                        f"{value!r}); couple them in one axis instead"
                    )
                settings[key] = value
        cells.append(
            Cell(
                labels={a: c[0] for a, c in zip(study.grid, combo, strict=True)},
                settings=settings,
                model=settings.get(MODEL_KEY, study.model),
            )
        )
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):
        raise StudyError("two cells get the same name; make the axis labels distinct")
    return cells


def reference_cell(study: Study, cells: list[Cell]) -> Cell:
    wanted = {axis: str(label) for axis, label in study.reference.items()}
    return next(cell for cell in cells if cell.labels == wanted)


def runs(study: Study, cells: list[Cell], workdir: str | Path) -> list[Run]:
    """Seed-major order: every cell's first seed before any second seed, so an
    interrupted study already has one result per cell."""
    root = Path(workdir) / "cells"
    return [
        Run(cell, seed, root / cell.name / f"seed{seed}")
        for seed in study.seeds
        for cell in cells
    ]


# The recipe's own scalar settings (bidense.training.config.base_config), as
# opposed to the model's switches, which a plain grid key names.
_TOP_LEVEL_RECIPE_KEYS = frozenset(
    key
    for key, value in base_config(None, "fashion_mnist").items()
    if not isinstance(value, ml_collections.ConfigDict) and key != "model_name"
)


def config_key(key: str) -> str:
    """Grid keys name model switches unless dotted or a top-level recipe key
    (``"precision"``, ``"epochs"``): then they are recipe keys."""
    if "." in key or key in _TOP_LEVEL_RECIPE_KEYS:
        return key
    return f"model.{key}"


def overrides(
    study: Study, cell: Cell, seed: int, recipe: dict | None = None
) -> list[tuple[str, str]]:
    """``(dotted key, raw value)`` pairs for train.py's ``--config.KEY=VALUE``.

    With ``recipe`` (the resolved recipe as a dict), settings that equal the
    recipe's value are left out: train.py's parser reads the word "none" as None,
    so ``--config.model.scaling=none`` cannot be passed, but it is the default.
    """
    pairs = [(k, v) for k, v in study.config.items()]  # already dotted keys
    pairs += [(config_key(k), v) for k, v in cell.settings.items() if k != MODEL_KEY]
    result, applied = [], {}
    for key, value in pairs:
        raw = format_value(value)
        if recipe is not None:
            # Compared with the value in effect: the recipe after earlier pairs.
            current = applied.get(key, _lookup(recipe, key))
            applied[key] = raw
            if current is not _ABSENT and format_value(current) == raw:
                continue
        if isinstance(value, str) and value.strip().lower() in ("none", "null"):
            raise StudyError(
                f"config.{key}={value!r}: train.py reads {value!r} as None; the "
                "recipe must already hold this value (or use another label)"
            )
        result.append((key, raw))
    return [*result, ("seed", str(seed))]


_ABSENT = object()


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node
