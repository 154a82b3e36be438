"""ResNetE18: scaling factors x downsampling shortcut x gradient estimator.

Reproduces the 2 x 2 x 2 ablation of Bethge et al. 2019 ("Back to Simplicity",
arXiv:1906.08637; numbers from the authors' logged runs,
github.com/hpi-xnor/BMXNet-v2-wiki ``Binary-Network-Results.md``): XNOR-Net
scaling factors ("scaled") on/off, full-precision vs binary 1x1 convolution in the
downsampling shortcut, STE vs ApproxSign. The paper's claims: scaling does not
help (-0.7 to -3.6 pp on CIFAR-10), FP downsampling helps (+0.2 to +1.2 pp), STE
is at least as good as ApproxSign when training from scratch.

    # reduced (2 CPU cores, real Fashion-MNIST; budget <= 90 minutes):
    python ablate.py --study configs/studies/resnet_e18_scaling.py --parallel 2
    # the paper's CIFAR-10 recipe (Adam 0.01, 150 epochs, x0.3 at 75/100/125):
    python ablate.py --study configs/studies/resnet_e18_scaling.py --variant cifar10
    # the paper's ImageNet ablation recipe (Adam 1e-3, 40 epochs, x0.1 at 34/37):
    python ablate.py --study configs/studies/resnet_e18_scaling.py \
        --variant imagenet2012

bidense's ResNetE is the E1 block of the authors' code
(github.com/hpi-xnor/BMXNet-v2-examples ``binary_models/resnet_e.py``); the
logged CIFAR-10 E1 rows are 84.1 / 85.6 / 84.9 / 86.1 unscaled and 83.7 / 85.6 /
83.8 / 86.1 scaled (order: binary ds ApproxSign, binary ds STE, FP ds ApproxSign,
FP ds STE).
"""

from bidense.ablation import PAPER_IMAGENET_ABLATION, Study

GRID = {
    "scaling": ["none", "xnor"],  # "xnor" = the paper's "scaled" (XNOR-Net)
    "downsample": ["fp", "binary"],
    "gradient": ["ste", "approx_sign"],
}
# The paper's recommendation: no scaling, FP downsampling, plain STE.
REFERENCE = {"scaling": "none", "downsample": "fp", "gradient": "ste"}
# The authors cancel the activation gradient outside |x| <= 1.0 (the default
# --clip-threshold of github.com/hpi-xnor/BMXNet-v2), the
# support of larq's ApproxSign, so both estimators see the same range. (bidense
# also clips latent weights to +-clip_value, a larq convention the authors skip.)
PAPER_CLIP = {"model.clip_value": 1.0}

BASE = Study(
    name="resnet_e18_scaling",
    model="binary_resnet_e18",
    dataset="cifar10",
    grid=GRID,
    reference=REFERENCE,
    seeds=(1, 2),
    config=PAPER_CLIP,
    description="paper 6.1: scaling x FP downsampling x gradient (ResNetE18)",
)

VARIANTS = {
    # Narrow ResNetE18 (filters 16..128, 0.14 MiB), two seeds, one pass over the
    # training set (2 x 234 steps of 128, cosine): 8 cells x 2 seeds must fit 90
    # minutes on 2 cores (budget in docs/ablations.md).
    "fashion_mnist": BASE.replace(
        dataset="fashion_mnist",
        config={
            **PAPER_CLIP,
            "model.filters": (16, 32, 64, 128),
            "epochs": 2,
            "steps_per_epoch": 234,
            "validation_freq": 2,  # evaluate once, at the end
        },
    ),
    # The paper's CIFAR-10 recipe is configs/binary_resnet_e18.py's cifar10 branch.
    "cifar10": BASE,
    "imagenet2012": BASE.replace(
        dataset="imagenet2012",
        seeds=(1,),  # one seed per cell, as in the authors' logs
        config={**PAPER_CLIP, **PAPER_IMAGENET_ABLATION},
    ),
}
DEFAULT = "fashion_mnist"
