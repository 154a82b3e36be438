"""The registry: one snake_case name per model, used everywhere."""

import inspect
import sys

import pytest

import bidense
from bidense import models

EXPECTED_MODELS = {
    "binary_resnet_e18": models.BinaryResNetE18,
    "binary_resnet_e34": models.BinaryResNetE34,
    "binary_densenet28": models.BinaryDenseNet28,
    "binary_densenet37": models.BinaryDenseNet37,
    "binary_densenet37_dilated": models.BinaryDenseNet37Dilated,
    "binary_densenet45": models.BinaryDenseNet45,
}


def test_list_models_names_every_model_once_sorted():
    assert bidense.list_models() == sorted(EXPECTED_MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_registry_name_is_the_keras_model_name(name, tiny_switches):
    model = bidense.create_model(name, input_shape=(16, 16, 3), **tiny_switches(name))
    assert model.name == name
    same = EXPECTED_MODELS[name](input_shape=(16, 16, 3), **tiny_switches(name))
    assert same.name == name


@pytest.mark.parametrize("builder", EXPECTED_MODELS.values())
def test_builders_are_keyword_only_with_keras_applications_arguments(builder):
    parameters = inspect.signature(builder).parameters
    for argument in ("input_shape", "input_tensor", "include_top", "weights"):
        assert parameters[argument].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["weights"].default is None
    assert parameters["num_classes"].default == 1000
    assert "Bethge" in builder.__doc__ and "scaling" in builder.__doc__
    with pytest.raises(TypeError):
        builder((32, 32, 3))


@pytest.mark.parametrize("builder", EXPECTED_MODELS.values())
def test_each_builder_is_a_plain_function_found_by_its_name(builder):
    module = sys.modules[builder.__module__]
    assert inspect.isfunction(builder)
    assert getattr(module, builder.__name__) is builder
    assert f"def {builder.__name__}(" in inspect.getsource(module)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError, match="binary_densenet28.*binary_resnet_e18"):
        bidense.create_model("binary_densenet29")


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_model_switches_lists_every_switch_and_each_one_is_accepted(name):
    switches = bidense.model_switches(name)
    assert {"binary", "scaling", "gradient", "pad_value", "blocks"} <= set(switches)
    model = bidense.create_model(name, input_shape=(32, 32, 3), **switches)
    built = model.bidense_config
    for key, default in switches.items():
        if default is not None:
            assert built[key] == (
                tuple(default) if isinstance(default, list) else default
            )
