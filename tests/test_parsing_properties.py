"""Property test: random flags and overrides never crash train.py's parsing layer.

In-process and without training: train.py's flag parser (``cli.Command.parse``:
absl plus the ``--config.KEY=VALUE`` split) and then everything its ``main``
does before ``experiment.setup`` touches data (``train.resolve_config``: model
name check, recipe, overrides) and the config validation. Every outcome must be
a parsed config or one of the project's one-line errors, never another
exception (which would be a traceback).

CI replays a fixed set of examples (hypothesis' ``derandomize``: the seed comes
from the test itself), plus every example found so far as an ``@example``, so
a run never fails because of a new random draw. To explore with fresh random
examples (and add what fails as an ``@example``):

    BIDENSE_HYPOTHESIS=explore python -m pytest tests/test_parsing_properties.py
"""

import contextlib
import io
import math
import os
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from mock_cli import entry_point

import bidense
import cli
from bidense.training import config as config_lib
from bidense.training import config_checks, strategies

REPO = Path(__file__).resolve().parent.parent
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,  # implies no example database
)
settings.register_profile(
    "explore", settings.get_profile("ci"), derandomize=False, max_examples=2000
)
PROFILE = settings.get_profile(os.environ.get("BIDENSE_HYPOTHESIS", "ci"))


def _recipe_keys():
    cfg = config_lib.load_recipe(REPO / "configs", "binary_densenet28", "fashion_mnist")
    return config_lib._all_keys(cfg)


KEYS = _recipe_keys()
# Keys: real ones (leaves and groups), near misses, and malformed dotted paths.
keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(lambda k: k + "x"),
    st.sampled_from(["", ".", "a..b", "epochs.", ".epochs", "model.", "Epochs"]),
    st.text(max_size=12),
)
values = st.one_of(
    st.sampled_from(
        ["", "None", "null", "true", "no", "nan", "inf", "-inf", "1e400", "-1",
         "0", "1e-300", "(1,2)", "[1, 'a']", "(", "[[[[", "{}", "{'a': 1}", "2.5",
         "10" * 200, "x" * 50, "'quoted'", "-" * 3000 + "1"]
    ),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20),
)  # fmt: skip


@st.composite
def argvs(draw):
    argv = ["train.py"]
    if draw(st.booleans()):
        argv += [
            "--model",
            draw(st.sampled_from([*bidense.list_models(), "resnet50", ""])),
        ]
    if draw(st.booleans()):
        dataset = st.sampled_from(["fashion_mnist", "cifar10", "mnist", "no_such"])
        argv.append(f"--dataset={draw(dataset)}")
    if draw(st.booleans()):
        argv.append(
            f"--strategy={draw(st.sampled_from([*strategies.STRATEGIES, 'x', '']))}"
        )
    argv.append("--workdir=/nonexistent/never_created")
    for _ in range(draw(st.integers(0, 4))):
        key, value = draw(keys), draw(values)
        form = draw(st.sampled_from(["=", "space", "bare"]))
        if form == "=":
            argv.append(f"--config.{key}={value}")
        elif form == "space":
            argv += [f"--config.{key}", value]
        else:
            argv.append(f"--config.{key}")
    extras = ["--restart", "--norestart", "--restart=maybe", "--bogus", "stray", "--"]
    argv += draw(st.lists(st.sampled_from(extras), max_size=2))
    return argv


def one_line_failure(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), stderr


MODEL = ["train.py", "--model", "binary_densenet28", "--workdir=/nonexistent/run"]


@settings(PROFILE)
@given(argv=argvs())
# Every example found so far (docs/reliability.md, "Parsing never crashes").
# A 3001-character flag name, after a bare override or alone: absl's "did you
# mean" recurses once per character (cli.parse_absl guards it).
@example(argv=["train.py", "--config.epochs", "--config.seed", "-" * 3000 + "1"])
@example(argv=[*MODEL, "--config.seed", "-" * 3000 + "1"])
@example(argv=[*MODEL, "-" * 3000 + "1"])
# A float key set to a 400-digit integer: OverflowError in float().
@example(argv=[*MODEL, "--config.optimizer.learning_rate=" + "9" * 400])
# 3000 dashes before a digit: RecursionError (or MemoryError) in ast.literal_eval.
@example(argv=[*MODEL, "--config.epochs=" + "-" * 3000 + "1"])
@example(argv=[*MODEL, "--config.epochs=" + "-" * 10000 + "1"])
# A training key set to None: TypeError in config_checks.validate.
@example(argv=[*MODEL, "--config.batch_size=None"])
# An infinite learning rate.
@example(argv=[*MODEL, "--config.optimizer.learning_rate=1e400"])
# A pasted newline in an unknown key, in a stray argument, in a bare override.
@example(argv=[*MODEL, "--config.\n0=1"])
@example(argv=[*MODEL, "stray\nword"])
@example(argv=[*MODEL, "--config.\n0"])
def test_random_flags_and_overrides_never_crash_the_parsing(argv):
    train = entry_point("train.py")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = train.COMMAND.parse(argv)
        except SystemExit as exit:
            assert exit.code == 2
            one_line_failure(stderr.getvalue())
            return
    # What train.main does before experiment.setup, with the same error contract.
    try:
        cfg = train.resolve_config(args)
        config_checks.validate(cfg)
    except cli.USER_ERRORS as error:
        assert "\n" not in str(error).strip(), error
        return
    # Accepted: the learning rate can be trusted to be a usable number.
    assert math.isfinite(cfg.optimizer.learning_rate)
    assert cfg.optimizer.learning_rate > 0
