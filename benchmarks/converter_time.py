"""Conversion time: bidense's lean LCE converter path vs ``convert_keras_model``.

    python benchmarks/converter_time.py
    python benchmarks/converter_time.py --model binary_resnet_e18 --size 224 --rounds 5

``export.to_lce(model)`` (``converter="lean"``) saves only the weights and the
serving function, then calls ``lce.convert_saved_model``;
``converter="keras"`` calls ``lce.convert_keras_model``, whose Keras save also
serializes a trace of every layer's call, which the converter does not use. Both
are timed on the same model in alternating rounds (the order swaps every round,
so load from other processes hits them alike); the median wall time of each is
printed, with the op sequences checked to be the same.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "binary_densenet28", "Registered model name.")
flags.DEFINE_integer("size", 32, "Square input size (32: CIFAR stem, 10 classes).")
flags.DEFINE_string(
    "switches",
    "growth_rate=16,initial_filters=16",
    "Builder switches as KEY=INT pairs (the default narrows BinaryDenseNet28, the "
    "width of benchmarks/train_speed.py's small group); empty for the registered "
    "width.",
)
flags.DEFINE_integer("rounds", 3, "Conversions per converter (median reported).")

CONVERTERS = ("lean", "keras")


def parse_switches(text: str) -> dict:
    switches = {}
    for pair in filter(None, text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            common.fail("converter_time.py", f"--switches: {pair!r} is not KEY=INT")
        switches[key] = int(value)
    return switches


def main(argv) -> None:
    if len(argv) > 1:
        common.fail("converter_time.py", f"unexpected arguments {argv[1:]}")
    if FLAGS.rounds < 1 or FLAGS.size < 1:
        common.fail("converter_time.py", "--rounds and --size must be positive")
    switches = parse_switches(FLAGS.switches)
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    import bidense
    from bidense import export

    if FLAGS.model not in bidense.list_models():
        common.fail(
            "converter_time.py",
            f"--model={FLAGS.model}: use one of {bidense.list_models()}",
        )
    classes = 1000 if FLAGS.size >= 50 else 10
    try:
        model = bidense.create_model(
            FLAGS.model,
            input_shape=(FLAGS.size, FLAGS.size, 3),
            num_classes=classes,
            **switches,
        )
    except (TypeError, ValueError) as error:
        common.fail("converter_time.py", str(error).splitlines()[0])
    seconds = {converter: [] for converter in CONVERTERS}
    ops = {}
    for round_index in range(FLAGS.rounds):
        order = CONVERTERS if round_index % 2 == 0 else CONVERTERS[::-1]
        for converter in order:
            start = time.perf_counter()
            flatbuffer = export.to_lce(model, converter=converter)
            seconds[converter].append(time.perf_counter() - start)
            ops[converter] = [op.type for op in export.read_ops(flatbuffer)]
            print(
                f"  round {round_index + 1} {converter}: "
                f"{seconds[converter][-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    same = "same" if ops["lean"] == ops["keras"] else "**different**"
    lean, keras = (statistics.median(seconds[c]) for c in CONVERTERS)
    print(f"Command: `python benchmarks/converter_time.py {' '.join(sys.argv[1:])}`  ")
    print(f"Machine: {common.machine()}  ")
    print(
        f"Model: {FLAGS.model} {switches or ''} at {FLAGS.size}x{FLAGS.size}x3, "
        f"{classes} classes; {FLAGS.rounds} rounds, op sequences {same}\n"
    )
    print("| converter | median s | all rounds (s) |")
    print("|---|---:|---|")
    for converter in CONVERTERS:
        runs = ", ".join(f"{s:.1f}" for s in seconds[converter])
        print(f"| {converter} | {statistics.median(seconds[converter]):.1f} | {runs} |")
    print(f"\nlean / keras: {lean / keras:.2f}")


if __name__ == "__main__":
    app.run(main)
