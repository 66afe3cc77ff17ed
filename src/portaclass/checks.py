"""One validator per kind of value, shared by every command and function.

Each takes the Python name of the argument it checks, so its error can name
it (the CLI turns the name into a flag: ``errors.UsageError.with_flags``), and
none imports a framework: options are checked before keras loads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from portaclass.errors import UsageError


def choice(option: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``, else an error listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise UsageError.for_option(
            option, f"must be one of {', '.join(map(str, choices))}; received {value!r}")
    return value


def at_least(option: str, value, low):
    """``value`` if it is a number >= ``low`` (and finite)."""
    if not _is_number(value) or not math.isfinite(value) or value < low:
        raise UsageError.for_option(option, f"must be at least {low}; received {value!r}")
    return value


def positive(option: str, value):
    """``value`` if it is a finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise UsageError.for_option(option, f"must be positive; received {value!r}")
    return value


def fraction(option: str, value, *, inclusive_high: bool = False):
    """``value`` if it is in [0, 1) (or [0, 1] with ``inclusive_high``)."""
    high_ok = value <= 1 if inclusive_high else value < 1
    if not _is_number(value) or not (0 <= value and high_ok):
        bounds = "[0, 1]" if inclusive_high else "[0, 1)"
        raise UsageError.for_option(option, f"must be in {bounds}; received {value!r}")
    return value


def channels(option: str, value):
    """1 (grayscale) or 3 (RGB)."""
    if value not in (1, 3):
        raise UsageError.for_option(option, f"must be 1 or 3; received {value!r}")
    return value


def seed(option: str, value):
    """A seed NumPy accepts: an integer in [0, 2**32)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise UsageError.for_option(option, f"must be an integer from 0 to {2**32 - 1}; received {value!r}")
    return value


def existing_file(option: str, value) -> Path:
    """``value`` as a Path to an existing file."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError.for_option(option, f"{value}: no such file")
    return path


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
