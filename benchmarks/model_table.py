"""Prints the README's model table: Keras params, paper size and OPs, per model.

    python benchmarks/model_table.py

Sizes and OPs use the paper's conventions (bidense.model_stats) at 224x224 with
1000 classes; top-1 is larq-zoo's published ImageNet accuracy, for reference
(bidense has not trained on ImageNet).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bidense  # noqa: E402

LARQ_ZOO_TOP1 = {  # docs.larq.dev/zoo, larq-zoo 2.x
    "binary_resnet_e18": "58.32",
    "binary_densenet28": "60.91",
    "binary_densenet37": "62.89",
    "binary_densenet37_dilated": "64.34",
    "binary_densenet45": "64.59",
}


def main():
    print(
        "| model | builder | params | binary convs | size_mib | ops | larq-zoo top-1 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in bidense.list_models():
        model = bidense.create_model(name)
        stats = bidense.model_stats(model)
        builder = bidense.registry.get_builder(name).__name__
        print(
            f"| `{name}` | `{builder}` | {model.count_params():,} | "
            f"{stats['binary_convs']} | {stats['size_mib']:.2f} | "
            f"{stats['ops']:.3e} | {LARQ_ZOO_TOP1.get(name, '-')} |"
        )


if __name__ == "__main__":
    main()
