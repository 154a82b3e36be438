"""BinaryResNetE34 recipes (Bethge et al. 2019; larq-zoo's ResNetE18 recipe).

fashion_mnist (default; laptop CPU, filters 16/32/64/128, 5 epochs):
    python train.py --model binary_resnet_e34 --dataset fashion_mnist \
        --workdir runs/binary_resnet_e34_fmnist
    Expected: not measured here (see docs/results.md for the smaller models).
cifar10 (the paper's CIFAR-10 ablation recipe, full width; needs a GPU):
    python train.py --model binary_resnet_e34 --dataset cifar10 \
        --workdir runs/binary_resnet_e34_c10
    Expected: not measured here; the authors' logged CIFAR-10 ResNetE34 run
        (github.com/hpi-xnor/BMXNet-v2-wiki) reached 86.2 %.
imagenet2012 (larq-zoo has no ResNetE34 task; ResNetE18's: Adam 4e-3, 120 epochs, batch
    1024, x0.3 at 70/90/110):
    python train.py --model binary_resnet_e34 --dataset imagenet2012 \
        --workdir runs/binary_resnet_e34_imagenet
    Expected: not published by larq-zoo; the authors' logged ResNetE34 run (FP
        downsampling, 40 epochs; github.com/hpi-xnor/BMXNet-v2-wiki) reached 59.5 %
        top-1.
"""

from bidense.training import recipes


def get_config(arg=None):
    return recipes.make(
        "binary_resnet_e34",
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
