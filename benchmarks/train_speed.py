"""Training speed: bidense as train.py runs it vs larq-zoo's plain fit vs the FP twin.

    python benchmarks/train_speed.py --json run.json      # all groups, prints tables
    python benchmarks/train_speed.py --groups binary_resnet_e18:small --rounds 3
    python benchmarks/train_speed.py --from_json run.json --nomemory  # re-render

The script prints its Markdown tables and edits no file unless asked:
``--json PATH`` keeps the raw results (re-rendered later with ``--from_json``),
``--write_doc PATH`` writes the tables into PATH, between the lines
``<!-- train_speed:begin -->`` and ``<!-- train_speed:end -->`` if PATH has them
(each on a line of its own), or as a new file; a file without those lines is
never overwritten.

For each group (model x width; inputs 32x32x3, 10 classes, batch 64) these
contenders are built in one process and timed in interleaved rounds, so that any
load from other processes hits them alike:

* ``larq_zoo``      larq-zoo's architecture (its own building code; the small
                    ResNetE only changes its ``spec`` widths), compiled like
                    larq-zoo's trainer (Adam, top-1/top-5), plain ``model.fit`` on
                    preprocessed in-memory batches;
* ``bidense``       what ``train.py --model M --dataset cifar10 --config.batch_size=64``
                    builds: ``experiment.setup`` (the recipe, its optimizer and
                    schedule, the tf.data pipeline with caching, pad-crop and flips,
                    on TFDS mock CIFAR-10 images) and ``fit`` with train.py's per-step
                    callback; all defaults but the precision, float32;
* ``bidense_fp``    the same with ``--config.model.binary=false`` (the FP twin);
* ``bidense_bf16``  ``--config.precision=mixed_bfloat16`` (changes numerics; what
                    the default ``auto`` picks on CPUs with native bfloat16);
* ``bidense_xla``   opt-in ``--config.jit_compile=true``;
* ``bidense_plain`` (diagnostic, not in the default list) bidense's default model
                    trained exactly like ``larq_zoo`` (same compile, same data,
                    plain ``fit``): splits a gap to larq-zoo into the model's
                    share and the share of train.py's setup around it;
* ``bidense_pad0``  (diagnostic, not in the default list) ``model.pad_value=0.0``:
                    larq-zoo's zero padding instead of bidense's LCE-friendly 1.0,
                    to measure what the explicit ``Pad`` (and its ``Slice``
                    gradient) costs in training.

bidense's contenders set ``dataset.cache=true``: what train.py does on real
CIFAR-10 (mock data has no known size, so ``cache="auto"`` would regenerate the
random images in Python every epoch).

A round runs each contender's ``fit`` for 1 + W steps and times steps 2..W+1 (the
first step of every ``fit`` pays for iterator creation); W is chosen from a
probe step so a window lasts about ``--window_seconds``. Images/s is the median
over rounds. Evaluation throughput (``model.evaluate``, same windowing) and the
input pipeline alone (iterating bidense's training stream) are measured after.
Peak memory is the peak RSS of a separate process per contender that builds it
and trains 3 steps (TensorFlow's CPU allocator has no per-model accounting).
``--profile`` adds where each training step spends its time: the TF profiler's op
time per step by op type, side by side for larq-zoo, bidense and the FP twin, so
that every gap between them is attributed to ops.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "groups",
    [
        "binary_resnet_e18:full",
        "binary_resnet_e18:small",
        "binary_densenet28:full",
        "binary_densenet28:small",
    ],
    "model:width groups; width is full or small.",
)
flags.DEFINE_list(
    "contenders",
    ["larq_zoo", "bidense", "bidense_fp", "bidense_bf16", "bidense_xla"],
    "Which contenders to time.",
)
flags.DEFINE_integer("rounds", 5, "Timed rounds per contender (median reported).")
flags.DEFINE_float("window_seconds", 6.0, "Target length of one timed window.")
flags.DEFINE_boolean("memory", True, "Measure peak RSS per contender (subprocess).")
flags.DEFINE_boolean(
    "profile", True, "Profile the training steps (larq_zoo, bidense, bidense_fp) by op."
)
flags.DEFINE_string(
    "write_doc",
    None,
    "Also write the tables to this Markdown file: between its train_speed:begin/end "
    "markers, or as a new file. A file without the markers is refused.",
)
flags.DEFINE_string("json", None, "Also write the raw results to this JSON file.")
flags.DEFINE_string(
    "from_json",
    None,
    "Reuse the timings of an earlier --json run (e.g. to measure memory while other "
    "work runs: peak RSS does not depend on load, images/s does).",
)
# Internal: run one group (or one memory probe) in a fresh process.
flags.DEFINE_string("_group", None, "Run one group and print its JSON.")
flags.DEFINE_string("_memory_of", None, "contender: build, train 3 steps, print RSS.")

BATCH = 64
SIZE = 32
CLASSES = 10
MOCK_EXAMPLES = 1024
EVAL_BATCHES = 8
# Small widths: the laptop recipes' ResNetE widths; BinaryDenseNet at 1/4 width.
SMALL = {
    "binary_resnet_e18": {"filters": (16, 32, 64, 128)},
    "binary_densenet28": {"growth_rate": 16, "initial_filters": 16},
}
BEGIN, END = "<!-- train_speed:begin -->", "<!-- train_speed:end -->"


# -- contenders ---------------------------------------------------------------


def _zoo_model(name: str, width: str):
    import larq_zoo.literature.densenet as zoo_densenet
    import larq_zoo.literature.resnet_e as zoo_resnet_e
    from zookeeper import configure, factory

    values = {"input_shape": (SIZE, SIZE, 3), "num_classes": CLASSES, "weights": None}
    if name == "binary_resnet_e18":
        factory_class = zoo_resnet_e.BinaryResNetE18Factory
        if width == "small":
            # larq-zoo's ResNetE hard-codes 64..512 in ``spec``; its
            # ``initial_filters`` field alone breaks the residual adds.
            filters = SMALL[name]["filters"]

            @factory
            class SmallResNetE18(factory_class):
                @property
                def spec(self):
                    return ([2, 2, 2, 2], list(filters))

            factory_class = SmallResNetE18
            values["initial_filters"] = filters[0]
    elif name == "binary_densenet28":
        factory_class = zoo_densenet.BinaryDenseNet28Factory
        if width == "small":
            values.update(SMALL[name])
    else:
        raise ValueError(f"no larq-zoo counterpart configured for {name}")
    instance = factory_class()
    configure(instance, values)
    return instance.build()


def _bidense_model(name: str, width: str):
    import bidense

    switches = SMALL[name] if width == "small" else {}
    return bidense.create_model(
        name, input_shape=(SIZE, SIZE, 3), num_classes=CLASSES, **switches
    )


class _PlainFitContender:
    """A model with larq-zoo's plain ``fit`` on preprocessed in-memory batches."""

    def __init__(self, name: str, width: str, build_model=_zoo_model):
        import numpy as np
        import tensorflow as tf

        tf.keras.utils.set_random_seed(0)
        self.model = build_model(name, width)
        self.model.compile(
            optimizer=tf.keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=[
                "sparse_categorical_accuracy",
                "sparse_top_k_categorical_accuracy",
            ],
        )
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (MOCK_EXAMPLES, SIZE, SIZE, 3)).astype("float32")
        labels = rng.integers(0, CLASSES, MOCK_EXAMPLES)
        data = tf.data.Dataset.from_tensor_slices((images, labels))
        self.train_ds = (
            data.shuffle(MOCK_EXAMPLES).repeat().batch(BATCH).prefetch(tf.data.AUTOTUNE)
        )
        self.eval_ds = data.take(EVAL_BATCHES * BATCH).batch(BATCH).cache().repeat()
        self.callbacks = []


