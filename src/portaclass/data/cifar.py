"""CIFAR-10 from Keras' downloader, or offline from the original pickle files
(``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py`` folder).

The pickle format: ``data_batch_1..5`` and ``test_batch`` hold ``data`` (rows
of 3072 uint8, channel-major 3x32x32) and ``labels``; ``batches.meta`` holds
``label_names``.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from portaclass._lazy import keras
from portaclass.errors import DataError

BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
# Where keras.datasets.cifar10.load_data() extracts the archive (under keras_home()/datasets).
KERAS_CACHE_NAME = "cifar-10-batches-py-target"
# numpy arrays are all these pickles hold; refuse anything else (no code execution).
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a CIFAR batch file")


def _read_pickle(data: bytes, where: str) -> dict:
    try:
        raw = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - any failure: not a CIFAR batch
        raise DataError(f"{where} is not a CIFAR-10 batch file: {err}") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _batch_arrays(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, ValueError) as err:
        raise DataError(f"{where} is not a CIFAR-10 batch file: {err}") from None
    return data.transpose(0, 2, 3, 1), labels  # channel-major rows -> NHWC


def _assemble(read) -> tuple:
    """``read(name) -> bytes`` for each batch file -> ((x, y), (x, y), class_names)."""
    train = [_batch_arrays(_read_pickle(read(n), n), n) for n in TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(_read_pickle(read("test_batch"), "test_batch"), "test_batch")
    meta = _read_pickle(read("batches.meta"), "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), (x_test, y_test), names


def read_cifar10(path) -> tuple:
    """``((x_train, y_train), (x_test, y_test), class_names)`` from the tar.gz
    or from a folder that is (or contains) ``cifar-10-batches-py``."""
    path = Path(path).expanduser()
    if path.is_file():
        return _read_archive(path)
    folder = path / BATCH_FOLDER if (path / BATCH_FOLDER).is_dir() else path
    if not (folder / "batches.meta").is_file():
        raise DataError(f"{path} holds no CIFAR-10 batches (expected {BATCH_FOLDER}/batches.meta)")

    def read(name: str) -> bytes:
        try:
            return (folder / name).read_bytes()
        except OSError as err:
            raise DataError(f"cannot read {folder / name}: {err.strerror}") from None

    return _assemble(read)


def _read_archive(path: Path) -> tuple:
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"{path} is not a CIFAR-10 archive: {err}") from None
    with archive:
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            if name not in members:
                raise DataError(f"{path} has no {name}: not cifar-10-python.tar.gz")
            return archive.extractfile(members[name]).read()

        return _assemble(read)


def keras_cache_folder() -> Path:
    """Where ``keras.datasets.cifar10.load_data()`` leaves the extracted batches."""
    base = os.path.expanduser(keras.src.backend.config.keras_home())  # honours KERAS_HOME
    if not os.access(base, os.W_OK):  # get_file's own fallback for read-only homes
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "datasets" / KERAS_CACHE_NAME / BATCH_FOLDER


def load_cifar10_keras() -> tuple:
    """CIFAR-10 via Keras: read its extracted cache if present (no network,
    no re-hash), else ``keras.datasets.cifar10.load_data()`` downloads it."""
    cached = keras_cache_folder()
    if (cached / "batches.meta").is_file():
        return read_cifar10(cached)
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    meta = _read_pickle((keras_cache_folder() / "batches.meta").read_bytes(), "batches.meta")
    names = [n.decode() for n in meta["label_names"]]
    return (_nhwc(x_train), y_train.reshape(-1).astype(np.int64)), (
        _nhwc(x_test), y_test.reshape(-1).astype(np.int64)), names


def _nhwc(x: np.ndarray) -> np.ndarray:
    # load_data() follows keras.config.image_data_format(); portaclass is channels_last.
    return x.transpose(0, 2, 3, 1) if x.shape[1] == 3 and x.shape[-1] != 3 else x
