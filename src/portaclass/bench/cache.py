"""What ``portaclass bench`` measured, kept per machine so that ``--backend
auto`` can pick the fastest backend for a model and input size.

One JSON file per machine under ``config.cache_dir()/bench/``, keyed by
``model@image_size``; each entry keeps the Keras backends' training step
times per batch size. Reading it imports no framework (``config`` consults
it before keras loads).
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from portaclass import config

VERSION = 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity() -> str:
    """What makes timings comparable: host, CPU model and count, GPUs (read
    from the NVIDIA driver's files, no framework needed)."""
    cpu = cpu_model()
    gpus = []
    for path in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(path) as info:
                gpus += [line.split(":", 1)[1].strip() for line in info if line.startswith("Model")]
        except OSError:
            continue
    return f"{platform.node()}|{cpu}|{os.cpu_count()}|{','.join(gpus)}"


def cache_file() -> Path:
    digest = hashlib.sha256(machine_identity().encode()).hexdigest()[:16]
    return config.cache_dir() / "bench" / f"{digest}.json"


def _read() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == VERSION else {}


def record(report) -> Path:
    """Keep ``report``'s Keras backend step times for this machine."""
    times: dict[str, dict[str, float]] = {}
    for result in report.results:
        if result["backend"] in config.BACKENDS and result.get("step_time_s"):
            times.setdefault(str(result["batch_size"]), {})[result["backend"]] = result["step_time_s"]
    path = cache_file()
    if not times:
        return path
    data = _read() or {"version": VERSION, "machine": machine_identity(), "entries": {}}
    opts = report.options
    data["entries"][f"{opts.model}@{opts.image_size}"] = {
        "measured_at": datetime.date.today().isoformat(), "real_data": opts.real_data is not None,
        "device": next((r.get("device") for r in report.results if r.get("device")), "cpu"),
        "step_time_s": times}
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".partial")
    staged.write_text(json.dumps(data, indent=1))
    os.replace(staged, path)
    return path


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def fastest_backend(model: str, image_size: int, batch_size: int | None = None) -> Choice | None:
    """The installed backend bench measured fastest for ``model`` at
    ``image_size`` on this machine, at the measured batch size nearest
    ``batch_size`` (the largest measured when None); None without a result."""
    entry = _read().get("entries", {}).get(f"{model}@{image_size}")
    if not entry:
        return None
    sizes = sorted(int(size) for size in entry["step_time_s"])
    size = max(sizes) if batch_size is None else min(sizes, key=lambda s: (abs(s - batch_size), -s))
    times = {b: t for b, t in entry["step_time_s"][str(size)].items() if config.is_installed(b)}
    if not times:
        return None
    ranked = sorted(times, key=times.get)
    measured = ", ".join(f"{b} {times[b]:.3g} s/step" for b in ranked)
    return Choice(ranked[0], f"the fastest for {model} at {image_size} px (batch {size}) in portaclass "
                             f"bench on this machine on {entry['measured_at']}: {measured}")