class _BidenseContender:
    """What train.py builds (experiment.setup) on mock CIFAR-10, with overrides."""

    OVERRIDES = {
        "bidense": {},
        "bidense_fp": {"model.binary": "false"},
        "bidense_bf16": {"precision": "mixed_bfloat16"},
        "bidense_xla": {"jit_compile": "true"},
        # Diagnostic, not a default: larq-zoo's zero padding (a different model).
        "bidense_pad0": {"model.pad_value": "0.0"},
    }

    def __init__(self, name: str, width: str, contender: str, workdir: str):
        from bidense.training import callbacks as cb
        from bidense.training import config as config_lib
        from bidense.training import experiment

        cfg = config_lib.load_recipe(os.path.join(ROOT, "configs"), name, "cifar10")
        # cache=true: train.py caches real CIFAR-10 (its size is known, 150 MB);
        # TFDS's mock data has no size, so "auto" would not, and every epoch would
        # regenerate the random images in Python (a mock artefact, not a cost).
        # float32 unless the contender says otherwise: the recipes' default
        # precision ("auto") would be bfloat16 on CPUs that have it, and
        # bidense_bf16 is the contender for that.
        overrides = {
            "batch_size": str(BATCH),
            "dataset.cache": "true",
            # No validation split: this times training steps, and the mock
            # source's 1,024 images cannot spare CIFAR-10's default 5,000.
            "dataset.validation_examples": "0",
            "precision": "float32",
            **self.OVERRIDES[contender],
        }
        if width == "small":
            for key, value in SMALL[name].items():
                overrides[f"model.{key}"] = json.dumps(value).replace(" ", "")
        cfg = config_lib.apply_overrides(cfg, list(overrides.items()))
        self.exp = experiment.setup(cfg, workdir)
        self.model = self.exp.model
        self.train_ds = self.exp.train_ds
        # The model's evaluation rate, not the mock source's: the evaluation
        # batches (preprocessed by bidense) are materialized once.
        self.eval_ds = self.exp.test_ds.take(EVAL_BATCHES).cache().repeat()
        # train.py's per-step callback (the others act at epoch ends only).
        self.callbacks = [cb.StopOnNonFinite(self.exp.steps_per_epoch, workdir)]


