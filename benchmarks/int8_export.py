"""int8 export (export.py --int8) against the float export: size, accuracy, latency.

    python benchmarks/int8_export.py --workdir runs/bd28_fmnist     # a trained model
    python benchmarks/int8_export.py --pretrained binary_densenet28  # shipped weights
    python benchmarks/int8_export.py --models all --size 224         # the six models
    python benchmarks/int8_export.py --pretrained binary_densenet28 \
        --finetune_steps 1000 --finetune_learning_rate 1e-5         # + fine-tune

For each trained model (``--workdir``, repeatable as a comma-separated list) the
run's selected model is exported twice, float and int8 (ranges calibrated on
``--calibration_images`` images of the run's *training* split), plus int8 with
int8 input and output; each file's top-1 is measured with LCE's interpreter on
the run's whole test split (``--split``: another; the evaluation pipeline of
training), next to Keras' and two Keras copies that round as the file does (the
activations only; the activations and the weights). ``--finetune_steps N`` adds
an int8 file exported after an N-step quantization-aware fine-tune (export.py
--int8_finetune_steps). ``--pretrained`` does the same for bidense's shipped
Fashion-MNIST weights (``weights="fashion_mnist"``), on Fashion-MNIST: no
training needed to rerun it.

For each registered model (``--models``) random weights are built at
``--size`` x ``--size`` x 3 with 1000 classes. They have no data of their own, so
the BN statistics and the int8 ranges are calibrated on synthetic random-normal
images (sizes and ops do not depend on the ranges; accuracy means nothing here).

Every pair is timed in LCE's x86 interpreter (batch 1, 1 thread): the float and
int8 files alternate within each of ``--rounds`` rounds, so load from other
processes hits both alike; the 10th/50th/90th percentiles and the load average
are printed. x86 runs LCE's reference kernels: indicative only.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags, logging  # noqa: E402

import cli  # noqa: E402
from benchmarks import common  # noqa: E402

PROGRAM = "int8_export.py"
FLAGS = flags.FLAGS
flags.DEFINE_list("workdir", [], "train.py work dirs (trained models).")
flags.DEFINE_list(
    "pretrained", [], "Models with bidense's weights='fashion_mnist' (shipped)."
)
flags.DEFINE_list(
    "models", [], "Registered models with random weights ('all' = every one)."
)
flags.DEFINE_integer("size", 224, "Square input size of --models.")
flags.DEFINE_integer(
    "calibration_images", 1000, "Training images for the int8 ranges (--workdir)."
)
flags.DEFINE_float(
    "percentile",
    None,
    "Calibration percentile of the int8 ranges (100 = min/max; default: "
    "bidense.export.int8's).",
)
flags.DEFINE_integer(
    "test_images", 0, "Test images per accuracy (0 = the whole test split)."
)
flags.DEFINE_string(
    "split",
    None,
    "TFDS split the accuracies are measured on (default: the test split); e.g. "
    "train[55000:], the validation images of the shipped Fashion-MNIST weights, "
    "to choose fine-tuning settings without the test split.",
)
flags.DEFINE_integer(
    "finetune_steps",
    0,
    "Also export int8 after this many quantization-aware fine-tuning steps "
    "(export.py --int8_finetune_steps) and measure it; 0 = not.",
)
flags.DEFINE_float(
    "finetune_learning_rate",
    None,
    "Learning rate of --finetune_steps (default: bidense.export.qat's).",
)
flags.DEFINE_integer("rounds", 10, "Latency rounds (each runs float and int8 once).")
flags.DEFINE_integer("warmup", 2, "Untimed runs per file before timing.")
flags.DEFINE_string("save_dir", None, "Optional directory to keep the .tflite files.")


def latency_ms(flatbuffers: dict, shape) -> dict:
    """{label: [ms per run]}: single-image runs, alternating between the files."""
    import larq_compute_engine as lce
    import numpy as np

    interpreters = {
        k: lce.testing.Interpreter(fb, num_threads=1) for k, fb in flatbuffers.items()
    }
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    inputs = {}
    for k, it in interpreters.items():
        if it.input_types[0] == np.int8:
            s, z = it.input_scales[0], it.input_zero_points[0]
            inputs[k] = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        else:
            inputs[k] = x
        for _ in range(FLAGS.warmup):
            it.predict(inputs[k])
    times = {k: [] for k in interpreters}
    for r in range(FLAGS.rounds):
        # Swap the order every round: neither file always runs first.
        order = list(interpreters) if r % 2 == 0 else list(reversed(interpreters))
        for k in order:
            start = time.perf_counter()
            interpreters[k].predict(inputs[k])
            times[k].append(1000 * (time.perf_counter() - start))
    return times


def quantiles(ms: list[float]) -> list[float]:
    import numpy as np

    return [float(q) for q in np.percentile(ms, [10, 50, 90])]


def lce_top1(flatbuffer: bytes, data, n: int) -> tuple[float, int]:
    """Top-1 of the file on the first ``n`` test images (all if 0)."""
    from bidense.export.parity import lce_predict

    correct = seen = 0
    split = FLAGS.split or data.test_split
    for images, labels in data.batches(split, n or 2**62, 256, labels=True):
        correct += int((lce_predict(flatbuffer, images).argmax(-1) == labels).sum())
        seen += len(labels)
    return correct / seen, seen


def keras_top1(model, data, n: int) -> float:
    correct = seen = 0
    split = FLAGS.split or data.test_split
    for images, labels in data.batches(split, n or 2**62, 256, labels=True):
        p = model(images, training=False).numpy()
        correct += int((p.argmax(-1) == labels).sum())
        seen += len(labels)
    return correct / seen


def save(name: str, flatbuffer: bytes) -> None:
    if FLAGS.save_dir:
        os.makedirs(FLAGS.save_dir, exist_ok=True)
        with open(os.path.join(FLAGS.save_dir, name), "wb") as f:
            f.write(flatbuffer)


def size_row(label, model, files: dict, reports: dict) -> str:
    from bidense import export

    float_mib = len(files["float"]) / 2**20
    int8_mib = len(files["int8"]) / 2**20
    check = "pass" if reports["int8"].ok else "FAIL"
    ops = ", ".join(f"{op} {n}" for op, n in reports["int8"].int8.int8_ops.items())
    return (
        f"| {label} | {float_mib:.3f} | {int8_mib:.3f} | "
        f"{export.predicted_size_mib(model):.3f} | "
        f"{export.predicted_int8_size_mib(model):.3f} | "
        f"{int8_mib / export.predicted_int8_size_mib(model):.3f} | "
        f"{float_mib / int8_mib:.2f}x | {ops} | "
        f"{reports['int8'].bconv_ops} | {check} |"
    )


def trained(workdir: str, rows: dict) -> None:
    from bidense import export
    from bidense.training import evaluation
    from bidense.training.precision import to_float32

    path = evaluation.workdir_model(workdir, "selected")
    model = to_float32(evaluation.load_keras_model(path))
    data = export.model_data(model, workdir=workdir)
    measure_trained(model, data, os.path.basename(os.path.normpath(workdir)), rows)


def pretrained(name: str, rows: dict) -> None:
    import bidense
    from bidense import export

    model = bidense.create_model(name, weights="fashion_mnist")
    data = export.model_data(model, dataset=cli.dataset_of_weights("fashion_mnist"))
    measure_trained(model, data, "weights=fashion_mnist", rows)


def measure_trained(model, data, run: str, rows: dict) -> None:
    """Float and int8 exports of a trained ``model``: accuracy on ``data``'s whole
    test split, sizes, ranges and latency."""
    import tensorflow as tf

    from bidense import export
    from bidense.export import qat

    data.require(PROGRAM)
    files, reports = {}, {}
    start = time.perf_counter()
    files["float"], reports["float"] = export.export_model(model)
    for label, io in (("int8", False), ("int8 io", True)):
        files[label], reports[label] = export.export_int8(
            model,
            data.batches(data.train_split, FLAGS.calibration_images),
            int8_io=io,
            calibration_source=f"{data.name} {data.train_split}",
            percentile=FLAGS.percentile,
        )
    if FLAGS.finetune_steps:
        # As export.py: the training split from its start, as far as the steps
        # need (the shipped weights' validation images are its last 5,000).
        files["int8 ft"], reports["int8 ft"] = export.export_int8(
            model,
            lambda: data.batches(data.train_split, FLAGS.calibration_images),
            calibration_source=f"{data.name} {data.train_split}",
            percentile=FLAGS.percentile,
            finetune_steps=FLAGS.finetune_steps,
            finetune_images=lambda: data.batches(data.train_split, 2**62),
            finetune_learning_rate=FLAGS.finetune_learning_rate,
        )
        rows["ranges"].append(f"{model.name}: {reports['int8 ft'].int8.finetune}")
    label = f"{model.name} ({run})"
    print(
        f"[{time.perf_counter() - start:.0f}s] exported {label}",
        file=sys.stderr,
        flush=True,
    )
    for k, fb in files.items():
        save(f"{model.name}_{run}_{k.replace(' ', '_')}.tflite".replace("=", "_"), fb)
    keras = keras_top1(model, data, FLAGS.test_images)
    # The int8 file's own activation ranges in Keras, with float weights: how
    # much of the file's loss the activation grid alone explains (the converter
    # also rounds the BN-folded float weights to int8) ...
    ranges = reports["int8"].int8.ranges
    activations_only = keras_top1(
        export.int8.with_ranges(model, ranges), data, FLAGS.test_images
    )
    # ... and with the int8 weights too: what the fine-tune trains against.
    simulated = keras_top1(qat.simulated(model, ranges), data, FLAGS.test_images)
    top1 = {}
    for k, fb in files.items():
        top1[k], n = lce_top1(fb, data, FLAGS.test_images)
    tuned = (
        f" {top1['int8 ft']:.4f} | {100 * (top1['int8 ft'] - top1['float']):+.2f} |"
        if "int8 ft" in top1
        else " - | - |"
    )
    rows["accuracy"].append(
        f"| {label} | {data.name} {FLAGS.split or data.test_split} | {n} | "
        f"{keras:.4f} | {activations_only:.4f} | {simulated:.4f} | "
        f"{top1['float']:.4f} | {top1['int8']:.4f} | {top1['int8 io']:.4f} | "
        f"{100 * (top1['int8'] - top1['float']):+.2f} | "
        f"{100 * (top1['int8 io'] - top1['float']):+.2f} |" + tuned
    )
    rows["size"].append(size_row(label, model, files, reports))
    rows["ranges"].append(f"{label}: {reports['int8'].int8.calibration}")
    io = reports["int8 io"].int8
    rows["ranges"].append(
        f"{label}: int8 input scale {io.input_quantization[0]:.6g}, zero point "
        f"{io.input_quantization[1]}; output scale {io.output_quantization[0]:.6g}, "
        f"zero point {io.output_quantization[1]}"
    )
    latency(label, files, tuple(model.input_shape[1:]), rows)
    tf.keras.backend.clear_session()


def random_weights(name: str, rows: dict) -> None:
    import tensorflow as tf

    import bidense
    from bidense import export

    shape = (FLAGS.size, FLAGS.size, 3)
    tf.keras.utils.set_random_seed(0)
    model = bidense.create_model(name, input_shape=shape, num_classes=1000)
    export.calibrate_batchnorm(model, export.random_images(16, shape, seed=1))
    calibration = export.random_images(32, shape, seed=2)
    files, reports = {}, {}
    start = time.perf_counter()
    files["float"], reports["float"] = export.export_model(model)
    files["int8"], reports["int8"] = export.export_int8(
        model, calibration, calibration_source="random normal"
    )
    print(
        f"[{time.perf_counter() - start:.0f}s] exported {name} {FLAGS.size}",
        file=sys.stderr,
        flush=True,
    )
    for k, fb in files.items():
        save(f"{name}_{FLAGS.size}_{k}.tflite", fb)
    label = f"{name} {FLAGS.size}"
    rows["size"].append(size_row(label, model, files, reports))
    rows["ops"].append(f"{label} int8: {reports['int8'].op_counts}")
    latency(label, files, shape, rows)
    tf.keras.backend.clear_session()


def latency(label: str, files: dict, shape, rows: dict) -> None:
    ms = {k: quantiles(v) for k, v in latency_ms(files, shape).items()}
    for k, (p10, p50, p90) in ms.items():
        rows["latency"].append(
            f"| {label} | {k} | {p10:.1f} | {p50:.1f} | {p90:.1f} | "
            f"{p50 / ms['float'][1]:.2f} |"
        )
        print(rows["latency"][-1], file=sys.stderr, flush=True)


def main(argv) -> None:
    if len(argv) > 1:
        common.fail(PROGRAM, f"unexpected arguments {argv[1:]}")
    if not (FLAGS.workdir or FLAGS.pretrained or FLAGS.models):
        common.fail(
            PROGRAM,
            "give --workdir DIR[,DIR], --pretrained NAME[,NAME] and/or "
            "--models NAME[,NAME|all]",
        )
    if FLAGS.rounds < 1 or FLAGS.calibration_images < 1:
        common.fail(PROGRAM, "--rounds and --calibration_images must be positive")
    if FLAGS.finetune_steps < 0 or (FLAGS.finetune_learning_rate or 1) <= 0:
        common.fail(
            PROGRAM, "--finetune_steps must be >= 0, --finetune_learning_rate > 0"
        )
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    import tensorflow as tf

    import bidense
    from bidense import weights

    tf.get_logger().setLevel("ERROR")
    models = bidense.list_models() if FLAGS.models == ["all"] else FLAGS.models
    shipped = [m for m in FLAGS.pretrained if m not in weights.FASHION_MNIST_WEIGHTS]
    if shipped:
        common.fail(
            PROGRAM,
            f"--pretrained {shipped[0]}: no shipped weights; choose from "
            f"{sorted(weights.FASHION_MNIST_WEIGHTS)}",
        )
    unknown = [m for m in models if m not in bidense.list_models()]
    if unknown:
        common.fail(PROGRAM, f"unknown models {unknown}")
    for workdir in FLAGS.workdir:
        if not os.path.isdir(workdir):
            common.fail(PROGRAM, f"no work dir {workdir}")
    load_before = os.getloadavg()
    rows = {k: [] for k in ("accuracy", "size", "ranges", "ops", "latency")}
    for workdir in FLAGS.workdir:
        trained(workdir, rows)
    for name in FLAGS.pretrained:
        pretrained(name, rows)
    for name in models:
        random_weights(name, rows)

    print(f"Machine: {common.machine()}")
    before, after = (
        ", ".join(f"{x:.1f}" for x in load) for load in (load_before, os.getloadavg())
    )
    print(f"Load average (1, 5, 15 min) before: {before}; after: {after}\n")
    if rows["accuracy"]:
        print(
            "| model | split | images | Keras top-1 | Keras, int8 activations "
            "only | Keras, int8 weights and activations | LCE float | LCE int8 "
            "| LCE int8, int8 I/O | int8 - float, pp "
            "| int8 I/O - float, pp | LCE int8, fine-tuned | fine-tuned - float, "
            "pp |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows["accuracy"]) + "\n")
    print(
        "| model | float MiB | int8 MiB | model_stats MiB (float) | predicted int8 MiB "
        "| int8 / predicted | float / int8 | int8 ops | LceBconv2d | int8 check |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---|")
    print("\n".join(rows["size"]) + "\n")
    print(
        f"x86 latency, ms per image ({FLAGS.rounds} interleaved rounds, batch 1, "
        "1 thread, LCE reference kernels):\n"
    )
    print("| model | file | p10 | median | p90 | median / float median |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows["latency"]) + "\n")
    for line in rows["ranges"] + rows["ops"]:
        print(line)


if __name__ == "__main__":
    app.run(main)
