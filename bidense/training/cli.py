"""Shared plumbing of the train.py and evaluate.py entry points (no flags here)."""

from __future__ import annotations

import sys

import bidense
from bidense.data import DatasetError
from bidense.training import config as config_lib
from bidense.training.config import ConfigError

# Errors caused by the user's input: reported as one line, exit status 2. Plain
# ValueError is included because create_model reports bad switch values with it;
# entry points catch these only around setup, never around training itself.
USER_ERRORS = (ConfigError, DatasetError, ValueError, FileNotFoundError)


def check_model_name(name: str) -> None:
    if name not in bidense.list_models():
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(bidense.list_models())}"
        )


def check_no_extra_args(argv: list[str]) -> None:
    """absl leaves words it does not parse in argv: a stray word is a typo.

    Each is shown with ``repr`` so the error stays one line whatever it holds.
    """
    if len(argv) > 1:
        raise ValueError("unexpected arguments: " + " ".join(map(repr, argv[1:])))


def fail(program: str, error: BaseException, status: int = 2) -> None:
    """Prints ``program: error: message`` (one line) and exits with ``status``.

    2 (the default) is bad input; 1 is a run that failed once started.
    """
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(status)


def parse_absl_flags(argv: list[str]) -> list[str]:
    """``flags.FLAGS(argv)``, with every failure as an ``absl.flags.Error``.

    For an unknown flag, absl suggests near names with a recursive edit distance
    whose depth is the name's length: a name thousands of characters long (a
    mistyped paste) overflows the stack with RecursionError instead of saying
    the flag is unknown.
    """
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except RecursionError:
        longest = max((arg for arg in argv[1:] if arg.startswith("-")), key=len)
        raise flags.Error(
            f"unknown flag {longest[:30]}... ({len(longest)} characters); see --help"
        ) from None


def override_parser(program: str, overrides: list):
    """An absl ``flags_parser`` that first takes ``--config.KEY=VALUE`` out of argv.

    The overrides are appended to ``overrides`` (validated later against the
    recipe); everything else goes to absl. Either failing is a one-line error.
    """
    from absl import flags

    def parse_flags(argv):
        try:
            rest, found = config_lib.split_overrides(argv)
            overrides.extend(found)
            return parse_absl_flags(rest)
        except (ConfigError, flags.Error) as error:
            fail(program, error)

    return parse_flags