def build_contender(contender: str, name: str, width: str, workdir: str):
    if contender == "larq_zoo":
        return _PlainFitContender(name, width)
    if contender == "bidense_plain":
        return _PlainFitContender(name, width, build_model=_bidense_model)
    return _BidenseContender(name, width, contender, workdir)


# -- timing -------------------------------------------------------------------


class _WindowTimer:
    """Wall time from the end of the first batch to the end of the last."""

    def __init__(self, hook: str):
        import tensorflow as tf

        timer = self

        class Callback(tf.keras.callbacks.Callback):
            def _mark(self, batch, logs=None):
                timer.marks.append(time.perf_counter())

        self.marks: list[float] = []
        self.callback = Callback()
        setattr(self.callback, f"on_{hook}_batch_end", self.callback._mark)

    def seconds(self) -> float:
        return self.marks[-1] - self.marks[0]


def train_window(contender, steps: int) -> float:
    """Images/s over steps 2..steps+1 of one ``fit`` call."""
    timer = _WindowTimer("train")
    contender.model.fit(
        contender.train_ds,
        epochs=1,
        steps_per_epoch=steps + 1,
        callbacks=[*contender.callbacks, timer.callback],
        verbose=0,
    )
    return steps * BATCH / timer.seconds()


def eval_window(contender, steps: int) -> float:
    timer = _WindowTimer("test")
    contender.model.evaluate(
        contender.eval_ds, steps=steps + 1, callbacks=[timer.callback], verbose=0
    )
    return steps * BATCH / timer.seconds()


def pipeline_rate(dataset, batches: int = 200) -> float:
    iterator = iter(dataset)
    for _ in range(10):  # fill the cache / shuffle buffer first
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


@contextlib.contextmanager
def _mock_data_and_tmpdir():
    """TFDS mock data (offline; CIFAR-10's shapes) and a scratch directory."""
    import tensorflow_datasets as tfds

    with (
        tfds.testing.mock_data(
            num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE
        ),
        tempfile.TemporaryDirectory() as tmp,
    ):
        yield tmp


