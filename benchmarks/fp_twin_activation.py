"""Which float nonlinearity should the full-precision twin (binary=False) use?

Trains, in one run and with the same data order, a binary model and its
full-precision twins with ReLU, hard-tanh and no nonlinearity ("linear", the straw
man) on real Fashion-MNIST, and prints their test accuracy.

    python benchmarks/fp_twin_activation.py --epochs 2

Reads the original IDX files of Debian's dataset-fashion-mnist package directly,
so that the comparison does not depend on the input pipeline.
"""

import argparse
import gzip
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bidense  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MODELS = {
    "binary_resnet_e18": {"filters": (16, 32, 64, 128)},
    "binary_densenet28": {"growth_rate": 16, "initial_filters": 32},
}
VARIANTS = {
    "binary": {},
    "fp relu": {"binary": False, "fp_activation": "relu"},
    "fp hard_tanh": {"binary": False, "fp_activation": "hard_tanh"},
    "fp linear": {"binary": False, "fp_activation": "linear"},
}


def read_idx(name):
    with gzip.open(os.path.join(DATA_DIR, name)) as file:
        data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load():
    def images(name):
        x = read_idx(name).astype("float32")[..., None]
        return (x - 72.94) / 90.02  # Fashion-MNIST train mean / std (0-255)

    return (
        (images("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")),
        (images("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train_examples", type=int, default=60000)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    (x_train, y_train), (x_test, y_test) = load()
    x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
    print(
        f"Fashion-MNIST: {len(x_train)} train, {len(x_test)} test, "
        f"{args.epochs} epoch(s), Adam 1e-3, batch 128, XLA"
    )
    print("| model | variant | test top-1 | train s | images/s |")
    print("|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        for variant, switches in VARIANTS.items():
            tf.keras.utils.set_random_seed(0)
            model = bidense.create_model(
                name,
                input_shape=(28, 28, 1),
                num_classes=10,
                **MODELS[name],
                **switches,
            )
            model.compile(
                tf.keras.optimizers.Adam(1e-3),
                "sparse_categorical_crossentropy",
                ["accuracy"],
                jit_compile=True,
            )
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
            seconds = time.perf_counter() - start
            _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
            rate = args.epochs * len(x_train) / seconds
            print(
                f"| {name} | {variant} | {accuracy:.4f} | {seconds:.0f} | {rate:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
