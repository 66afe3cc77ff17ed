"""The exceptions portaclass raises on purpose.

Every one of them is something the user can fix; the CLI prints its message as
one line on stderr and exits with code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import re


class PortaclassError(Exception):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 2


class UsageError(PortaclassError):
    """A bad option or argument value.

    ``option`` names the Python argument at fault (``learning_rate``); the
    message starts with it in backticks, and the CLI swaps that for the flag
    (``--lr``) so each layer speaks its own terms.
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option

    @classmethod
    def for_option(cls, option: str, problem: str) -> UsageError:
        """``UsageError.for_option("augment", "must be ...")`` -> "`augment` must be ..."."""
        return cls(f"`{option}` {problem}", option=option)

    def with_flags(self, flag_of) -> str:
        """The message with every `argument` name in backticks replaced by
        its CLI flag, ``flag_of(name)``."""
        return re.sub(r"`(\w+)`", lambda match: flag_of(match.group(1)), str(self))


class DataError(PortaclassError):
    """A dataset that cannot be used: missing folder, empty class, bad split."""


class BackendError(PortaclassError):
    """A backend that is unknown, not installed, or clashes with the loaded one."""


class ModelFileError(PortaclassError):
    """A model or weights file that is missing or cannot be loaded."""


class RunError(PortaclassError):
    """A run folder that cannot be read: not a run, a newer schema, or incomplete."""


def first_line(error: Exception, limit: int = 200) -> str:
    """The first non-blank line of ``error``'s message (libraries raise
    multi-line ones), at most ``limit`` characters; its type when empty."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__
