"""The exceptions portaclass raises on purpose.

Every one of them is something the user can fix; the CLI prints its message as
one line on stderr and exits with code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations


class PortaclassError(Exception):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 2


class UsageError(PortaclassError):
    """A bad option or argument value."""


class DataError(PortaclassError):
    """A dataset that cannot be used: missing folder, empty class, bad split."""


class BackendError(PortaclassError):
    """A backend that is unknown, not installed, or clashes with the loaded one."""


class ModelFileError(PortaclassError):
    """A model or weights file that is missing or cannot be loaded."""
