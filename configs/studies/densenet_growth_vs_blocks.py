"""BinaryDenseNet: growth rate vs number of blocks at (about) constant size.

Reproduces the growth-rate-vs-blocks ablation of Bethge et al. 2019
(arXiv:1906.08637; numbers from the authors' logged runs,
github.com/hpi-xnor/BMXNet-v2-wiki ``Binary-Network-Results.md``):
halve the growth rate k while doubling the dense layers per stage, which keeps
the size about constant (ImageNet: 3.31 / 3.39 / 3.45 MB) but adds shortcuts.
Initial filters 64, reduction (1, 1.4, 1.4), binary transitions ("no FP ds").
The paper's claim: more, thinner layers (more dense connections) win:
50.2 / 52.7 / 54.3 % ImageNet top-1 for (1,1,1,1)/k256, (2,2,2,2)/k128,
(4,4,4,4)/k64.

    # reduced (2 CPU cores, real Fashion-MNIST; budget <= 90 minutes):
    python ablate.py --study configs/studies/densenet_growth_vs_blocks.py --parallel 2
    # ImageNet (the logged runs: Adam 1e-3, 60 epochs):
    python ablate.py --study configs/studies/densenet_growth_vs_blocks.py \
        --variant imagenet2012
"""

from bidense.ablation import Study


def shapes(k: int) -> dict:
    """The three coupled (blocks, growth rate) levels, growth rates k, k/2, k/4."""
    return {
        f"1x4_k{k}": {"blocks": (1, 1, 1, 1), "growth_rate": k},
        f"2x4_k{k // 2}": {"blocks": (2, 2, 2, 2), "growth_rate": k // 2},
        f"4x4_k{k // 4}": {"blocks": (4, 4, 4, 4), "growth_rate": k // 4},
    }


PAPER_SWITCHES = {
    "model.reduction": (1.0, 1.4, 1.4),
    "model.downsample": "binary",  # the logged runs had no FP transitions
}

VARIANTS = {
    # A quarter of the width (k 64/32/16, 16 initial filters: 0.04-0.06 MiB), the
    # paper's 4:1 ratio of k to initial filters; one epoch (3 cells x 2 seeds took
    # the time docs/ablations.md reports, well inside 90 minutes on 2 cores).
    "fashion_mnist": Study(
        name="densenet_growth_vs_blocks",
        model="binary_densenet28",
        dataset="fashion_mnist",
        grid={"shape": shapes(64)},
        reference={"shape": "4x4_k16"},
        seeds=(1, 2),
        config={
            **PAPER_SWITCHES,
            "model.initial_filters": 16,
            "epochs": 1,
        },
        description="paper 6.2: growth rate vs blocks at constant size",
    ),
    "imagenet2012": Study(
        name="densenet_growth_vs_blocks",
        model="binary_densenet28",
        dataset="imagenet2012",
        grid={"shape": shapes(256)},
        reference={"shape": "4x4_k64"},
        seeds=(1,),
        config={
            **PAPER_SWITCHES,
            "model.initial_filters": 64,
            "epochs": 60,
            "batch_size": 256,
            "optimizer.learning_rate": 1e-3,
            # One of the schedules of the authors' logged BinaryDenseNet ImageNet
            # runs; the log does not say which one these rows used.
            "schedule.decay_epochs": (30, 40, 50),
            "schedule.decay_factor": 0.1,
        },
        description="paper 6.2: growth rate vs blocks at constant size",
    ),
}
DEFAULT = "fashion_mnist"
