"""BinaryDenseNet: dense layers without vs with a bottleneck.

Tests the paper's design rule "no bottlenecks" (Bethge et al. 2019,
arXiv:1906.08637; the authors' code, github.com/hpi-xnor/BMXNet-v2-examples
``binary_models/densenet.py``, sets ``bn_size=0``). A bottleneck dense layer
(DenseNet-BC) first compresses its input with a binary 1x1 conv to
``bottleneck * k`` channels, then applies the 3x3 conv; the paper argues that for
BNNs this squeeze cuts the information flow that makes DenseNets work, so it
costs accuracy even though it adds layers. No bottleneck numbers of the paper's
could be checked against the authors' logged runs, so this study gives the
claim's direction only, not a number to match.

Levels: no bottleneck (the paper's choice, reference), bottleneck 2 (about the
same size: 0.112 vs 0.117 MiB at the reduced width) and bottleneck 4
(DenseNet-BC's usual factor, 17 % larger). If the rule holds, both bottleneck
levels lose, and the larger one cannot blame its size.

    # reduced (2 CPU cores, real Fashion-MNIST; budget <= 90 minutes):
    python ablate.py --study configs/studies/densenet_bottleneck.py --parallel 2
    # ImageNet, the paper's ablation recipe (Adam 1e-3, 40 epochs):
    python ablate.py --study configs/studies/densenet_bottleneck.py \
        --variant imagenet2012
"""

from bidense.ablation import PAPER_IMAGENET_ABLATION, Study

# The narrow BinaryDenseNet28 of densenet_vs_resnet_e.py (k 16, 32 initial
# filters, 0.117 MiB: the fashion_mnist recipe's widths), one epoch like the other
# reduced studies, 2 seeds.
REDUCED = Study(
    name="densenet_bottleneck",
    model="binary_densenet28",
    dataset="fashion_mnist",
    grid={"bottleneck": [0, 2, 4]},
    reference={"bottleneck": 0},
    seeds=(1, 2),
    config={"model.growth_rate": 16, "model.initial_filters": 32, "epochs": 1},
    description="paper's design rule: no bottleneck in dense layers",
)

VARIANTS = {
    "fashion_mnist": REDUCED,
    # Full BinaryDenseNet28 (the recipe's ImageNet widths), one seed per cell.
    "imagenet2012": REDUCED.replace(
        dataset="imagenet2012", seeds=(1,), config=PAPER_IMAGENET_ABLATION
    ),
}
DEFAULT = "fashion_mnist"
