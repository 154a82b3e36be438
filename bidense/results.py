"""Results tables generated from train.py work directories (one row per run).

Like timm's ``results/*.csv``, a results table is data produced by runs, not
numbers typed into a document: every row is read from a finished work dir's
``config.json``, ``summary.json`` and ``sessions.jsonl`` (bidense.provenance),
so each accuracy in the docs traces back to a run and the command that made it.
Validation top-1 is the split the model was selected on; test top-1 and top-5
are measured once, on the selected model (bidense.data.splits).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bidense import provenance

COLUMNS = (
    "run",
    "model",
    "dataset",
    "switches",
    "recipe",
    "precision",
    "teacher",
    "epochs",
    "seed",
    "val_top1",
    "test_top1",
    "test_top5",
    "params",
    "size_mib",
    "wall_minutes",
    "teacher_wall_minutes",
    "cpu",
    "command",
)


class ResultsError(ValueError):
    """A work dir cannot become a results row; one-line message."""


def named_runs(roots) -> list[tuple[Path, str]]:
    """``(work dir, run name)`` of every finished run below ``roots``.

    The name is the work dir's path below its root, without the ``cells``
    level of a study (bidense.ablation: ``<study>/cells/<cell>/seed<k>`` is
    named ``<study>/<cell>/seed<k>``), so that every run's name is unique.
    """
    found = {}
    for root in map(Path, roots):
        dirs = {path.parent for path in root.rglob("summary.json")}
        if (root / "summary.json").is_file():
            dirs.add(root)
        for path in dirs:
            # Work dirs of non-chief workers (workers/<id>/) repeat the chief's run.
            if path.parent.name == "workers":
                continue
            parts = [p for p in path.relative_to(root).parts if p != "cells"]
            found[path] = "/".join(parts) or path.name
    return sorted(found.items())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ResultsError(f"cannot read {path} ({error})") from None


def non_default_switches(model_config: dict, defaults: dict) -> str:
    """``key=value`` for every model switch that differs from the builder's default."""
    changed = []
    for key in sorted(model_config):
        value, default = model_config[key], defaults.get(key)
        if isinstance(default, tuple):
            default = list(default)
        if key != "weights" and value != default:
            changed.append(f"{key}={json.dumps(value, separators=(',', ''))}")
    return " ".join(changed)


def wall_minutes(workdir: Path) -> float | None:
    sessions = provenance.read_sessions(workdir)
    if not sessions:
        return None
    return round(sum(s["wall_seconds"] for s in sessions) / 60, 1)


def row(workdir: str | Path, name: str | None = None) -> dict:
    """The results row of one finished work dir."""
    workdir = Path(workdir)
    try:
        return _row(workdir, name)
    except (KeyError, TypeError) as error:
        raise ResultsError(
            f"{workdir} is not a complete train.py work dir (no {error} in its "
            "config.json or summary.json); rerun train.py on it or move it away"
        ) from None


def _row(workdir: Path, name: str | None) -> dict:
    from bidense import registry

    config = _read_json(workdir / "config.json")
    summary = _read_json(workdir / "summary.json")
    sessions = provenance.read_sessions(workdir)
    teacher = (config.get("distill") or {}).get("teacher") or ""
    teacher_minutes = None
    if teacher and Path(teacher).is_dir():
        teacher_minutes = wall_minutes(Path(teacher))
    cpus = sorted({s["cpu"] for s in sessions})
    return {
        "run": name or workdir.name,
        "model": config["model_name"],
        "dataset": config["dataset"]["name"],
        "switches": non_default_switches(
            config["model"], registry.model_switches(config["model_name"])
        ),
        "recipe": sessions[0].get("recipe", "") if sessions else "",
        "precision": config.get("precision", "float32"),
        "teacher": Path(teacher).name if teacher else "",
        "epochs": summary["epochs"],
        "seed": config["seed"],
        "val_top1": _pct(summary.get("val_top1")),
        "test_top1": _pct(summary["test_top1"]),
        "test_top5": _pct(summary["test_top5"]),
        "params": summary["params"],
        "size_mib": round(summary["size_mib"], 3),
        "wall_minutes": wall_minutes(workdir),
        "teacher_wall_minutes": teacher_minutes,
        "cpu": " + ".join(cpus),
        "command": portable_command(sessions[0]["command"]) if sessions else "",
    }


