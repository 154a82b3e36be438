"""results.csv (one row per finished run) and the summary (mean/std over seeds).

The summary mirrors the ablation tables of Bethge et al. 2019 (arXiv:1906.08637):
one row per cell with top-1/top-5, size (MiB) and OPs, plus the difference of
its mean top-1 to the reference cell and the standard error of that difference,
so that "within noise" is something the table shows rather than a guess.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from bidense.ablation import grid, runner
from bidense.ablation.study import Study, StudyError

RESULTS = "results.csv"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
# Test top-1/top-5 of the model selected on validation (train.py's summary.json),
# as the paper's tables report test accuracy; validation top-1 alongside.
TEST_METRICS = {"top1": "test_top1", "top5": "test_top5"}
METRICS = ("size_mib", "ops", "params", "epochs", "train_seconds")


def collect(runs: list[grid.Run]) -> list[dict]:
    """One row per finished run (train.py's summary.json), in run order."""
    rows = []
    for run in runs:
        path = run.workdir / runner.SUMMARY
        if not path.is_file():
            continue
        summary = _read_summary(path)
        rows.append(
            {
                "cell": run.cell.name,
                **run.cell.labels,
                "model": run.cell.model,
                "seed": run.seed,
                "val_top1": summary["val_top1"],
                **{key: summary[name] for key, name in TEST_METRICS.items()},
                **{key: summary[key] for key in METRICS},
                "wall_seconds": round(
                    sum(runner.read_times(run.workdir)["sessions"]), 1
                ),
                "workdir": str(run.workdir),
            }
        )
    return rows


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_summary(path: Path) -> dict:
    """A run's summary.json; a damaged one is a one-line StudyError."""
    try:
        summary = json.loads(path.read_text())
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        summary = None
    if not isinstance(summary, dict):
        problem = "not a JSON object"
    else:
        bad = [
            key
            for key in (*TEST_METRICS.values(), *METRICS)
            if not _is_number(summary.get(key))
        ]
        if summary.get("val_top1") is not None and not _is_number(summary["val_top1"]):
            bad.append("val_top1")
        problem = f"no number for {', '.join(bad)}" if bad else None
    if problem:
        raise StudyError(
            f"{path} is damaged ({problem}); delete it and rerun the same command: "
            "train.py writes it again without training"
        )
    return summary


def write_csv(rows: list[dict], path: str | Path) -> None:
    if not rows:
        Path(path).write_text("")
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _std(values: list[float]) -> float:
    """Sample standard deviation over seeds; NaN for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else math.nan


def summarize(study: Study, cells: list[grid.Cell], rows: list[dict]) -> list[dict]:
    """Mean and std over seeds per cell, and the difference to the reference."""
    by_cell: dict[str, list[dict]] = {}
    for row in rows:
        by_cell.setdefault(row["cell"], []).append(row)
    reference = grid.reference_cell(study, cells).name
    table = []
    for cell in cells:
        group = by_cell.get(cell.name, [])
        if not group:
            continue
        top1 = [float(r["top1"]) for r in group]
        top5 = [float(r["top5"]) for r in group]
        val = [r.get("val_top1") for r in group]
        val_mean = (
            statistics.fmean(map(float, val))
            if all(v not in (None, "") for v in val)
            else math.nan
        )
        table.append(
            {
                "cell": cell.name,
                **cell.labels,
                "model": cell.model,
                "seeds": len(group),
                "val_top1_mean": val_mean,
                "top1_mean": statistics.fmean(top1),
                "top1_std": _std(top1),
                "top5_mean": statistics.fmean(top5),
                "top5_std": _std(top5),
                "size_mib": float(group[0]["size_mib"]),
                "ops": float(group[0]["ops"]),
                "reference": cell.name == reference,
            }
        )
    ref = next((row for row in table if row["reference"]), None)
    for row in table:
        if ref is None:
            row["d_top1"] = row["d_top1_se"] = math.nan
            continue
        if row is ref:  # a difference with itself: exactly zero, no noise
            row["d_top1"] = row["d_top1_se"] = 0.0
            continue
        row["d_top1"] = row["top1_mean"] - ref["top1_mean"]
        # Standard error of a difference of two means (NaN with one seed).
        row["d_top1_se"] = math.sqrt(
            row["top1_std"] ** 2 / row["seeds"] + ref["top1_std"] ** 2 / ref["seeds"]
        )
    return table


def main_effects(study: Study, table: list[dict]) -> list[dict]:
    """Each non-reference level of each axis against the axis' reference level,
    averaged over the levels of the other axes (a grid with 2+ axes only).

    The paper states its ablation claims this way ("scaling factors do not help",
    whatever the downsampling and gradient). Differences are paired: for every
    combination of the other axes' levels, cell mean minus reference-level cell
    mean; the effect is their average. Its standard error uses the pooled
    within-cell (seed-to-seed) variance s², as in a balanced factorial design:
    sqrt(sum over pairs of s² (1/n_a + 1/n_b)) / pairs. NaN with single seeds.
    """
    axes = list(study.grid)
    if len(axes) < 2:
        return []
    variances = [row["top1_std"] ** 2 for row in table if row["seeds"] > 1]
    pooled = statistics.fmean(variances) if variances else math.nan
    effects = []
    for axis in axes:
        others = [a for a in axes if a != axis]
        cells = {(tuple(row[a] for a in others), row[axis]): row for row in table}
        combos = list(dict.fromkeys(key for key, _ in cells))
        reference = study.reference[axis]
        for level in dict.fromkeys(row[axis] for row in table):
            if level == reference:
                continue
            pairs = [
                (cells[combo, level], cells[combo, reference])
                for combo in combos
                if (combo, level) in cells and (combo, reference) in cells
            ]
            if not pairs:
                continue
            d_top1 = statistics.fmean(a["top1_mean"] - b["top1_mean"] for a, b in pairs)
            variance = sum(pooled * (1 / a["seeds"] + 1 / b["seeds"]) for a, b in pairs)
            effects.append(
                {
                    "axis": axis,
                    "level": level,
                    "reference": reference,
                    "pairs": len(pairs),
                    "d_top1": d_top1,
                    "d_top1_se": math.sqrt(variance) / len(pairs),
                }
            )
    return effects


def _pct(value: float, signed=False) -> str:
    if math.isnan(value):
        return "–"
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def markdown(study: Study, table: list[dict]) -> str:
    """The summary as a Markdown table (accuracies in %, differences in pp)."""
    axes = list(study.grid)
    head = [*axes, "seeds", "val top-1 %", "test top-1 %", "± std", "top-5 %",
            "MiB", "OPs", "Δ top-1 pp", "± s.e."]  # fmt: skip
    lines = [
        f"**{study.name}** ({study.dataset}); reference: "
        + ", ".join(f"{a}={label}" for a, label in study.reference.items()),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in table:
        cells = [
            *(f"**{row[a]}**" if row["reference"] else str(row[a]) for a in axes),
            str(row["seeds"]),
            _pct(row["val_top1_mean"]),
            _pct(row["top1_mean"]),
            _pct(row["top1_std"]),
            _pct(row["top5_mean"]),
            f"{row['size_mib']:.3f}",
            f"{row['ops']:.3g}",
            "ref" if row["reference"] else _pct(row["d_top1"], signed=True),
            "" if row["reference"] else _pct(row["d_top1_se"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    effects = main_effects(study, table)
    if effects:
        lines += [
            "",
            "Main effects (each level against the reference level, averaged over "
            "the other axes; s.e. from the pooled seed-to-seed variance):",
            "",
            "| axis | level vs reference | cell pairs | Δ top-1 pp | ± s.e. |",
            "|---|---|---|---|---|",
        ]
        for effect in effects:
            lines.append(
                f"| {effect['axis']} | {effect['level']} vs {effect['reference']} "
                f"| {effect['pairs']} | {_pct(effect['d_top1'], signed=True)} "
                f"| {_pct(effect['d_top1_se'])} |"
            )
    return "\n".join(lines) + "\n"


def write_summary(study: Study, table: list[dict], outdir: str | Path) -> str:
    """Writes summary.csv and summary.md into ``outdir``; returns the Markdown."""
    outdir = Path(outdir)
    write_csv(table, outdir / SUMMARY_CSV)
    text = markdown(study, table)
    (outdir / SUMMARY_MD).write_text(text)
    return text
