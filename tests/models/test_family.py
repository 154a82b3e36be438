"""The shared family setup: defaults have one home, configs are not mutated."""

import bidense
from bidense.models import densenet, family, resnet_e


def test_binary_settings_resolves_pad_value_without_changing_the_config():
    cfg = bidense.model_switches("binary_densenet28")
    before = dict(cfg)
    assert family.binary_settings(cfg, weights="imagenet").pad_value == 0.0
    assert family.binary_settings(cfg, weights=None).pad_value == 1.0
    assert cfg == before and cfg["pad_value"] is None


def test_families_share_their_common_switches_and_differ_in_clip_value():
    shared = family.shared_defaults(clip_value=1.0)
    for module, clip_value in ((resnet_e, 1.25), (densenet, 1.3)):
        own = {k: v for k, v in module.DEFAULTS.items() if k in shared}
        assert own == {**shared, "clip_value": clip_value}
        for name in module.VARIANTS:
            assert bidense.model_switches(name)["clip_value"] == clip_value
