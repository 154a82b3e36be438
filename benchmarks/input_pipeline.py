"""The training input pipeline alone: images/s, and the first batch after a resume.

    python benchmarks/input_pipeline.py             # real Fashion-MNIST, batch 128
    python benchmarks/input_pipeline.py --rounds 8 --start_steps 0,467

Iterates ``bidense.data.train_dataset`` (what train.py trains on: cached decoded
images, per-pass shuffle, stateless pad-and-crop and flip, parallel map, batching,
prefetch) without a model:

* **images/s** of the stream with the default unordered parallel map and with
  ``deterministic=True`` (the ordered map of ``--deterministic``). Both streams
  first make one full pass, which fills their caches, then are timed in
  alternating rounds of ``--batches`` / ``--rounds`` ``next()`` calls each (the
  order swaps every round, so load from other processes hits both alike); the
  median over rounds is reported, and every round is listed.
* **time to the first batch** of a stream built to resume at each of
  ``--start_steps``: the stream skips the examples before that step (whole passes
  for free, the rest of one pass after reading and caching it), as train.py does
  after a restart. On Fashion-MNIST at batch 128, step 467 is the last batch of
  the first pass (59,776 examples to skip) and step 1412 lies in the fourth pass.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "fashion_mnist", "TFDS image-classification dataset.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("batches", 400, "Timed batches per stream, over all rounds.")
flags.DEFINE_integer("rounds", 4, "Alternating timed rounds per stream.")
flags.DEFINE_list("start_steps", ["0", "467", "1412"], "Resume points to time.")
flags.DEFINE_integer("seed", 0, "Stream seed, as train.py's --config.seed.")
flags.DEFINE_string("data_dir", None, "TFDS data dir, as train.py's --data_dir.")


def timed_batches(iterator, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return time.perf_counter() - start


def main(argv) -> None:
    program = "input_pipeline.py"
    if len(argv) > 1:
        common.fail(program, f"unexpected arguments {argv[1:]}")
    if min(FLAGS.batch_size, FLAGS.batches, FLAGS.rounds) < 1:
        common.fail(program, "--batch_size, --batches and --rounds must be positive")
    try:
        start_steps = [int(step) for step in FLAGS.start_steps]
    except ValueError:
        common.fail(program, f"--start_steps={FLAGS.start_steps}: use integers")
    if any(step < 0 for step in start_steps):
        common.fail(program, "--start_steps must be >= 0")
    from bidense import data
    from bidense.training import recipes

    try:
        cfg = recipes.dataset_config(FLAGS.dataset)
        builder = data.prepare(FLAGS.dataset, FLAGS.data_dir)
        info = data.dataset_info(builder, cfg.dataset)
    except (data.DatasetError, data.SplitError) as error:
        common.fail(program, str(error))
    n = info.train_examples or data.count_examples(
        builder.as_dataset(split=info.splits.train)
    )
    batch = FLAGS.batch_size

    def stream(**kwargs):
        return data.train_dataset(
            builder, info, cfg.dataset, batch, FLAGS.seed, num_examples=n, **kwargs
        )

    load_before = os.getloadavg()[0]
    modes = {"unordered map (default)": False, "ordered map (--deterministic)": True}
    iterators = {}
    for mode, deterministic in modes.items():
        iterator = iter(stream(deterministic=deterministic))
        fill = timed_batches(iterator, n // batch + 1)  # one pass: fills the cache
        print(f"  {mode}: first pass {fill:.1f} s", file=sys.stderr, flush=True)
        iterators[mode] = iterator
    per_round = max(1, FLAGS.batches // FLAGS.rounds)
    rates = {mode: [] for mode in modes}
    for round_index in range(FLAGS.rounds):
        order = list(modes) if round_index % 2 == 0 else list(modes)[::-1]
        for mode in order:
            seconds = timed_batches(iterators[mode], per_round)
            rates[mode].append(per_round * batch / seconds)
    first_batch = {}
    for step in start_steps:
        start = time.perf_counter()
        next(iter(stream(start_step=step)))
        first_batch[step] = time.perf_counter() - start
        print(f"  start_step {step}: {first_batch[step]:.1f} s", file=sys.stderr)

    print(f"Command: `python benchmarks/input_pipeline.py {' '.join(sys.argv[1:])}`  ")
    print(f"Machine: {common.machine()}  ")
    print(
        f"Load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}  "
    )
    print(
        f"Dataset: {FLAGS.dataset} train split, {n:,} examples, batch {batch}; "
        f"{FLAGS.rounds} rounds of {per_round} batches per stream\n"
    )
    print("| stream | images/s (median) | rounds |")
    print("|---|---:|---|")
    for mode, windows in rates.items():
        listed = ", ".join(f"{rate:,.0f}" for rate in windows)
        print(f"| {mode} | {statistics.median(windows):,.0f} | {listed} |")
    print("\n| resume at step | examples skipped | first batch after (s) |")
    print("|---:|---:|---:|")
    for step, seconds in first_batch.items():
        print(f"| {step} | {step * batch:,} | {seconds:.1f} |")


if __name__ == "__main__":
    app.run(main)
