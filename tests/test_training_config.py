"""Recipes in configs/ and validated --config.KEY=VALUE overrides."""

from pathlib import Path

import pytest

import bidense
from bidense.training import config as config_lib
from bidense.training import recipes

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize(
    "dataset", ["fashion_mnist", "cifar10", "imagenet2012", "mnist"]
)
@pytest.mark.parametrize("model", bidense.list_models())
def test_every_model_has_a_locked_recipe_per_dataset(model, dataset):
    cfg = config_lib.load_recipe(CONFIG_DIR, model, dataset)
    assert cfg.model_name == model and cfg.dataset.name == dataset
    assert cfg.is_locked
    with pytest.raises(AttributeError):
        cfg.epochz = 3  # a locked config refuses new keys
    # Every switch of the builder is in the config, so it can be overridden.
    assert set(config_lib.model_switches(model)) <= set(cfg.model)
    assert {"binary", "scaling", "gradient", "clip_value", "downsample"} <= set(
        cfg.model
    )


def test_recipes_follow_the_paper_and_larq_zoo():
    c10 = config_lib.load_recipe(CONFIG_DIR, "binary_resnet_e18", "cifar10")
    assert (c10.optimizer.learning_rate, c10.epochs, c10.batch_size) == (0.01, 150, 128)
    assert list(c10.schedule.decay_epochs) == [75, 100, 125]
    assert c10.schedule.decay_factor == 0.3
    inet = config_lib.load_recipe(CONFIG_DIR, "binary_densenet45", "imagenet2012")
    assert (inet.optimizer.learning_rate, inet.epochs, inet.batch_size) == (
        8e-3,
        125,
        384,
    )
    # ImageNet reports its validation split; selection uses a carve of train.
    assert inet.dataset.test_split == "validation"
    assert inet.dataset.validation_examples == 10_000
    fmnist = config_lib.load_recipe(CONFIG_DIR, "binary_densenet28", "fashion_mnist")
    assert fmnist.schedule.name == "cosine" and fmnist.model.growth_rate == 16
    assert not config_lib.load_recipe(
        CONFIG_DIR, "binary_resnet_e18", "mnist"
    ).dataset.flip


def overridden(*pairs, model="binary_densenet28"):
    cfg = config_lib.load_recipe(CONFIG_DIR, model, "fashion_mnist")
    return config_lib.apply_overrides(cfg, list(pairs))


def test_overrides_are_parsed_into_the_recipe_types():
    cfg = overridden(
        ("epochs", "3"),
        ("optimizer.learning_rate", "0.01"),
        ("model.binary", "false"),
        ("model.scaling", "xnor"),
        ("model.blocks", "(1, 2, 3, 4)"),
        ("model.reduction", "2"),
        ("model.pad_value", "0.0"),
        ("schedule.decay_epochs", "[1,2]"),
    )
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.optimizer.learning_rate == 0.01
    assert cfg.model.binary is False and cfg.model.scaling == "xnor"
    assert list(cfg.model.blocks) == [1, 2, 3, 4] and list(cfg.model.reduction) == [2]
    assert cfg.model.pad_value == 0.0
    assert list(cfg.schedule.decay_epochs) == [1, 2]


def test_the_string_none_stays_a_string_where_the_recipe_has_a_string():
    cfg = overridden(("model.scaling", "xnor"))
    cfg = config_lib.apply_overrides(cfg, [("model.scaling", "none")])
    assert cfg.model.scaling == "none"
    # Where the recipe's value may be None (decided by the builder), none is None.
    assert overridden(("model.stem", "none")).model.stem is None


@pytest.mark.parametrize(
    "pair, message",
    [
        (("epoch", "3"), "unknown config key config.epoch; did you mean config.epochs"),
        (("model.growthrate", "3"), "did you mean config.model.growth_rate"),
        (("epochs", "abc"), "config.epochs must be a number"),
        (("epochs", "2.5"), "config.epochs must be an integer"),
        (("model.binary", "maybe"), "config.model.binary must be true or false"),
        (("model.blocks", "(a, b)"), "must be a list of numbers"),
        (("optimizer", "sgd"), "config.optimizer is a group"),
        (("epochs.x", "1"), "unknown config key config.epochs.x"),
        # Found by tests/test_parsing_properties.py (were tracebacks or accepted).
        (("optimizer.learning_rate", "1e400"), "must be a finite number"),
        (("optimizer.learning_rate", "9" * 400), "must be a finite number"),
        (("epochs", "-" * 3000 + "1"), "config.epochs must be a number"),
        (("epochs", "-" * 10000 + "1"), "config.epochs must be a number"),
    ],
)
def test_bad_overrides_are_one_line_errors(pair, message):
    with pytest.raises(config_lib.ConfigError, match=message) as info:
        overridden(pair)
    assert "\n" not in str(info.value)


def test_json_round_trip_and_diff():
    cfg = overridden(("epochs", "4"))
    as_dict = config_lib.to_dict(cfg)
    again = config_lib.to_dict(config_lib.ml_collections.ConfigDict(as_dict))
    assert again == as_dict
    other = config_lib.to_dict(overridden(("epochs", "5"), ("model.binary", "false")))
    assert config_lib.diff(as_dict, other) == [
        "epochs: 4 -> 5",
        "model.binary: true -> false",
    ]


def test_dataset_only_config_for_evaluation():
    cfg = recipes.dataset_config("imagenet2012")
    assert cfg.model_name == "" and cfg.dataset.image_size == 224
