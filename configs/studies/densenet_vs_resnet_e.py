"""BinaryDenseNet vs ResNetE at about equal model size.

Reproduces the paper's central comparison (Bethge et al. 2019, arXiv:1906.08637;
sizes with its conventions, ``bidense.model_stats``): at ~4 MB, BinaryDenseNet28
(4.04 MiB) beats ResNetE18 (4.00 MiB) on ImageNet, and BinaryDenseNet37 (5.13)
beats ResNetE34 (5.23). larq-zoo's trained weights (docs.larq.dev/zoo): 60.9 vs
58.3 % and 62.9 % against the authors' logged ResNetE34 runs' 59.5-60.0 % top-1
(github.com/hpi-xnor/BMXNet-v2-wiki). Both families train with the same recipe
here, so the architecture is the only difference.

    # reduced (2 CPU cores, real Fashion-MNIST; budget <= 90 minutes):
    python ablate.py --study configs/studies/densenet_vs_resnet_e.py --parallel 2
    # ImageNet, the paper's ablation recipe for both (Adam 1e-3, 40 epochs):
    python ablate.py --study configs/studies/densenet_vs_resnet_e.py \
        --variant imagenet2012
"""

from bidense.ablation import PAPER_IMAGENET_ABLATION, Study

VARIANTS = {
    # Narrow twins at ~0.12-0.14 MiB on 28x28x1 inputs (the laptop recipes'
    # widths; tests/test_ablation_units.py checks the sizes stay within 20 %),
    # trained like those recipes (cosine, Adam 2e-3) but for one epoch instead of
    # 5: BinaryDenseNet28 needs ~3x ResNetE18's CPU training time, 14-17 minutes
    # per epoch on 2 shared cores (docs/ablations.md, study 2).
    "fashion_mnist": Study(
        name="densenet_vs_resnet_e",
        model="binary_resnet_e18",
        dataset="fashion_mnist",
        grid={
            "model": {
                "resnet_e18": {
                    "model": "binary_resnet_e18",
                    "filters": (16, 32, 64, 128),
                },
                "densenet28": {
                    "model": "binary_densenet28",
                    "growth_rate": 16,
                    "initial_filters": 32,
                },
            }
        },
        reference={"model": "resnet_e18"},
        seeds=(1, 2),
        config={"epochs": 1},
        description="BinaryDenseNet vs ResNetE at equal size",
    ),
    "imagenet2012": Study(
        name="densenet_vs_resnet_e",
        model="binary_resnet_e18",
        dataset="imagenet2012",
        grid={
            "model": {
                "resnet_e18": {"model": "binary_resnet_e18"},
                "densenet28": {"model": "binary_densenet28"},
                "resnet_e34": {"model": "binary_resnet_e34"},
                "densenet37": {"model": "binary_densenet37"},
            }
        },
        reference={"model": "resnet_e18"},
        seeds=(1,),
        config=PAPER_IMAGENET_ABLATION,
        description="BinaryDenseNet vs ResNetE at equal size",
    ),
}
DEFAULT = "fashion_mnist"
