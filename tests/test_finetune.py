"""Fine-tuning in train.py (config.model.weights, config.finetune) and the dataset
subset of transfer experiments (config.dataset.classes, train_examples).

The weights come from a bidense work dir (the shared tiny run) or a .h5 file;
larq-zoo's ImageNet weights in train.py are tested in tests/test_weights.py,
beside the fixture that caches them offline.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from test_train import CONFIG_DIR, Interrupt, tiny_config

from bidense import data
from bidense.data import subset
from bidense.training import config as config_lib
from bidense.training import experiment, finetune, loop, modeling, recipes
from bidense.training import workdir as wd


def mock_data(examples=40):
    return tfds.testing.mock_data(
        num_examples=examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


def layer_weights(model) -> dict:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


class Snapshots(tf.keras.callbacks.Callback):
    """Every layer's weights (BN statistics included) at each epoch's end."""

    def __init__(self, network):
        super().__init__()
        self.network, self.epochs = network, []

    def on_train_begin(self, logs=None):
        self.start = layer_weights(self.network)  # after Backup's restore

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(layer_weights(self.network))


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_frozen_warmup_trains_only_the_new_head_then_everything(tmp_path, tiny_run):
    """A bidense work dir (10 classes) into a 5-class model; one warm-up epoch."""
    cfg = tiny_config(
        epochs=2,
        steps_per_epoch=2,
        verbose=0,
        **{
            "model.weights": str(tiny_run.workdir),
            "finetune.freeze_epochs": "1",
            "dataset.classes": "(5, 6, 7, 8, 9)",
        },
    )
    source = layer_weights(tf.keras.models.load_model(tiny_run.workdir / "best.keras"))
    with mock_data():
        exp = experiment.setup(cfg, tmp_path / "run")
        assert exp.info.num_classes == 5 and exp.model.output_shape == (None, 5)
        assert exp.transfer.new == {"head_dense": "5 classes, the weights have 10"}
        snapshots = Snapshots(exp.model)
        loop.train(exp, [snapshots])

    warmup, full = snapshots.epochs
    assert not same(warmup["head_dense"], snapshots.start["head_dense"])
    for name, values in source.items():
        if name == "head_dense":
            continue
        # Frozen, BatchNormalization in inference mode: statistics unchanged.
        assert same(snapshots.start[name], values), name
        assert same(warmup[name], values), name
    changed = [n for n in source if n != "head_dense" and not same(full[n], source[n])]
    assert "stage1_layer1_conv" in changed and "stage1_layer1_bn" in changed
    assert "stem_conv" in changed
    # The saved models are ordinary trainable models.
    for name in (wd.FINAL_MODEL, wd.BEST_MODEL):
        saved = tf.keras.models.load_model(tmp_path / "run" / name)
        assert all(layer.trainable for layer in saved.layers), name
    # The fine-tuning learning rate of a binary model: the recipe's peak (2e-3).
    assert recipes.peak_learning_rate(exp.config) == pytest.approx(2e-3)


def test_freeze_bn_keeps_the_pretrained_statistics_for_the_whole_run(
    tmp_path, tiny_run
):
    """From a weights file (.h5, switches unknown) of the same classes."""
    trained = tf.keras.models.load_model(tiny_run.workdir / "best.keras")
    trained.save_weights(tmp_path / "weights.h5")
    source = layer_weights(trained)
    cfg = tiny_config(
        epochs=1,
        steps_per_epoch=2,
        verbose=0,
        **{
            "model.weights": str(tmp_path / "weights.h5"),
            "finetune.freeze_bn": "true",
        },
    )
    with mock_data():
        exp = experiment.setup(cfg, tmp_path / "run")
        # The classes fit: the head loads too (reset_head would renew it).
        assert not exp.transfer.new and "head_dense" in exp.transfer.loaded
        snapshots = Snapshots(exp.model)
        loop.train(exp, [snapshots])
    (after,) = snapshots.epochs
    bns = [
        name
        for name in source
        if isinstance(exp.model.get_layer(name), tf.keras.layers.BatchNormalization)
    ]
    assert bns and all(same(after[n], source[n]) for n in bns)
    assert not same(after["stage1_layer1_conv"], source["stage1_layer1_conv"])


def test_the_fine_tuning_learning_rate_is_the_peak_for_binary_a_tenth_for_float(
    tmp_path,
):
    cfg = tiny_config(**{"schedule.name": "constant", "schedule.warmup_epochs": 0})
    peak = cfg.optimizer.learning_rate
    assert recipes.peak_learning_rate(cfg) == peak
    config_lib.apply_overrides(cfg, [("model.weights", str(tmp_path))])
    # A binary model fine-tunes at the recipe's peak (docs/own_data.md: why).
    assert recipes.BINARY_FINETUNE_LR_FACTOR == 1.0
    assert recipes.peak_learning_rate(cfg) == pytest.approx(peak)
    schedule = modeling.make_optimizer(cfg, steps_per_epoch=4).learning_rate
    value = schedule(0) if callable(schedule) else schedule  # constant: a variable
    assert float(value) == pytest.approx(peak)
    # Its full-precision twin at a tenth of it.
    config_lib.apply_overrides(cfg, [("model.binary", "false")])
    assert recipes.FLOAT_FINETUNE_LR_FACTOR == 0.1
    assert recipes.peak_learning_rate(cfg) == pytest.approx(peak / 10)
    schedule = modeling.make_optimizer(cfg, steps_per_epoch=4).learning_rate
    value = schedule(0) if callable(schedule) else schedule
    assert float(value) == pytest.approx(peak / 10)
    # Set explicitly, it is used as it is; overriding optimizer.learning_rate
    # moves the default along.
    config_lib.apply_overrides(cfg, [("optimizer.learning_rate", "0.01")])
    assert recipes.peak_learning_rate(cfg) == pytest.approx(0.001)
    config_lib.apply_overrides(cfg, [("finetune.learning_rate", "3e-5")])
    assert recipes.peak_learning_rate(cfg) == pytest.approx(3e-5)


def test_backbone_switches_left_open_follow_the_weights(tiny_run, capsys):
    """The recipe's narrow widths give way to the weights'; a switch given on
    the command line is kept (and then refused by the build if it differs)."""
    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_densenet28", "fashion_mnist")
    config_lib.apply_overrides(cfg, [("model.weights", str(tiny_run.workdir))])
    assert cfg.model.growth_rate == 16 and cfg.model.initial_filters == 32
    taken = finetune.adopt_switches(cfg, given={"model.weights"})
    assert taken == ["blocks=(1, 1, 1, 1)", "growth_rate=8", "initial_filters=8"]
    assert cfg.model.blocks == [1, 1, 1, 1] and cfg.model.growth_rate == 8
    assert "fine-tuning from work dir" in capsys.readouterr().err
    assert cfg.model.pad_value is None  # the run's was the builder's choice

    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_densenet28", "fashion_mnist")
    config_lib.apply_overrides(
        cfg, [("model.weights", str(tiny_run.workdir)), ("model.growth_rate", "16")]
    )
    finetune.adopt_switches(cfg, given={"model.weights", "model.growth_rate"})
    assert cfg.model.growth_rate == 16 and cfg.model.initial_filters == 8


def test_a_run_interrupted_in_the_warmup_resumes_in_it(tmp_path, tiny_run):
    """Interrupted at step 3 (epoch 2 of a 2-epoch warm-up, a checkpoint every
    step): the rerun restores step 3 into a model whose optimizer has slots for
    every variable, finishes the warm-up frozen, then trains everything."""
    cfg = tiny_config(
        epochs=3,
        steps_per_epoch=2,
        checkpoint_every_steps=1,
        verbose=0,
        **{
            "model.weights": str(tiny_run.workdir),
            "finetune.freeze_epochs": "2",
            "finetune.reset_head": "true",
        },
    )
    source = layer_weights(tf.keras.models.load_model(tiny_run.workdir / "best.keras"))
    with mock_data():
        exp = experiment.setup(cfg, tmp_path)
        assert exp.transfer.new == {"head_dense": "reset_head"}
        with pytest.raises(KeyboardInterrupt):
            loop.train(exp, [Interrupt(step=3)])
        tf.keras.backend.clear_session()
        exp = experiment.setup(cfg, tmp_path)
        assert exp.start_step == 3
        snapshots = Snapshots(exp.model)
        loop.train(exp, [snapshots])
    assert int(exp.model.optimizer.iterations) == 6
    warmup, full = snapshots.epochs  # the ends of epochs 2 and 3
    backbone = [name for name in source if name != "head_dense"]
    assert all(same(warmup[name], source[name]) for name in backbone)
    assert not same(full["stage1_layer1_conv"], source["stage1_layer1_conv"])
    assert not same(full["stage1_layer1_bn"], source["stage1_layer1_bn"])


# -- the dataset subset --------------------------------------------------------


def subset_config(**changes):
    cfg = tiny_config()
    return config_lib.apply_overrides(
        cfg, [(f"dataset.{k}", str(v)) for k, v in changes.items()]
    )


def test_classes_and_the_first_examples_are_kept_and_relabelled():
    cfg = subset_config(classes=(7, 2, 5), train_examples=6)
    with mock_data():
        builder = data.prepare("fashion_mnist")
        info = data.dataset_info(builder, cfg.dataset)
        raw = [
            int(label)
            for _, label in builder.as_dataset(
                split=info.splits.train, as_supervised=True, shuffle_files=False
            )
        ]
        # Relabelled in the order given: 7 -> 0, 2 -> 1, 5 -> 2.
        expected = [[7, 2, 5].index(y) for y in raw if y in (7, 2, 5)][:6]
        assert info.num_classes == 3 and info.train_examples == 6
        for seed in (0, 1):  # the same six examples, shuffled per seed
            (batch,) = data.train_dataset(
                builder, info, cfg.dataset, 6, seed, num_examples=6
            ).take(1)
            assert sorted(batch[1].numpy().tolist()) == sorted(expected)
        test = data.eval_dataset(builder, info.splits.test, info, cfg.dataset, 8)
        labels = np.concatenate([y.numpy() for _, y in test])
        assert len(labels) == info.test_examples > 0
        assert set(labels.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"classes": (0, 12)}, "has no label 12 \\(its labels are 0..9\\)"),
        ({"classes": (3, 3)}, "lists a label twice"),
        ({"classes": (3,)}, "keeps one class"),
        ({"train_examples": 10_000}, "train_examples=10000 exceeds the"),
    ],
)
def test_a_subset_that_does_not_fit_is_one_line(changes, message):
    cfg = subset_config(**changes)
    with mock_data(), pytest.raises(subset.SubsetError, match=message):
        data.dataset_info(data.prepare("fashion_mnist"), cfg.dataset)
