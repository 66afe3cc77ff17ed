"""The run folder contract: what a run writes, and the one reader of it.

Every command that trains (``train``, ``quickstart``) writes its folder
through a ``Run``; every command that reads one (``--backbone``, and later
evaluate, report, resume) opens it with ``Run.open``. The files, and the keys
of ``config.json``, are documented in docs/run-folder.md; ``SCHEMA`` is
bumped whenever a key changes meaning, and a reader refuses a newer schema
rather than misread it.

Writes that a crash could cut in half (the JSON files) go to a temporary file
in the same folder, then ``os.replace`` it into place.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from portaclass import __version__
from portaclass import config as settings
from portaclass._lazy import backend, keras
from portaclass.data.loading import load_dataset
from portaclass.data.run_files import (
    append_decode_failures,
    check_same_splits,
    load_split_files,
    read_split_indices,
    write_run_files,
)
from portaclass.errors import RunError, UsageError
from portaclass.models.registry import Preprocessing

SCHEMA = 1

CONFIG = "config.json"
ENV = "env.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
SKIPPED = "skipped.csv"
MODEL = "model.keras"
SPLITS = "splits"
CHECKPOINTS = "checkpoints"


def write_json_atomic(path: Path, data: dict) -> Path:
    """``data`` as indented JSON at ``path``, never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def check_run_dir_free(path) -> None:
    """UsageError unless ``path`` can become a new run's folder (checked
    before anything is built, so a clash costs nothing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError.for_option("out", f"{path} exists and is not a folder")
    if any((path / name).exists() for name in (CONFIG, MODEL, HISTORY)):
        raise UsageError.for_option("out", f"{path} already holds a run; choose another folder")


def default_run_path(prefix: str = "run") -> Path:
    """``runs/<prefix>-<timestamp>``, with a suffix if that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{prefix}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("runs") / f"{prefix}-{stamp}-{suffix}"
    return path


class Run:
    """One run folder. ``Run.create`` makes a new one to write; ``Run.open``
    reads an existing one (any command, any backend)."""

    def __init__(self, path: Path, config: dict | None = None):
        self.path = Path(path)
        self.config: dict = config or {}

    # -- creating and writing -------------------------------------------------

    @classmethod
    def create(cls, out=None, *, prefix: str = "run") -> Run:
        """``out``, or ``runs/<prefix>-<timestamp>``; never a folder that
        already holds a run, so no run overwrites another's checkpoints."""
        if out is None:
            path = default_run_path(prefix)
        else:
            path = Path(out)
            check_run_dir_free(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CHECKPOINTS).mkdir(exist_ok=True)
        return cls(path)

    def write_config(self, *, command: str, options: dict, data: dict, model: dict) -> None:
        """config.json: what ran. ``options`` are the resolved options (those
        that did not apply are None), ``data`` the dataset (name, class names,
        split sizes, held-out split), ``model`` the built model (name, input
        shape, preprocessing, head dropout, parameters)."""
        self.config = {
            "schema": SCHEMA, "command": command, "portaclass": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": options, "data": data, "model": model,
        }
        write_json_atomic(self.path / CONFIG, self.config)

    def write_env(self) -> dict:
        env = environment_info()
        write_json_atomic(self.path / ENV, env)
        return env

    def write_metrics(self, metrics: dict) -> None:
        """metrics.json, written last: its presence marks a finished run."""
        write_json_atomic(self.path / METRICS, metrics)

    def write_dataset_files(self, dataset) -> None:
        """splits/*.csv, splits/classes.txt and skipped.csv."""
        write_run_files(dataset, self.path)

    def add_skipped(self, failures) -> int:
        """Files that broke during training, appended to skipped.csv once each."""
        return append_decode_failures(self.path, failures)

    def append_history(self, row: dict) -> None:
        """One epoch's row of history.csv, written as the epoch ends. A row
        with new columns (a second phase's) rewrites the file with them."""
        path = self.path / HISTORY
        fields = list(row)
        rows: list[dict] = []
        if path.exists():
            rows = self.history()
            header = list(rows[0]) if rows else _header(path)
            fields = header + [k for k in fields if k not in header]
            if fields == header:
                _write_csv(path, fields, [row], mode="a")
                return
        _write_csv(path, fields, rows + [row], mode="w")

    def truncate_history(self, epochs: int) -> None:
        """Keep history.csv's rows of epochs 1..``epochs`` (a resumed run
        redoes the epochs after its checkpoint, so each appears once)."""
        rows = self.history()
        kept = [row for row in rows if int(float(row["epoch"])) <= epochs]
        if len(kept) != len(rows):
            _write_csv(self.path / HISTORY, list(rows[0]), kept, mode="w")

    # -- reading ----------------------------------------------------------------

    @classmethod
    def open(cls, path) -> Run:
        """The run in folder ``path``; RunError when it is not one, or was
        written by a newer portaclass."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise RunError(f"{path} is not a run folder (no such folder)")
        config_path = path / CONFIG
        if not config_path.is_file():
            raise RunError(f"{path} is not a run folder (no {CONFIG})")
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunError(f"{config_path} is not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise RunError(f"{config_path} is not a run config (not a JSON object)")
        schema = config.get("schema", 0)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise RunError(f"{path} was written by a newer portaclass (run schema {schema}, this "
                           f"version reads up to {SCHEMA}): upgrade portaclass to read it")
        return cls(path, _upgrade(config))

    @property
    def command(self) -> str:
        return self.config.get("command", "train")

    @property
    def options(self) -> dict:
        return self.config.get("options", {})

    @property
    def class_names(self) -> list[str]:
        return list(self.config["data"]["class_names"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels), channels_last, as the model was built."""
        return tuple(self.config["model"]["input_shape"])

    @property
    def preprocessing(self):
        return Preprocessing.from_dict(self.config["model"].get("preprocessing") or {})

    @property
    def resize(self) -> str:
        """How images were resized to the input size ("plain", "crop", "pad")."""
        return self.options.get("resize") or "plain"

    def model_info(self) -> dict:
        """What a model file needs to predict on its own (stored inside every
        ``.keras`` file the run writes): class names, input shape,
        preprocessing, resize mode."""
        return {"schema": SCHEMA, "class_names": self.class_names,
                "input_shape": list(self.input_shape), "resize": self.resize,
                "preprocessing": self.config["model"].get("preprocessing") or {}}

    @property
    def held_out(self) -> str | None:
        """The split the run was scored on: "test", else "val", else None."""
        return self.config["data"].get("held_out")

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).is_file() and self.model_path.is_file()

    def metrics(self) -> dict:
        return _read_json(self.path / METRICS)

    def env(self) -> dict:
        return _read_json(self.path / ENV)

    def history(self) -> list[dict]:
        """history.csv as rows of strings (empty list when none yet)."""
        path = self.path / HISTORY
        if not path.is_file():
            return []
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def check_same_data(self, dataset) -> None:
        """DataError unless ``dataset`` (this run's data loaded again) gives
        the classes and split lists the run recorded (``--resume``)."""
        check_same_splits(self.path, dataset)

    def split(self, name: str | None = None):
        """Split ``name`` (default: the held-out one) as a ``data.Split``,
        the very images the run used: files from splits/<name>.csv against
        the recorded data root, or a built-in dataset rebuilt from its options."""
        name = name or self.held_out
        if name is None:
            raise RunError(f"{self.path} has no held-out split (trained with val_split=0 and test_split=0)")
        if (self.path / SPLITS / "root.txt").is_file():
            return load_split_files(self.path, name)
        options = self.options
        if not options.get("data"):
            raise RunError(f"{self.path} was trained on in-memory arrays; pass the data to use")
        height, width, channels = self.input_shape
        rebuild = dict(spec=options["data"], image_size=(height, width), channels=channels,
                       val_split=options.get("val_split", 0.0), test_split=options.get("test_split", 0.0),
                       seed=options.get("seed", 0), from_run=True)
        key = tuple(rebuild.values())
        dataset = _shared_rebuilds.get(key) if _shared_rebuilds is not None else None
        if dataset is None:
            dataset = load_dataset(**rebuild)
            if _shared_rebuilds is not None:
                _shared_rebuilds[key] = dataset
        split = dataset.splits().get(name)
        expected = read_split_indices(self.path, name)
        if split is None or split.source_index is None or list(split.source_index) != expected:
            raise RunError(f"{self.path}: rebuilding {options['data']!r} did not give the run's "
                           f"{name} split (splits/{name}.csv); was the dataset changed?")
        return split


