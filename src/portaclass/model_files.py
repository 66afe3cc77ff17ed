"""Safe loading: every model file that comes into portaclass (``--backbone``,
``--weights``, evaluate, predict, export, resume) is checked here before
Keras reads it.

A ``.keras`` file is a zip holding ``config.json`` (the architecture, which
Keras deserializes by importing the modules it names) and the weights. Keras
has had several CVEs in that path (CVE-2024-3660: Lambda layers run pickled
code; CVE-2025-1550: a config naming an arbitrary module; CVE-2025-8747 and
CVE-2025-9905: ways around ``safe_mode``), so the config is read as plain JSON
first and refused, naming what is wrong, when it holds a Lambda layer or names
a module outside Keras and portaclass; then Keras loads it with
``safe_mode=True``. ``unsafe=True`` (the CLI's ``--unsafe``) skips the
content checks for files the user trusts; a file that is not a readable zip,
or whose member names escape the archive, is refused either way.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

from portaclass._lazy import backend, keras
from portaclass.errors import ModelFileError, first_line

# Modules a stock Keras model's config may name (Keras' own, and portaclass'
# registered layers); anything else is someone else's code.
TRUSTED_MODULE_ROOTS = ("keras", "portaclass")
# Layers whose config carries code: Lambda holds a function (bytecode).
CODE_LAYERS = ("Lambda",)
LEGACY_SUFFIXES = (".h5", ".hdf5")
UNSAFE_HINT = "pass --unsafe only if you trust where the file came from"


def check_keras_archive(path: Path, *, unsafe: bool = False, what: str = "model") -> dict:
    """The parsed ``config.json`` of the ``.keras`` file at ``path``, after
    checking it is a sound archive and (unless ``unsafe``) that its config
    runs no code; ModelFileError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            _check_member_names(path, names)
            if "config.json" not in names:
                raise ModelFileError(f"{path} is not a Keras model file (no config.json inside)")
            config = json.loads(archive.read("config.json"))
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path} is not a .keras file: not a zip archive, or a truncated one") \
            from None
    except (OSError, EOFError, zipfile.LargeZipFile, ValueError) as error:
        # a damaged member (CRC, truncated stream) or config.json that isn't JSON
        raise ModelFileError(f"{path} is damaged: {first_line(error)}") from None
    if not unsafe:
        _check_config(path, config)
    return config


def load_keras_file(path, *, unsafe: bool = False, device: str | None = None, what: str = "model"):
    """The model in ``path`` (a ``.keras`` file; a legacy ``.h5`` only with
    ``unsafe``), uncompiled, loaded under ``device`` when given."""
    path = Path(path)
    if path.suffix.lower() in LEGACY_SUFFIXES:
        if not path.is_file():
            raise ModelFileError(f"{what} file not found: {path}")
        if not unsafe:
            raise ModelFileError(f"{path} is a legacy HDF5 model file, which Keras loads without its "
                                 f"safety checks: save it as .keras, or {UNSAFE_HINT}")
    elif path.suffix.lower() != ".keras":
        raise ModelFileError(f"{path} is not a .keras model file (portaclass reads Keras 3 "
                             "`.keras` files and run folders)")
    else:
        check_keras_archive(path, unsafe=unsafe, what=what)
    try:
        with backend.on_device(device) if device else contextlib.nullcontext():
            return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:  # Keras raises ValueError, KeyError, TypeError, h5py errors...
        raise ModelFileError(f"{path} is not a Keras model file that loads: {first_line(error)}") \
            from None


def check_weights_file(path: Path) -> Path:
    """``path`` if it is a weights file Keras can load without running code
    (``.weights.h5``, ``.h5`` weights, a checked ``.keras`` file)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")):
        raise ModelFileError(f"{path}: portaclass loads Keras weights (.weights.h5, .h5, .keras), "
                             "not pickled framework checkpoints")
    if name.endswith(".keras"):
        # load_weights reads only the weights member, so the config's content
        # cannot run; the archive itself must still be sound
        check_keras_archive(path, unsafe=True, what="weights")
    return path


def _check_member_names(path: Path, names: list[str]) -> None:
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise ModelFileError(f"{path} holds a member whose path escapes the archive "
                                 f"({name!r}): refused")


def _check_config(path: Path, config) -> None:
    """Refuse code-carrying layers and modules outside Keras and portaclass,
    anywhere in the (nested) config."""
    for node in _dicts(config):
        if node.get("class_name") in CODE_LAYERS:
            layer = (node.get("config") or {}).get("name") or node["class_name"]
            raise ModelFileError(f"{path} holds a {node['class_name']} layer ({layer!r}), whose "
                                 f"code would run on loading: refused; {UNSAFE_HINT}")
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in TRUSTED_MODULE_ROOTS:
            name = node.get("class_name") or node.get("registered_name") or "?"
            raise ModelFileError(f"{path} asks to load {name!r} from module {module!r}, outside Keras "
                                 f"and portaclass: refused; {UNSAFE_HINT}")


def _dicts(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)
