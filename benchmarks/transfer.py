"""Transfer experiment: fine-tuning from bidense weights vs training from scratch.

    python benchmarks/transfer.py --output runs/transfer            # the experiment
    python benchmarks/transfer.py --output /tmp/t --smoke           # a few steps each

Three train.py runs of the same model on Fashion-MNIST, each a real command
(printed before it starts, so any of them can be rerun by hand):

1. ``pretrain``: classes 0-4 (T-shirt, trouser, pullover, dress, coat), every
   training image of them, the recipe's schedule;
2. ``finetune``: classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) from
   the first ``--examples`` (500) training images of them, starting from
   ``pretrain``'s weights with a new head (``finetune.reset_head``: other
   classes), ``--freeze_epochs`` of warm-up with the backbone frozen, at the
   recipe's fine-tuning learning rate (a tenth of its peak);
3. ``scratch``: the same 500 images and epochs, from a random initialisation,
   at the recipe's learning rate.

The validation split is carved from the training split as train.py always
does (``dataset.validation_examples``), so the 500 images never validate; both
runs report validation and test top-1 of classes 5-9 (summary.json). Prints a
Markdown table; ``--json`` keeps the numbers. A finished run is not rerun
(train.py resumes a work dir), so an interrupted experiment continues.
``--smoke`` shortens every run to 2 steps of 2 epochs with 2 evaluation
batches: it checks the commands, not the accuracy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: benchmarks/ starts sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.common import fail, machine  # noqa: E402

PROGRAM = "benchmarks/transfer.py"
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
SMOKE = (
    "--config.epochs=2",
    "--config.steps_per_epoch=2",
    "--config.eval_steps=2",
    "--config.batch_size=16",
)


def classes(values) -> str:
    return "(" + ",".join(str(v) for v in values) + ")"


def commands(args) -> dict[str, list[str]]:
    """train.py's arguments for each run (without the interpreter)."""
    out = Path(args.output)
    base = [str(ROOT / "train.py"), "--model", args.model, "--dataset", "fashion_mnist"]
    base += list(args.train_flag)
    smoke = list(SMOKE) if args.smoke else []
    freeze = min(args.freeze_epochs, 1) if args.smoke else args.freeze_epochs
    target = [
        f"--config.dataset.classes={classes(TARGET_CLASSES)}",
        f"--config.dataset.train_examples={args.examples}",
        *([] if args.smoke else [f"--config.epochs={args.epochs}"]),
        *smoke,
    ]
    return {
        "pretrain": [
            *base,
            "--workdir", str(out / "pretrain"),
            f"--config.dataset.classes={classes(PRETRAIN_CLASSES)}",
            *smoke,
        ],
        "finetune": [
            *base,
            "--workdir", str(out / "finetune"),
            *target,
            f"--config.model.weights={out / 'pretrain'}",
            "--config.finetune.reset_head=true",
            f"--config.finetune.freeze_epochs={freeze}",
        ],
        "scratch": [*base, "--workdir", str(out / "scratch"), *target],
    }  # fmt: skip


def run(name: str, argv: list[str], workdir: Path) -> dict:
    """One train.py run (skipped if its summary.json exists); its summary."""
    summary = workdir / "summary.json"
    if not summary.is_file():
        print(f"[{name}] python {' '.join(argv)}", file=sys.stderr, flush=True)
        start = time.time()
        result = subprocess.run([sys.executable, *argv], cwd=ROOT, check=False)
        if result.returncode != 0:
            fail(PROGRAM, f"the {name} run failed (status {result.returncode})")
        print(f"[{name}] {time.time() - start:.0f} s", file=sys.stderr)
    return json.loads(summary.read_text())


def table(results: dict) -> str:
    rows = [
        "| run | images | epochs | val top-1 | test top-1 | train minutes |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in results.items():
        val = "-" if s.get("val_top1") is None else f"{s['val_top1']:.2%}"
        rows.append(
            f"| {name} | {s['images']} | {s['epochs']} | {val} | "
            f"{s['test_top1']:.2%} | {s['train_seconds'] / 60:.1f} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder for the three runs")
    parser.add_argument("--model", default="binary_densenet28")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=30, help="of both 500-image runs")
    parser.add_argument("--freeze_epochs", type=int, default=2)
    parser.add_argument(
        "--train_flag",
        action="append",
        default=[],
        help="a flag for every train.py run (repeatable), e.g. "
        "--train_flag=--config.model.growth_rate=8",
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps per run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.examples <= 0 or args.epochs <= 0 or args.freeze_epochs < 0:
        fail(PROGRAM, "--examples and --epochs must be > 0, --freeze_epochs >= 0")
    if args.freeze_epochs > args.epochs:
        fail(PROGRAM, f"--freeze_epochs={args.freeze_epochs} exceeds --epochs")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    argvs = commands(args)
    results = {}
    for name, argv in argvs.items():
        summary = run(name, argv, Path(args.output) / name)
        results[name] = {
            "images": "all" if name == "pretrain" else args.examples,
            "epochs": summary["epochs"],
            "val_top1": summary.get("val_top1"),
            "test_top1": summary["test_top1"],
            "train_seconds": summary["train_seconds"],
            "command": "python " + " ".join(argv),
        }
    print(table(results))
    print(f"\nclasses 0-4 pretrain, classes 5-9 target; {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
