"""python -m bidense.pretrained --workdir W [--output FILE.npz] (see pack.py)."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

PROGRAM = "python -m bidense.pretrained"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Writes a train.py work dir's model as a compact weights file "
        "(binary kernels as sign bits) and prints its weights-table entry.",
    )
    parser.add_argument("--workdir", required=True, help="a finished train.py run")
    parser.add_argument(
        "--output",
        help="the .npz file to write (default: bidense/pretrained/fashion_mnist/"
        "MODEL.npz, the file the table entry names)",
    )
    args = parser.parse_args(argv)
    from bidense.pretrained import pack

    try:
        result = pack.pack_workdir(args.workdir, args.output)
    except (ValueError, OSError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {result['path']} ({result['mib']:.3f} MiB), sha256 {result['sha256']}"
    )
    print("entry for bidense/weights.py FASHION_MNIST_WEIGHTS:")
    print(pack.table_entry(result["model"], result["spec"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
