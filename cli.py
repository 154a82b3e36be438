"""The command-line layer shared by train.py, evaluate.py, export.py and ablate.py.

It imports no TensorFlow (nor ``bidense``, whose ``__init__`` loads TensorFlow to
register the Keras objects), so export.py checks its flags before TensorFlow
loads and a bad flag costs a fraction of a second. What every entry point shares:

* :func:`fail`: one line ``PROGRAM: error: MESSAGE`` on stderr, then exit status
  2 for bad input or 1 for a run that failed once started.
* :func:`parse`: absl's parser behind the long-flag guard (:func:`parse_absl`),
  the ``--config.KEY=VALUE`` split (:func:`split_overrides`) and the check for
  words absl leaves over (:func:`check_no_extra_args`), all as one-line errors.
* :class:`Command`: an entry point's program name, flags and ``main``.

Flags without global state. absl keeps flags in one process-wide
``FlagValues``, and two entry points defining ``--model`` in one process collide
(``DuplicateFlagError``). So an entry point does not define its flags when it is
imported: it defines them in ``define_flags(flag_values)`` and hands that to a
:class:`Command`. ``Command.run()`` (the ``__main__`` path) defines them on
absl's global ``FLAGS`` and runs ``absl.app.run``, so ``--help``, ``--flagfile``
and absl's logging flags work as in any absl program. ``Command.call(argv)``
(tests, in-process) defines them on a fresh ``FlagValues`` for each call and
runs the same parse and ``main``. Either way ``main`` receives an :class:`Args`
(the parsed flags and the overrides; absl's ``app.run`` passes whatever the
``flags_parser`` returns to ``main``), never a module-level list.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from absl import flags

CONFIG_PREFIX = "--config."

# Errors caused by the user's input, reported as one line with exit status 2.
# ValueError covers bidense's ConfigError, DatasetError and StudyError (all its
# subclasses) and the bad switch values create_model reports; entry points catch
# these only around setup, never around training itself.
USER_ERRORS = (ValueError, FileNotFoundError)


class CommandLineError(ValueError):
    """A malformed command line; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Args:
    """What ``main`` gets: the parsed flags, the ``--config.KEY=VALUE`` pairs and
    the command line as given (for the record a run keeps of how it was made)."""

    flags: flags.FlagValues
    overrides: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()


def define_data_flags(flag_values: flags.FlagValues) -> None:
    """--data_dir and --manual_dir: where TFDS keeps and finds datasets."""
    flags.DEFINE_string(
        "data_dir",
        None,
        "TFDS data dir (default ~/tensorflow_datasets).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "manual_dir", None, "TFDS manual download dir.", flag_values=flag_values
    )


def define_checkpoint_flag(flag_values: flags.FlagValues) -> None:
    """--checkpoint: which saved model of a --workdir run is used."""
    flags.DEFINE_enum(
        "checkpoint",
        "selected",
        ["selected", "best", "final"],
        "Model of --workdir: selected = the one train.py reported (best.keras, "
        "chosen on the validation split, else final.keras).",
        flag_values=flag_values,
    )


def fail(program: str, error: BaseException | str, status: int = 2) -> None:
    """Prints ``program: error: message`` (its first line) and exits with ``status``.

    2 (the default) is bad input; 1 is a run that failed once started.
    """
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(status)


def shown(text: str) -> str:
    """``text`` as it goes into a one-line message: ``repr`` if not printable."""
    return text if text.isprintable() else repr(text)


