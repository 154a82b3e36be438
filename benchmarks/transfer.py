"""Transfer experiment: fine-tuning from bidense weights vs training from scratch.

    python benchmarks/transfer.py --output runs/transfer            # the experiment
    python benchmarks/transfer.py --output runs/transfer --seeds 1,2,3 \
        --finetune_learning_rates default,0.002                   # over seeds
    python benchmarks/transfer.py --output /tmp/t --smoke           # a few steps each

train.py runs of the same model on Fashion-MNIST, each a real command (printed
before it starts, so any of them can be rerun by hand):

1. ``pretrain``: classes 0-4 (T-shirt, trouser, pullover, dress, coat), every
   training image of them, the recipe's schedule (once, with the first seed);
2. ``finetune``: classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) from
   the first ``--examples`` (500) training images of them, starting from
   ``pretrain``'s weights with a new head (``finetune.reset_head``: other
   classes), ``--freeze_epochs`` of warm-up with the backbone frozen, at each
   of ``--finetune_learning_rates`` ("default": the recipe's fine-tuning
   default, ``config.finetune.learning_rate=0``);
3. ``scratch``: the same 500 images and epochs, from a random initialisation,
   at the recipe's learning rate.

Runs 2 and 3 repeat for every one of ``--seeds`` (``config.seed``: the new
head's and the scratch model's initialisation, the data order), so a
difference can be read against the spread between seeds. The validation split
is carved from the training split as train.py always does
(``dataset.validation_examples``), so the 500 images never validate; every run
reports validation and test top-1 of its classes (summary.json). Prints one
Markdown row per run and one per kind of run over the seeds (mean, lowest,
highest); ``--json`` keeps the numbers. A finished run is not rerun (train.py
resumes a work dir), so an interrupted experiment continues. ``--smoke``
shortens every run to 2 steps of 2 epochs with 2 evaluation batches: it checks
the commands, not the accuracy.
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


def lr_label(value: str) -> str:
    return "default" if value == "default" else f"lr{value}"


def commands(args) -> dict[str, list[str]]:
    """train.py's arguments for each run (without the interpreter), by run name:
    ``pretrain``, ``scratch/seedN``, ``finetune_LABEL/seedN``."""
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
    runs = {
        "pretrain": [
            *base,
            "--workdir", str(out / "pretrain"),
            f"--config.dataset.classes={classes(PRETRAIN_CLASSES)}",
            f"--config.seed={args.seeds[0]}",
            *smoke,
        ],
    }  # fmt: skip
    for seed in args.seeds:
        for lr in args.finetune_learning_rates:
            name = f"finetune_{lr_label(lr)}/seed{seed}"
            runs[name] = [
                *base,
                "--workdir", str(out / name),
                *target,
                f"--config.seed={seed}",
                f"--config.model.weights={out / 'pretrain'}",
                "--config.finetune.reset_head=true",
                f"--config.finetune.freeze_epochs={freeze}",
                f"--config.finetune.learning_rate={0 if lr == 'default' else lr}",
            ]  # fmt: skip
        name = f"scratch/seed{seed}"
        runs[name] = [
            *base, "--workdir", str(out / name), *target, f"--config.seed={seed}"
        ]  # fmt: skip
    return runs


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


def over_seeds(results: dict) -> str:
    """One row per kind of run (the name before ``/seedN``): test and
    validation top-1 as mean (lowest-highest) over its seeds."""
    kinds: dict[str, list[dict]] = {}
    for name, s in results.items():
        kinds.setdefault(name.split("/")[0], []).append(s)
    rows = [
        "| run | seeds | val top-1, mean (range) | test top-1, mean (range) |",
        "|---|---:|---|---|",
    ]

    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        mean = sum(values) / len(values)
        return f"{mean:.2%} ({min(values):.2%}-{max(values):.2%})"

    for kind, runs in kinds.items():
        rows.append(
            f"| {kind} | {len(runs)} | {spread([r.get('val_top1') for r in runs])} | "
            f"{spread([r['test_top1'] for r in runs])} |"
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
    parser.add_argument(
        "--seeds",
        default="1",
        help="comma-separated config.seed values of the 500-image runs (default 1)",
    )
    parser.add_argument(
        "--finetune_learning_rates",
        default="default",
        help="comma-separated fine-tuning learning rates; 'default' = the recipe's",
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps per run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    try:
        args.seeds = [int(x) for x in args.seeds.split(",")]
        args.finetune_learning_rates = [
            x if x == "default" else repr(float(x))
            for x in args.finetune_learning_rates.split(",")
        ]
    except ValueError:
        fail(
            PROGRAM,
            "--seeds takes integers and --finetune_learning_rates numbers or "
            "'default', comma-separated",
        )
    if any(x != "default" and float(x) <= 0 for x in args.finetune_learning_rates):
        fail(PROGRAM, "--finetune_learning_rates must be positive")
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
    print()
    print(over_seeds(results))
    print(f"\nclasses 0-4 pretrain, classes 5-9 target; {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
