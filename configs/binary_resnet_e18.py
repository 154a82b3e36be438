"""BinaryResNetE18 recipes (Bethge et al. 2019; larq-zoo's TrainBinaryResNetE18).

fashion_mnist (default; laptop CPU, filters 16/32/64/128, 5 epochs):
    python train.py --model binary_resnet_e18 --dataset fashion_mnist \
        --workdir runs/binary_resnet_e18_fmnist
    Expected: 90.72 % validation top-1 (epoch 5 selected), 89.70 % test top-1,
        0.137 MiB; 24.5 minutes of wall time on 2 cores of an Intel Xeon with
        AMX, float32, with the test suite running beside it (row e18_default of
        results/fashion_mnist.csv, docs/results.md). These are the weights
        shipped as weights="fashion_mnist".
cifar10 (the paper's CIFAR-10 ablation recipe, full width; needs a GPU):
    python train.py --model binary_resnet_e18 --dataset cifar10 \
        --workdir runs/binary_resnet_e18_c10
    Expected: not measured here; the authors' logged CIFAR-10 ResNetE18 runs (FP
        downsampling, STE; github.com/hpi-xnor/BMXNet-v2-wiki) reached 87.6 % with
        the E2 block and 86.1 % with the E1 block that bidense builds.
imagenet2012 (larq-zoo: Adam 4e-3, 120 epochs, batch 1024, x0.3 at 70/90/110):
    python train.py --model binary_resnet_e18 --dataset imagenet2012 \
        --workdir runs/binary_resnet_e18_imagenet
    Expected: 58.3 % top-1 / 80.8 % top-5 (larq-zoo's published weights,
        docs.larq.dev/zoo).
"""

from bidense.training import recipes


def get_config(arg=None):
    return recipes.make(
        "binary_resnet_e18",
        arg,
        imagenet=recipes.StepRecipe(
            epochs=120,
            batch_size=1024,
            learning_rate=0.004,
            decay_epochs=(70, 90, 110),
            decay_factor=0.3,
        ),
        laptop=recipes.LaptopRecipe(model={"filters": (16, 32, 64, 128)}),
    )
