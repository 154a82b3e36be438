"""bfloat16 against float32 for the converged headline recipe on Fashion-MNIST.

The ingredient study (fmnist_ingredients.py) compares precisions at a short
budget of 2 epochs. Whether bfloat16 can be the default is a question about the
*converged* recipe: configs/binary_densenet28.py as it is (5 epochs), once per
precision and seed, so the difference is measured against seed noise:

    python ablate.py --study configs/studies/fmnist_precision.py

``mixed_bfloat16`` (bidense.training.precision) computes convolutions and matmuls
in bfloat16 on CPUs with AVX512_BF16 or AMX, keeps float32 variables, and keeps
the sign quantizers' input in float32 where larq reads it.

The ``cifar10`` variant is the same comparison with the paper's CIFAR-10 recipe.

Results: docs/performance.md (mixed bfloat16) and docs/results.md, generated
rows in its study directory.
"""

from bidense.ablation import Study

# The reference first: each precision is compared with float32.
PRECISIONS = {
    "precision": {
        "float32": {"precision": "float32"},
        "bf16": {"precision": "mixed_bfloat16"},
    }
}


def precision_study(dataset: str, description: str) -> Study:
    """The same grid, seeds and reference on each dataset's recipe."""
    return Study(
        name="fmnist_precision",
        model="binary_densenet28",
        dataset=dataset,
        grid=PRECISIONS,
        reference={"precision": "float32"},
        seeds=(1, 2),
        description=description,
    )


VARIANTS = {
    "fashion_mnist": precision_study(
        "fashion_mnist",
        "BinaryDenseNet28 headline recipe, float32 vs bfloat16, 2 seeds",
    ),
    # The same comparison with the paper's full-width CIFAR-10 recipe (150
    # epochs; a GPU's or a bfloat16 CPU's work).
    "cifar10": precision_study(
        "cifar10", "BinaryDenseNet28 paper recipe, float32 vs bfloat16"
    ),
}
DEFAULT = "fashion_mnist"
