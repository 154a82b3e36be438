"""LCE latency, size and op graph: bidense vs larq-zoo vs the float twin.

    python benchmarks/latency.py                       # DN28 and ResNetE18, 224 and 32
    python benchmarks/latency.py --models binary_densenet45 --sizes 224 --repeats 5

For each model and input size, four flatbuffers are built from random weights
(latency does not depend on weight values) and timed in one run, side by side:

* ``bidense``       the registered model (default pad_value=1.0), LCE converter;
* ``bidense pad0``  the same with pad_value=0.0 (larq-zoo's padding), LCE converter;
* ``larq-zoo``      the same architecture from larq_zoo.literature, LCE converter;
* ``fp twin``       binary=False (float convs, no quantizers), standard
                    tf.lite.TFLiteConverter: what one would ship without LCE.

Each is run in LCE's interpreter (it also runs builtin ops) with batch 1 at 1 and
2 threads; the median of ``--repeats`` timed single-image runs after
``--warmup`` runs is reported. The four models are timed in interleaved rounds
so that load from other processes hits them alike.

On x86 LCE has only reference kernels for its binary ops (the optimized kernels
are ARM64-only), so binary models are *slower* here than on a phone, while the
float twin uses TFLite's optimized x86 kernels: compare bidense with larq-zoo
(same kernels), and measure ARM numbers with
``lce_benchmark_model --graph=m.tflite --num_threads=N`` on the device.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "models", ["binary_densenet28", "binary_resnet_e18"], "Registered model names."
)
flags.DEFINE_list("sizes", ["224", "32"], "Square input sizes.")
flags.DEFINE_list("threads", ["1", "2"], "Interpreter thread counts.")
flags.DEFINE_integer("repeats", 10, "Timed runs per measurement (median reported).")
flags.DEFINE_integer("warmup", 2, "Untimed runs before timing.")
flags.DEFINE_list(
    "variants", ["bidense", "bidense pad0", "larq-zoo", "fp twin"], "Which to build."
)
flags.DEFINE_string("save_dir", None, "Optional directory to keep the .tflite files.")

# bidense name -> larq-zoo builder (ResNetE34 has no larq-zoo counterpart).
ZOO = {
    "binary_densenet28": "BinaryDenseNet28",
    "binary_densenet37": "BinaryDenseNet37",
    "binary_densenet37_dilated": "BinaryDenseNet37Dilated",
    "binary_densenet45": "BinaryDenseNet45",
    "binary_resnet_e18": "BinaryResNetE18",
}


def build(variant: str, name: str, size: int):
    """(Keras model, flatbuffer) of one variant; None if it does not exist.

    BN statistics are calibrated on Fashion-MNIST images first: with Keras'
    initial ones (zero mean and shift) the converter drops the BN shifts' ADD ops,
    which a trained model has, and the graph would look cheaper than it is.
    """
    import larq_zoo

    import bidense
    from bidense import export

    # ImageNet head at 224; CIFAR-10-sized head (and larq-zoo's CIFAR stem) below 50.
    kw = {"input_shape": (size, size, 3), "num_classes": 1000 if size >= 50 else 10}
    if variant == "bidense":
        model = bidense.create_model(name, **kw)
    elif variant == "bidense pad0":
        model = bidense.create_model(name, pad_value=0.0, **kw)
    elif variant == "larq-zoo":
        if name not in ZOO:
            return None
        model = getattr(larq_zoo.literature, ZOO[name])(weights=None, **kw)
    elif variant == "fp twin":
        model = bidense.create_model(name, binary=False, **kw)
        calibrate(model, size)
        return model, export.to_tflite(model)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    calibrate(model, size)
    return model, export.to_lce(model)


def calibrate(model, size: int) -> None:
    from bidense import export

    images = export.fashion_mnist_images(8, (size, size, 3), offset=1000)
    export.calibrate_batchnorm(model, images)


def latencies_ms(flatbuffers: list[bytes], shape, threads: int) -> list[float]:
    """Median single-image latency of each flatbuffer in the LCE interpreter.

    The runs are interleaved (one run of each model per round), so that load from
    other processes on a shared machine hits all models alike.
    """
    import larq_compute_engine as lce
    import numpy as np

    interpreters = [
        lce.testing.Interpreter(fb, num_threads=threads) for fb in flatbuffers
    ]
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    for interpreter in interpreters:
        for _ in range(FLAGS.warmup):
            interpreter.predict(x)
    times = [[] for _ in interpreters]
    for _ in range(FLAGS.repeats):
        for interpreter, samples in zip(interpreters, times, strict=True):
            start = time.perf_counter()
            interpreter.predict(x)
            samples.append(time.perf_counter() - start)
    return [1000 * statistics.median(samples) for samples in times]


def main(argv) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    import tensorflow as tf

    from bidense import export

    tf.get_logger().setLevel("ERROR")
    load_before = os.getloadavg()[0]
    threads = [int(t) for t in FLAGS.threads]
    header = (
        "| model | input | variant | .tflite MiB | predicted MiB | LceBconv2d "
        "| float ops | " + " | ".join(f"ms, {t} thr" for t in threads) + " |"
    )
    rows, graphs = [header, "|" + "---|" * (7 + len(threads))], []
    for name in FLAGS.models:
        for size in (int(s) for s in FLAGS.sizes):
            built = {}
            for variant in FLAGS.variants:
                start = time.perf_counter()
                result = build(variant, name, size)
                if result is not None:
                    built[variant] = result
                    print(
                        f"[{time.perf_counter() - start:.0f}s] built {name} "
                        f"{size} {variant}",
                        file=sys.stderr,
                        flush=True,
                    )
                tf.keras.backend.clear_session()
            flatbuffers = [flatbuffer for _, flatbuffer in built.values()]
            shape = (size, size, 3)
            ms = {t: latencies_ms(flatbuffers, shape, t) for t in threads}
            for i, (variant, (model, flatbuffer)) in enumerate(built.items()):
                ops = export.read_ops(flatbuffer)
                counts = export.op_counts(ops)
                lce_ops = sum(n for op, n in counts.items() if op.startswith("Lce"))
                rows.append(
                    f"| {name} | {size} | {variant} | {len(flatbuffer) / 2**20:.2f} "
                    f"| {export.predicted_size_mib(model):.2f} "
                    f"| {counts.get('LceBconv2d', 0)} | {len(ops) - lce_ops} | "
                    + " | ".join(f"{ms[t][i]:.1f}" for t in threads)
                    + " |"
                )
                graphs.append(f"{name} {size} {variant}: {counts}")
                print(rows[-1], file=sys.stderr, flush=True)
                if FLAGS.save_dir:
                    os.makedirs(FLAGS.save_dir, exist_ok=True)
                    slug = f"{name}_{size}_{variant.replace(' ', '_')}.tflite"
                    with open(os.path.join(FLAGS.save_dir, slug), "wb") as f:
                        f.write(flatbuffer)
    print(f"Machine: {common.machine()}")
    print(
        f"repeats={FLAGS.repeats} (interleaved), warmup={FLAGS.warmup}, batch 1, "
        f"median; load average before / after: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print("\n".join(rows))
    print("\nOp counts:")
    print("\n".join(graphs))


if __name__ == "__main__":
    app.run(main)
