"""Property test: random flags and overrides never crash train.py's parsing layer.

In-process and without training: train.py's flag parser (absl plus the
``--config.KEY=VALUE`` split) and then everything its ``main`` does before
``experiment.setup`` touches data: model name check, recipe, overrides, config
validation. Every outcome must be a parsed config or one of the project's
one-line errors, never another exception (which would be a traceback).
"""

import contextlib
import importlib.util
import io
import math
from pathlib import Path

import pytest
from absl import flags
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bidense
from bidense.training import cli, experiment, strategies
from bidense.training import config as config_lib

REPO = Path(__file__).resolve().parent.parent
FLAGS = flags.FLAGS


@pytest.fixture(scope="module")
def train_cli():
    """train.py loaded as a module; its flags are removed again afterwards.

    absl flags are process-global: left registered, they would clash with any
    later in-process import of another entry point defining the same names.
    """
    before, was_parsed = set(FLAGS), FLAGS.is_parsed()
    spec = importlib.util.spec_from_file_location(
        "train_cli_under_test", REPO / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in set(FLAGS) - before:
        delattr(FLAGS, name)
    FLAGS.unparse_flags()
    if was_parsed:
        FLAGS.mark_as_parsed()


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


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(argv=argvs())
# Found in CI: a bare override swallows the next one's key, so the value reaches
# absl as a 3001-character flag name, and absl's suggestion recursed per char.
@example(argv=["train.py", "--config.epochs", "--config.seed", "-" * 3000 + "1"])
def test_random_flags_and_overrides_never_crash_the_parsing(train_cli, argv):
    FLAGS.unparse_flags()  # each example starts from the defaults
    train_cli._overrides.clear()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            rest = train_cli.parse_flags(argv)
        except SystemExit as exit:
            assert exit.code == 2
            one_line_failure(stderr.getvalue())
            return
    assert rest[0] == "train.py"
    # What train.main does before experiment.setup, with the same error contract.
    try:
        cli.check_no_extra_args(rest)
        cli.check_model_name(FLAGS.model)
        cfg = config_lib.load_recipe(
            train_cli.CONFIG_DIR, FLAGS.model, FLAGS.dataset, FLAGS.config_file
        )
        config_lib.apply_overrides(cfg, train_cli._overrides)
        experiment.validate(cfg)
    except cli.USER_ERRORS as error:
        assert "\n" not in str(error).strip(), error
        return
    # Accepted: the learning rate can be trusted to be a usable number.
    assert math.isfinite(cfg.optimizer.learning_rate)
    assert cfg.optimizer.learning_rate > 0