def parse_absl(flag_values: flags.FlagValues, argv: list[str]) -> list[str]:
    """``flag_values(argv)``, with every failure as an ``absl.flags.Error``.

    For an unknown flag, absl suggests near names with a recursive edit distance
    whose depth is the name's length: a name thousands of characters long (a
    mistyped paste) overflows the stack with RecursionError instead of saying
    the flag is unknown.
    """
    try:
        return flag_values(argv)
    except RecursionError:
        longest = max((arg for arg in argv[1:] if arg.startswith("-")), key=len)
        raise flags.Error(
            f"unknown flag {shown(longest[:30])}... ({len(longest)} characters); "
            "see --help"
        ) from None


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates ``--config.a.b=v`` (or ``--config.a.b v``) from the other args.

    The keys and values are validated later, against the recipe
    (``bidense.training.config.apply_overrides``).
    """
    rest, overrides = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(CONFIG_PREFIX):
            key, sep, value = arg[len(CONFIG_PREFIX) :].partition("=")
            if not sep:
                # The next word is the value, unless it is another flag: then
                # the value is missing (it would swallow that flag otherwise).
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise CommandLineError(
                        f"{shown(arg)} needs a value: {shown(arg)}=VALUE"
                    )
                i += 1
                value = argv[i]
            if not key:
                raise CommandLineError(
                    f"malformed override {arg!r}; use --config.KEY=VALUE"
                )
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def check_no_extra_args(argv: list[str]) -> None:
    """absl leaves words it does not parse in argv: a stray word is a typo.

    Each is shown with ``repr`` so the error stays one line whatever it holds.
    """
    if len(argv) > 1:
        raise CommandLineError("unexpected arguments: " + " ".join(map(repr, argv[1:])))


def parse(
    program: str,
    flag_values: flags.FlagValues,
    argv: list[str],
    *,
    overrides: bool = True,
) -> Args:
    """Parses ``argv`` into ``flag_values``; any problem is :func:`fail` (status 2).

    ``overrides``: take ``--config.KEY=VALUE`` out of argv first (else absl
    reports them as unknown flags).
    """
    given = tuple(argv)
    try:
        found = []
        if overrides:
            argv, found = split_overrides(argv)
        check_no_extra_args(parse_absl(flag_values, argv))
    except (CommandLineError, flags.Error) as error:
        fail(program, error)
    return Args(flags=flag_values, overrides=tuple(found), argv=given)


def check_model_name(name: str) -> None:
    """A ValueError naming the registered models if ``name`` is not one.

    Loads bidense (and TensorFlow) on the first call, not on import.
    """
    import bidense

    if name not in bidense.list_models():
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(bidense.list_models())}"
        )


# The dataset each of bidense's own named weights (bidense.weights) was trained
# on: evaluate.py and export.py read their images from it when no --dataset is
# given. Here, not in bidense, so export.py checks its flags before TensorFlow
# loads. ImageNet is not here: it cannot be read offline, so it is no default.
WEIGHTS_TRAINED_ON = {"fashion_mnist": "fashion_mnist"}


def dataset_of_weights(weights: str | None) -> str | None:
    """The dataset that named ``weights`` were trained on, else None (a file or
    work dir says nothing of its data)."""
    return WEIGHTS_TRAINED_ON.get(weights) if weights else None


@dataclasses.dataclass(frozen=True)
class Command:
    """An entry point: ``define_flags(flag_values)`` and ``main(args) -> status``.

    ``overrides``: whether it takes ``--config.KEY=VALUE``.
    """

    program: str
    define_flags: Callable[[flags.FlagValues], None]
    main: Callable[[Args], int | None]
    overrides: bool = True

    def parse(self, argv: list[str]) -> Args:
        """Parses ``argv`` with this command's flags on a fresh ``FlagValues``."""
        flag_values = flags.FlagValues()
        self.define_flags(flag_values)
        return parse(self.program, flag_values, argv, overrides=self.overrides)

    def call(self, argv: list[str]) -> int:
        """Runs the command in this process: its exit status.

        A failure raises SystemExit (from :func:`fail`), exactly as the process
        would exit; ``argv[0]`` is the program name.
        """
        return self.main(self.parse(argv)) or 0

    def run(self) -> None:
        """The ``__main__`` path: absl's app with the flags on its global FLAGS."""
        from absl import app

        self.define_flags(flags.FLAGS)
        app.run(
            self.main,
            flags_parser=lambda argv: parse(
                self.program, flags.FLAGS, argv, overrides=self.overrides
            ),
        )
