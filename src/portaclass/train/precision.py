"""Mixed precision through Keras dtype policies, and only where the device
runs it well: float16 matrix units are a GPU feature, and a CPU without
AVX-512 BF16 or AMX emulates bfloat16 (slower than float32). Asking for a
precision the device can't run well falls back to float32 with one line,
and config.json records what ran."""

from __future__ import annotations

import contextlib
from pathlib import Path

from portaclass._lazy import backend, keras

# /proc/cpuinfo flags of x86 CPUs with native bfloat16 arithmetic.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in CPU_BFLOAT16_FLAGS)


def resolve_precision(requested: str, log=print) -> str:
    """The precision to run: ``requested``, or float32 (said in one line)
    where the device would run it slower."""
    if requested == "float32" or backend.has_gpu():
        return requested
    if requested == "mixed_bfloat16" and cpu_has_bfloat16():
        return requested
    unit = "float16" if requested == "mixed_float16" else "bfloat16"
    log(f"precision: {requested} would run slower than float32 on this CPU (no {unit} "
        "arithmetic units); training in float32")
    return "float32"


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Keras' global dtype policy set to ``precision`` while models are built
    and trained; the previous policy comes back after, so one process can
    train several runs."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
