"""What a host can offer a data-parallel run, in the words of the error a
user gets when asking for more."""

from __future__ import annotations

from portaclass import config
from portaclass.errors import UsageError


def too_many(requested: int, visible: list[str]) -> UsageError:
    """``--devices N`` beyond what this host shows, naming what it shows."""
    shown = ", ".join(visible) if visible else "none"
    hint = ""
    if all(name.startswith("cpu") for name in visible):
        hint = (f"; without GPUs, {config.CPU_DEVICES_VARIABLE}={requested} splits the CPU into "
                f"{requested} virtual devices (for trying a distributed run, not for speed)")
    return UsageError.for_option("devices", f"{requested} requested, but this host shows "
                                 f"{len(visible)}: {shown}{hint}")