def portable_command(command: str, base: str | Path | None = None) -> str:
    """``command`` with the paths below ``base`` (default: the current
    directory, the repository collect_results.py runs from) made relative.

    ablate.py hands train.py absolute work dirs; a results table is committed
    and must name no path of the machine that ran it.
    """
    prefix = str(Path(base or Path.cwd()).absolute()).rstrip("/") + "/"
    return command.replace(prefix, "")


def _pct(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def write_csv(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for item in rows:
            writer.writerow({k: "" if item[k] is None else item[k] for k in COLUMNS})


# Column types of a row as :func:`row` makes it (the rest are strings).
_INTS = ("epochs", "seed", "params")
_FLOATS = (
    "val_top1", "test_top1", "test_top5", "size_mib", "wall_minutes",
    "teacher_wall_minutes",
)  # fmt: skip


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a results CSV that :func:`write_csv` wrote, typed as :func:`row`'s.

    Raises ResultsError when the file is not such a table.
    """
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ResultsError(
                    f"{path} is not a results table (its columns are not "
                    f"{', '.join(COLUMNS)})"
                )
            rows = list(reader)
    except OSError as error:
        raise ResultsError(f"cannot read {path} ({error})") from None
    for item in rows:
        for key in (*_INTS, *_FLOATS):
            text = item[key]
            item[key] = None if text == "" else (int if key in _INTS else float)(text)
    return rows


def merge(rows: list[dict], kept: list[dict]) -> list[dict]:
    """``rows`` plus the ``kept`` rows of runs that ``rows`` does not have, by run."""
    names = {item["run"] for item in rows}
    merged = rows + [item for item in kept if item["run"] not in names]
    return sorted(merged, key=lambda item: item["run"])


def _total_minutes(item: dict) -> float | None:
    if item["wall_minutes"] is None:
        return None
    return item["wall_minutes"] + (item["teacher_wall_minutes"] or 0.0)


def markdown(rows: list[dict]) -> str:
    """The table as Markdown: the columns a reader compares (CSV has them all)."""
    lines = [
        "| run | model | switches | precision | teacher | epochs | seed | val top-1 "
        "| test top-1 | test top-5 | size_mib | wall min (with teacher) | CPU |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in rows:
        minutes = item["wall_minutes"]
        total = _total_minutes(item)
        shown = "" if minutes is None else f"{minutes:.1f}"
        if item["teacher_wall_minutes"] is not None:
            shown += f" ({total:.1f})"
        val = "" if item["val_top1"] is None else f"{item['val_top1']:.2f}"
        lines.append(
            f"| {item['run']} | `{item['model']}` | {item['switches'] or '-'} "
            f"| {item['precision']} | {item['teacher'] or '-'} | {item['epochs']} "
            f"| {item['seed']} | {val} | {item['test_top1']:.2f} "
            f"| {item['test_top5']:.2f} | {item['size_mib']:.3f} | {shown} "
            f"| {item['cpu']} |"
        )
    return "\n".join(lines)


def _short_label(run: str) -> str:
    """``study/variant/cell/seed1`` -> ``cell s1``; a plain run keeps its name."""
    parts = run.split("/")
    if len(parts) >= 2 and parts[-1].startswith("seed"):
        return f"{parts[-2]} s{parts[-1][len('seed') :]}"
    return run


def plot_accuracy_vs_minutes(rows: list[dict], path: str | Path) -> Path:
    """Test top-1 against wall minutes (teacher included), binary vs full precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for index, item in enumerate(rows):
        minutes = _total_minutes(item)
        if minutes is None:
            continue
        full_precision = "binary=false" in item["switches"]
        ax.scatter(
            minutes,
            item["test_top1"],
            marker="s" if full_precision else "o",
            color="tab:orange" if full_precision else "tab:blue",
        )
        # Alternate offsets: runs of one study sit close together.
        ax.annotate(
            _short_label(item["run"]),
            (minutes, item["test_top1"]),
            xytext=(4, 6 if index % 2 else -10),
            textcoords="offset points",
            fontsize=7,
        )
    ax.scatter([], [], marker="o", color="tab:blue", label="binary")
    ax.scatter([], [], marker="s", color="tab:orange", label="full-precision twin")
    ax.set_xlabel("wall-clock minutes on the CPU of the row (teacher included)")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
