"""cli.py, the command-line layer of the four entry points (no training here)."""

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

import cli

REPO = Path(__file__).resolve().parent.parent


def test_split_overrides_takes_both_spellings():
    rest, overrides = cli.split_overrides(
        ["train.py", "--model", "m", "--config.epochs=2", "--config.batch_size", "8"]
    )
    assert rest == ["train.py", "--model", "m"]
    assert overrides == [("epochs", "2"), ("batch_size", "8")]
    with pytest.raises(cli.CommandLineError, match="needs a value"):
        cli.split_overrides(["train.py", "--config.epochs"])
    with pytest.raises(cli.CommandLineError, match="malformed override"):
        cli.split_overrides(["train.py", "--config.=3"])
    # A bare override followed by another flag: the flag is not its value.
    with pytest.raises(cli.CommandLineError, match="--config.epochs needs a value"):
        cli.split_overrides(["train.py", "--config.epochs", "--config.seed=1"])
    assert cli.split_overrides(["t.py", "--config.lr", "-1"])[1] == [("lr", "-1")]
    with pytest.raises(cli.CommandLineError) as info:  # a pasted newline
        cli.split_overrides(["train.py", "--config.a\nb"])
    assert "\n" not in str(info.value)


def command(name: str, main=lambda args: args) -> cli.Command:
    """A command with a --model flag, as train.py, evaluate.py and export.py have."""

    def define_flags(flag_values):
        flags.DEFINE_string("model", None, "Model.", flag_values=flag_values)
        flags.DEFINE_integer("n", 1, "A number.", flag_values=flag_values)

    return cli.Command(name, define_flags, main)


def failure(call) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit:
        call()
    return exit.value.code, stderr.getvalue()


def test_commands_with_the_same_flags_run_in_one_process_without_shared_state():
    """absl's global FLAGS would refuse a second --model; each call has its own."""
    first, second = command("a.py"), command("b.py")
    args = first.call(["a.py", "--model", "x", "--config.epochs=2"])
    again = second.call(["b.py", "--model", "y"])
    assert args.flags.model == "x" and args.overrides == (("epochs", "2"),)
    assert again.flags.model == "y" and again.overrides == ()  # nothing carried over
    assert first.call(["a.py"]).flags.model is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["p.py", "--n=x"], "p.py: error: flag --n=x: invalid literal"),
        (["p.py", "stray", "two\nlines"],
         "p.py: error: unexpected arguments: 'stray' 'two\\nlines'"),
        (["p.py", "-" * 3000 + "1"],
         "p.py: error: unknown flag ------------------------------... "
         "(3001 characters); see --help"),
        (["p.py", "--config.epochs"],
         "p.py: error: --config.epochs needs a value: --config.epochs=VALUE"),
        (["p.py", "--bogus"], "p.py: error: Unknown command line flag 'bogus'"),
    ],
)  # fmt: skip
def test_parse_errors_are_one_line_and_status_2(argv, message):
    status, stderr = failure(lambda: command("p.py").call(argv))
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith(message), stderr


def test_without_overrides_a_config_flag_is_an_unknown_flag():
    plain = cli.Command("p.py", command("p.py").define_flags, lambda a: a, False)
    status, stderr = failure(lambda: plain.call(["p.py", "--config.epochs=2"]))
    assert status == 2 and "Unknown command line flag 'config.epochs'" in stderr


def test_fail_prints_the_first_line_with_the_status():
    status, stderr = failure(lambda: cli.fail("p.py", ValueError("one\ntwo"), 1))
    assert (status, stderr) == (1, "p.py: error: one\n")
    status, stderr = failure(lambda: cli.fail("p.py", KeyError()))
    assert (status, stderr) == (2, "p.py: error: KeyError\n")


def test_cli_and_export_flag_checks_load_no_tensorflow():
    """export.py refuses bad flags before TensorFlow loads (a fraction of a second)."""
    code = (
        "import sys, importlib.util\n"
        "import cli\n"
        "assert 'tensorflow' not in sys.modules\n"
        "spec = importlib.util.spec_from_file_location('export_py', 'export.py')\n"
        "export = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(export)\n"
        "for argv in (['export.py', '--model', 'm'], ['export.py', '--bogus']):\n"
        "    try:\n"
        "        export.COMMAND.call(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 2\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "export.py: error: --output is required",
        "export.py: error: Unknown command line flag 'bogus'",
    ]


def test_bidense_weights_name_the_data_they_were_trained_on():
    """evaluate.py and export.py read --weights fashion_mnist's own data by default."""
    assert cli.dataset_of_weights("fashion_mnist") == "fashion_mnist"
    for weights in ("imagenet", "runs/bdn28/best.keras", None):
        assert cli.dataset_of_weights(weights) is None
