"""BinaryDenseNet28 recipes (Bethge et al. 2019; larq-zoo's TrainBinaryDenseNet28).

fashion_mnist (default; laptop CPU, growth rate 16, 32 stem filters, 5 epochs):
    python train.py --model binary_densenet28 --dataset fashion_mnist \
        --workdir runs/bdn28_fmnist
    Expected, in the default precision ("auto": mixed bfloat16 on CPUs with
        AVX512_BF16 or AMX, else float32):
        mixed bfloat16: 91.28 % validation top-1 (epoch 5 selected), 90.46 %
            test top-1, 0.117 MiB; 14.9 minutes of wall time (13.4 of
            training) on 2 idle cores of an AMD EPYC with AVX512_BF16 (row
            bdn28_headline_auto of results/fashion_mnist.csv, docs/results.md).
        float32 (--config.precision=float32): 91.30 % validation, 90.50 % test
            top-1; 36.5 minutes (34.4 of training) on 2 idle cores of an Intel
            Xeon with AMX (row bdn28_headline). These are the weights shipped
            as weights="fashion_mnist".
        Two more seeds in each precision: configs/studies/fmnist_precision.py.
    Its full-precision twin, the same recipe with --config.model.binary=false:
        93.52 % validation, 92.46 % test top-1, 1.062 MiB, 33.6 minutes of
        training (row bdn28_fp_twin; its first epochs ran beside other work).
cifar10 (the paper's CIFAR-10 ablation recipe, full width; needs a GPU):
    python train.py --model binary_densenet28 --dataset cifar10 --workdir runs/bdn28_c10
    Expected: not measured here; the authors' logged CIFAR-10 DenseNet21 run
        reached 90.3 % (github.com/hpi-xnor/BMXNet-v2-wiki).
imagenet2012 (larq-zoo: Adam 4e-3, 120 epochs, batch 256, x0.1 at 100/110):
    python train.py --model binary_densenet28 --dataset imagenet2012 \
        --workdir runs/bdn28_imagenet
    Expected: ~60.9 % top-1 / 82.8 % top-5 (larq-zoo's published weights,
        docs.larq.dev/zoo).
"""

from bidense.training import recipes


def get_config(arg=None):
    return recipes.make(
        "binary_densenet28",
        arg,
        imagenet=recipes.StepRecipe(
            epochs=120,
            batch_size=256,
            learning_rate=4e-3,
            decay_epochs=(100, 110),
            decay_factor=0.1,
        ),
        laptop=recipes.LaptopRecipe(model={"growth_rate": 16, "initial_filters": 32}),
    )