# Built-in datasets rebuilt by Run.split while ``sharing_rebuilt_datasets`` is on.
_shared_rebuilds: dict | None = None


@contextmanager
def sharing_rebuilt_datasets():
    """Within: a built-in dataset that ``Run.split`` rebuilds is rebuilt once
    for every ``Run`` of it. A report asks three times (held-out images,
    preview, a fresh evaluation): shapes at 64 px took 1.55 s each. Nothing
    is kept after the block."""
    global _shared_rebuilds
    if _shared_rebuilds is not None:  # an outer block shares already
        yield
        return
    _shared_rebuilds = {}
    try:
        yield
    finally:
        _shared_rebuilds = None


def _upgrade(config: dict) -> dict:
    """Schema 0 (runs written before the contract had a version: top-level
    class_names/preprocessing/image_size/channels) read as schema 1."""
    if config.get("schema", 0) >= 1:
        return config
    size = config.get("image_size") or 32
    channels = config.get("channels") or 3
    options = {k: v for k, v in config.items()
               if k not in ("class_names", "preprocessing", "command", "split")}
    if config.get("command") == "quickstart":
        options.update(data="digits", val_split=0.2, test_split=0.0)
    return {
        "schema": 0, "command": config.get("command", "train"), "options": options,
        "data": {"class_names": config.get("class_names", []), "held_out": None},
        "model": {"name": config.get("model"), "input_shape": [size, size, channels],
                  "preprocessing": config.get("preprocessing") or {}},
    }


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise RunError(f"{path} not found: the run has not finished")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RunError(f"{path} is not valid JSON: {error}") from None


def _header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _write_csv(path: Path, fields: list[str], rows: list[dict], mode: str) -> None:
    new = mode == "w" or not path.exists()
    if mode == "w":  # a rewrite goes through a temporary file: never half a history
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        return
    with path.open(mode, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def environment_info() -> dict:
    """Backend, versions and devices, for env.json."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    framework = backend.NAME
    return {
        "backend": framework,
        "image_data_format": keras.config.image_data_format(),
        "versions": {
            "portaclass": version("portaclass"),
            "python": platform.python_version(),
            "keras": keras.__version__,
            "numpy": version("numpy"),
            framework: version(framework) or version(f"{framework}-cpu"),
        },
        "devices": [vars(d) | {"spec": d.spec} for d in backend.list_devices()],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # Why this backend when "auto" chose it (bench's verdict or the
        # fallback order); null when the user named it.
        "backend_choice": settings.backend_choice,
    }
