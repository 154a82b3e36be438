"""Training ingredients for BinaryDenseNet28 on Fashion-MNIST, at equal budget.

Each cell changes one thing of the headline recipe (configs/binary_densenet28.py:
growth rate 16, 32 stem filters, Adam 2e-3 cosine-decayed, batch 128), all at
the same short budget of 2 epochs, so the table shows what each ingredient buys
for the same number of training steps:

* ``baseline``: the recipe in float32 (the precision every other cell keeps;
  the recipe's default, ``auto``, would be bfloat16 on CPUs that have it).
* ``bf16``: ``precision="mixed_bfloat16"`` (bidense.training.precision): same
  steps, bfloat16 compute on CPUs with AVX512_BF16 or AMX.
* ``distill``: knowledge distillation from the model's own full-precision twin
  (``binary=False``; bidense.training.distill, alpha 0.9, T 4), as larq-zoo's
  multi-stage experiments and Real-to-Binary (Martinez et al. 2020) do. The
  teacher is trained first, once, with the headline recipe:

    python train.py --model binary_densenet28 --config.model.binary=false \\
        --workdir runs/fmnist/bdn28_fp_twin
    python ablate.py --study configs/studies/fmnist_ingredients.py

The ``cifar10`` variant is the same comparison with the paper's full-width
CIFAR-10 recipe (150 epochs; a GPU's work), its teacher trained likewise with
``--dataset cifar10 --workdir runs/cifar10/bdn28_fp_twin``.

Results: docs/results.md (ingredients), generated rows in its study directory.
"""

from bidense.ablation import Study

# Where the teacher commands above write; relative to where ablate.py runs.
FP_TWIN = "runs/fmnist/bdn28_fp_twin"
FP_TWIN_CIFAR10 = "runs/cifar10/bdn28_fp_twin"


def ingredients(teacher: str) -> dict:
    """The grid: one ingredient per cell, the baseline the reference."""
    return {
        "ingredient": {
            "baseline": {"precision": "float32"},
            "bf16": {"precision": "mixed_bfloat16"},
            "distill": {"distill.teacher": teacher, "precision": "float32"},
        }
    }


VARIANTS = {
    "fashion_mnist": Study(
        name="fmnist_ingredients",
        model="binary_densenet28",
        dataset="fashion_mnist",
        grid=ingredients(FP_TWIN),
        reference={"ingredient": "baseline"},
        seeds=(1, 2),
        config={"epochs": 2},
        description="BinaryDenseNet28 training ingredients at 2 epochs",
    ),
    "cifar10": Study(
        name="fmnist_ingredients",
        model="binary_densenet28",
        dataset="cifar10",
        grid=ingredients(FP_TWIN_CIFAR10),
        reference={"ingredient": "baseline"},
        seeds=(1, 2),
        description="BinaryDenseNet28 training ingredients, paper recipe",
    ),
}
DEFAULT = "fashion_mnist"