def run_group(group: str) -> dict:
    """Builds every contender of ``model:width`` and times them interleaved."""
    name, width = group.split(":")
    results = {"group": group, "contenders": {}}
    with _mock_data_and_tmpdir() as tmp:
        contenders, build_seconds = {}, {}
        for index, contender in enumerate(FLAGS.contenders):
            start = time.perf_counter()
            built = build_contender(
                contender, name, width, os.path.join(tmp, str(index))
            )
            # Warm-up: traces (and for XLA compiles) the train step; also a probe.
            train_window(built, 1)
            probe = train_window(built, 2)
            build_seconds[contender] = time.perf_counter() - start
            contenders[contender] = (built, probe)
            print(f"  {group} {contender}: ready, probe {probe:.1f} img/s", flush=True)
        # One window length for all: the slowest contender's ~window_seconds.
        slowest = min(probe for _, probe in contenders.values())
        steps = max(2, round(FLAGS.window_seconds * slowest / BATCH))
        rates = {contender: [] for contender in contenders}
        order = list(contenders)
        for round_index in range(FLAGS.rounds):
            # Rotate the order so no contender always runs right after another.
            shift = round_index % len(order)
            for contender in order[shift:] + order[:shift]:
                rates[contender].append(train_window(contenders[contender][0], steps))
        eval_rates = {contender: [] for contender in contenders}
        eval_steps = max(2, steps * 2)
        for _ in range(max(3, FLAGS.rounds // 2)):
            for contender in order:
                eval_rates[contender].append(
                    eval_window(contenders[contender][0], eval_steps)
                )
        for contender in order:
            results["contenders"][contender] = {
                "train_images_per_second": statistics.median(rates[contender]),
                "train_windows": rates[contender],
                "eval_images_per_second": statistics.median(eval_rates[contender]),
                "setup_and_warmup_seconds": build_seconds[contender],
            }
        results["window_steps"] = steps
        results["eval_window_steps"] = eval_steps
        if "bidense" in contenders:
            results["pipeline_images_per_second"] = pipeline_rate(
                contenders["bidense"][0].train_ds
            )
        if FLAGS.profile:
            results["profile"] = {
                contender: profile_ops(contenders[contender][0], steps, tmp, contender)
                for contender in PROFILED
                if contender in contenders
            }
    return results


PROFILED = ("larq_zoo", "bidense", "bidense_fp")


def profile_ops(contender, steps: int, tmp: str, tag: str) -> dict:
    """Op time (ms per training step) by op type, over one window of ``steps``.

    The sum over TensorFlow's compute threads: with 2 threads it can exceed the
    step's wall time. oneDNN's ``_MklNative`` prefix is dropped so that op types
    read the same with and without it.
    """
    import collections
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = os.path.join(tmp, "profile", tag)
    tf.profiler.experimental.start(logdir)
    train_window(contender, steps)
    tf.profiler.experimental.stop()
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    by_type = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            # TensorFlow's executor threads; "python" and tf.data lines are not ops.
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                op = plane.event_metadata[event.metadata_id].name
                if op == "ExecutorState::Process":
                    continue
                op_type = op.rsplit(":", 1)[-1].replace("_MklNative", "")
                by_type[op_type] += event.duration_ps
    return {op: ps / 1e9 / steps for op, ps in by_type.most_common()}


def memory_probe(spec: str) -> int:
    """Peak RSS (KiB) of building ``contender`` and training it for 3 steps."""
    contender, name, width = spec.split(":")
    with _mock_data_and_tmpdir() as tmp:
        built = build_contender(contender, name, width, tmp)
        train_window(built, 2)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- driver -------------------------------------------------------------------


def _child(args: list[str]) -> str:
    command = [sys.executable, os.path.abspath(__file__), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def render(
    groups: list[dict], memory: dict, command: str, load: tuple, machine_line: str
) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine_line}  ",
        f"Load average before / after: {load[0]:.2f} / {load[1]:.2f}",
        "",
        "| group | contender | train img/s | x larq-zoo | x FP twin | eval img/s "
        "| peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in groups:
        found = group["contenders"]
        zoo = found.get("larq_zoo", {}).get("train_images_per_second")
        twin = found.get("bidense_fp", {}).get("train_images_per_second")
        for contender, row in found.items():
            rate = row["train_images_per_second"]
            rss = memory.get(f"{contender}:{group['group']}")
            cells = [
                group["group"],
                contender,
                f"{rate:.1f}",
                f"{rate / zoo:.2f}" if zoo else "",
                f"{rate / twin:.2f}" if twin else "",
                f"{row['eval_images_per_second']:.0f}",
                f"{rss / 1024:.0f}" if rss else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Windows (images/s of every timed round, in order):", ""]
    for group in groups:
        for contender, row in group["contenders"].items():
            windows = ", ".join(f"{r:.1f}" for r in row["train_windows"])
            lines.append(
                f"- {group['group']} {contender}: {windows} "
                f"({group['window_steps']} steps per window)"
            )
    lines += [
        "",
        "Input pipeline alone (bidense's training stream, mock CIFAR-10):",
        "",
    ]
    for group in groups:
        if "pipeline_images_per_second" in group:
            lines.append(
                f"- {group['group']}: {group['pipeline_images_per_second']:.0f} img/s"
            )
    for group in groups:
        if group.get("profile"):
            lines += ["", *render_profile(group)]
    return "\n".join(lines)


def render_profile(group: dict, top: int = 10) -> list[str]:
    """Op time per training step (ms, summed over compute threads) by op type."""
    profiles = group["profile"]
    names = list(profiles)
    ops = sorted(
        {op for ms in profiles.values() for op in ms},
        key=lambda op: -max(ms.get(op, 0.0) for ms in profiles.values()),
    )
    lines = [
        f"Op time per training step, {group['group']} (ms, TF profiler, summed "
        "over compute threads):",
        "",
        "| op type | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for op in ops[:top]:
        row = [f"{profiles[n].get(op, 0.0):.1f}" for n in names]
        lines.append(f"| {op} | " + " | ".join(row) + " |")
    rest = [sum(ms for op, ms in profiles[n].items() if op in ops[top:]) for n in names]
    lines.append("| all other ops | " + " | ".join(f"{r:.1f}" for r in rest) + " |")
    totals = [sum(profiles[n].values()) for n in names]
    lines.append("| **total** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    return lines


def fail(message: str) -> None:
    common.fail("train_speed.py", message)


def check_output(flag: str, path: str) -> None:
    """Refuses an output path before anything is timed (a run takes many minutes)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        fail(f"--{flag}={path}: directory {directory} does not exist")
    if os.path.isdir(path):
        fail(f"--{flag}={path} is a directory; pass a file")


def marked_section(doc: str) -> tuple[list[str], list[str]] | None:
    """(lines up to BEGIN, lines from END) of ``doc``; None unless both markers
    stand on lines of their own, once each, in that order."""
    lines = doc.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        return None
    return lines[: begins[0] + 1], lines[ends[0] :]


def check_doc_target(path: str) -> None:
    check_output("write_doc", path)
    if os.path.exists(path):
        with open(path) as f:
            doc = f.read()
        if marked_section(doc) is None:
            fail(
                f"--write_doc={path} exists without one {BEGIN} line and one {END} "
                "line after it; add them where the tables should go, or pass a new "
                "file"
            )


def read_results(path: str) -> dict:
    """The results of an earlier ``--json`` run."""
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as error:
        fail(f"--from_json={path}: cannot read it as JSON ({error})")
    keys = ("groups", "command", "load")
    if not isinstance(results, dict) or any(key not in results for key in keys):
        fail(f"--from_json={path} is not a --json file of this script")
    return results


def write_doc(path: str, text: str) -> None:
    """Puts ``text`` between the marker lines of ``path``, or creates ``path``.

    Only the marked section is replaced, so hand-written text around it (and any
    file without markers) is never touched.
    """
    head, tail = [f"{BEGIN}\n"], [f"{END}\n"]
    if os.path.exists(path):
        with open(path) as f:
            head, tail = marked_section(f.read())
    with open(path, "w") as f:
        f.write("".join([*head, text, "\n", *tail]))


def main(argv) -> None:
    del argv
    if FLAGS._group:
        print(json.dumps(run_group(FLAGS._group)))
        return
    if FLAGS._memory_of:
        print(json.dumps(memory_probe(FLAGS._memory_of)))
        return
    if FLAGS.json:
        check_output("json", FLAGS.json)
    if FLAGS.write_doc:
        check_doc_target(FLAGS.write_doc)
    command = "python benchmarks/train_speed.py " + " ".join(sys.argv[1:])
    load_before = os.getloadavg()[0]
    passthrough = [
        f"--contenders={','.join(FLAGS.contenders)}",
        f"--rounds={FLAGS.rounds}",
        f"--window_seconds={FLAGS.window_seconds}",
        "--profile" if FLAGS.profile else "--noprofile",
    ]
    if FLAGS.from_json:
        earlier = read_results(FLAGS.from_json)
        groups, command, load = earlier["groups"], earlier["command"], earlier["load"]
        memory = earlier.get("memory", {})
        # The machine the timings were taken on, not the one re-rendering them;
        # a JSON file that does not name it is taken to come from this machine.
        machine_line = earlier.get("machine") or common.machine()
    else:
        groups, memory = [], {}
        for group in FLAGS.groups:
            print(f"{group}: timing {', '.join(FLAGS.contenders)}", flush=True)
            groups.append(_last_json(_child([f"--_group={group}", *passthrough])))
            for contender, row in groups[-1]["contenders"].items():
                print(f"  {contender}: {row['train_images_per_second']:.1f} img/s")
        load = (load_before, os.getloadavg()[0])
        machine_line = common.machine()
    if FLAGS.memory:
        for group in groups:
            for contender in group["contenders"]:
                spec = f"{contender}:{group['group']}"
                if spec in memory:  # measured by the --json run
                    continue
                memory[spec] = _last_json(_child([f"--_memory_of={spec}"]))
                print(f"  peak RSS {spec}: {memory[spec] / 1024:.0f} MiB", flush=True)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(
                {
                    "groups": groups,
                    "memory": memory,
                    "command": command,
                    "load": load,
                    "machine": machine_line,
                },
                f,
                indent=2,
            )
    if FLAGS.from_json:
        command += (
            f"` then `python benchmarks/train_speed.py --from_json={FLAGS.from_json}"
        )
    text = render(groups, memory, command, load, machine_line)
    print(text)
    if FLAGS.write_doc:
        write_doc(FLAGS.write_doc, text)


if __name__ == "__main__":
    app.run(main)
