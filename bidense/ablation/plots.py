"""PNG plots of a study summary (matplotlib, Agg backend: no display needed).

* ``accuracy_vs_size.png``: mean top-1 against model size in MiB, one point per
  cell with the std over seeds as error bar; the paper's style of comparison
  (BinaryDenseNet vs ResNetE at equal size, paper section 6 and [P2]).
* ``bar_<axis>.png`` per axis with more than one level: mean top-1 per level,
  grouped by the levels of the other axes, with std error bars. Grouping shows
  whether a switch helps in every context (the paper's tables are read the same
  way: scaling hurts with both gradients and both downsampling types).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, works headless and in tests

import matplotlib.pyplot as plt  # noqa: E402

from bidense.ablation.grid import safe_name  # noqa: E402
from bidense.ablation.study import Study  # noqa: E402


def _err(value: float) -> float:
    return 0.0 if math.isnan(value) else value * 100


def _label(study: Study, row: dict, axes=None) -> str:
    return ", ".join(str(row[a]) for a in (axes if axes is not None else study.grid))


def accuracy_vs_size(study: Study, table: list[dict], path: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for row in table:
        ax.errorbar(
            row["size_mib"],
            row["top1_mean"] * 100,
            yerr=_err(row["top1_std"]),
            fmt="*" if row["reference"] else "o",
            markersize=11 if row["reference"] else 6,
            capsize=3,
        )
        ax.annotate(
            _label(study, row),
            (row["size_mib"], row["top1_mean"] * 100),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    ax.set_xlabel("model size (MiB; binary weights 1 bit, others 32 bit)")
    ax.set_ylabel(f"top-1 accuracy on {study.dataset} (%)")
    ax.set_title(f"{study.name}: accuracy vs size (★ reference)", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def switch_bars(study: Study, table: list[dict], axis: str, path: str | Path) -> Path:
    others = [a for a in study.grid if a != axis]
    levels = list(dict.fromkeys(row[axis] for row in table))
    groups = list(dict.fromkeys(_label(study, row, others) for row in table))
    width = 0.8 / max(1, len(levels))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) + 2), 4.5))
    lows = []
    for i, level in enumerate(levels):
        xs, ys, errs = [], [], []
        for g, group in enumerate(groups):
            row = next(
                (
                    r
                    for r in table
                    if r[axis] == level and _label(study, r, others) == group
                ),
                None,
            )
            if row is not None:
                xs.append(g + (i - (len(levels) - 1) / 2) * width)
                ys.append(row["top1_mean"] * 100)
                errs.append(_err(row["top1_std"]))
        lows += [y - e for y, e in zip(ys, errs, strict=True)]
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=f"{axis}={level}")
    if lows:  # zoom in: the differences the paper discusses are 1-3 pp
        top = max(row["top1_mean"] * 100 + _err(row["top1_std"]) for row in table)
        ax.set_ylim(max(0.0, min(lows) - 3), min(100.0, top + 2))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups if others else [""], fontsize=8, rotation=15)
    ax.set_ylabel(f"top-1 accuracy on {study.dataset} (%)")
    ax.set_title(f"{study.name}: effect of {axis} (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def draw_all(study: Study, table: list[dict], outdir: str | Path) -> list[Path]:
    """Every plot of the study into ``outdir``; returns the files written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if not table:
        return []
    paths = [accuracy_vs_size(study, table, outdir / "accuracy_vs_size.png")]
    for axis, levels in study.grid.items():
        if len(levels) > 1:
            paths.append(
                switch_bars(study, table, axis, outdir / f"bar_{safe_name(axis)}.png")
            )
    return paths


def _save(fig, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
