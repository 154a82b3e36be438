"""BinaryDenseNet37 recipes (Bethge et al. 2019; larq-zoo's TrainBinaryDenseNet37).

fashion_mnist (default; laptop CPU, growth rate 16, 32 stem filters, 5 epochs):
    python train.py --model binary_densenet37 --dataset fashion_mnist \
        --workdir runs/binary_densenet37_fmnist
    Expected: not measured here (see docs/results.md for the smaller models).
cifar10 (the paper's CIFAR-10 ablation recipe, full width; needs a GPU):
    python train.py --model binary_densenet37 --dataset cifar10 \
        --workdir runs/binary_densenet37_c10
    Expected: not measured here; the authors' logged CIFAR-10 DenseNet21 run
        reached 90.3 % (github.com/hpi-xnor/BMXNet-v2-wiki).
imagenet2012 (larq-zoo: Adam 4e-3, 120 epochs, batch 192, x0.1 at 100/110):
    python train.py --model binary_densenet37 --dataset imagenet2012 \
        --workdir runs/binary_densenet37_imagenet
    Expected: 62.9 % top-1 / 84.2 % top-5 (larq-zoo's published
        weights, docs.larq.dev/zoo).
"""

from bidense.training import recipes


def get_config(arg=None):
    return recipes.make(
        "binary_densenet37",
        arg,
        imagenet=recipes.StepRecipe(
            epochs=120,
            batch_size=192,
            learning_rate=0.004,
            decay_epochs=(100, 110),
            decay_factor=0.1,
        ),
        laptop=recipes.LaptopRecipe(model={"growth_rate": 16, "initial_filters": 32}),
    )
