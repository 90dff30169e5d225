"""User-facing errors and warnings.

Every error a user can cause by what they type or install is a `ZooError`: the
CLI prints its message as one line and exits non-zero, without a traceback
unless `--debug` is given. The message says what is wrong, where, and what to do.
"""

from __future__ import annotations


class ZooError(Exception):
    """Base class of the errors `zoo` reports to its users as one clear line.

    ``exit_code`` is what the CLI exits with: 2 for a mistake in what the user typed or handed over
    (`InputError` and its kin: fix the input and run again), 1 for a failure while running.
    """

    exit_code = 1


class InputError(ZooError):
    """A mistake in what the user typed or handed over: an option, a file, a value (exit 2)."""

    exit_code = 2


class UnknownNameError(ZooError, KeyError):
    """A backbone, data set or task name that no plugin registered."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidPatternError(ZooError, ValueError):
    """A listing pattern that is not a valid wildcard pattern."""

    exit_code = 2


class OptionError(ZooError, TypeError):
    """A keyword option (``zoo.load(name, **options)``, a recipe's model_options) the factory does not take."""

    exit_code = 2


class Interrupted(ZooError):
    """Work stopped by Ctrl-C; the message says what was kept and how to continue."""

    exit_code = 130  # as a shell reports a process ended by SIGINT


class PluginError(ZooError):
    """A plugin failed to load or to register (raised only in strict mode)."""


class SpecError(ZooError, ValueError):
    """A spec that a plugin registered is malformed."""


class FactoryError(ZooError):
    """A spec's factory path does not import or is not callable."""


class WeightsError(ZooError):
    """A weights file or saved backbone that is missing, corrupt, unsafe, or does not fit the model."""


class PluginWarning(UserWarning):
    """A plugin was quarantined; everything else keeps working."""


class PreprocessingWarning(UserWarning):
    """Weights were loaded without a preprocessing config of their own; a default was assumed."""


class WeightsWarning(UserWarning):
    """Weights loaded, but not all of the model's: some parameters start at random."""


class RecipeError(ZooError):
    """A recipe that cannot be read or does not validate."""

    exit_code = 2
