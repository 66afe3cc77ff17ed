"""The run directory: everything a run writes, in one folder per run."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from portaclass.errors import UsageError


def create_run_dir(out: str | os.PathLike | None, prefix: str) -> Path:
    """``out``, or ``runs/<prefix>-<timestamp>``; never reuses a folder that
    already holds a run, so no run overwrites another's model or checkpoints."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{prefix}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path("runs") / f"{prefix}-{stamp}-{suffix}"
    else:
        path = Path(out)
        check_run_dir_free(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_run_dir_free(path: Path) -> None:
    """UsageError unless ``path`` can become a new run's folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder")
    if (path / "model.keras").exists() or (path / "history.csv").exists():
        raise UsageError(f"--out {path} already holds a run; choose another folder")


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_run_config(run_dir: Path) -> dict:
    """The config.json of an earlier run, or {} when the folder has none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None


def environment_info() -> dict:
    """Backend, versions and devices, for env.json."""
    from importlib import metadata

    import keras

    from portaclass import backend

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    framework = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}[backend.NAME]
    framework_version = version(framework) or version(f"{framework}-cpu")
    return {
        "backend": backend.NAME,
        "image_data_format": keras.config.image_data_format(),
        "versions": {
            "portaclass": version("portaclass"),
            "python": platform.python_version(),
            "keras": keras.__version__,
            "numpy": version("numpy"),
            framework: framework_version,
        },
        "devices": [vars(d) | {"spec": d.spec} for d in backend.list_devices()],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
