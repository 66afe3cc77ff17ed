"""A ``.keras`` archive written around its weights file, with no copy of it.

A ``.keras`` file is a zip archive of stored (uncompressed) members:
``model.weights.h5`` (HDF5), ``config.json``, ``metadata.json`` and, in
portaclass' files, its own JSON members. Keras' zipped save builds the
weights file in memory and copies it into the zip (+146 MB at the peak for
a ResNet-18 checkpoint with Adam's moments); its unzipped save writes it to
disk, and zipping that copies every byte once more (0.15 s of 0.4 s per
checkpoint, every epoch).

Here the weights file becomes the archive: HDF5 lets a file begin with a
"user block" it ignores, so Keras' unzipped save is asked for one (512
bytes, the h5py writer Keras uses is wrapped for the call), the zip header
of the ``model.weights.h5`` member goes into it, and the other members and
the zip directory are appended after the HDF5 data. The member's bytes are
then exactly an HDF5 file with its superblock first, which is how HDF5
reads a file whose user block was cut off (h5unjam relies on it). Python's
zipfile and Keras read the result as any other ``.keras`` file (tested).

A model Keras saves with assets (lookup tables), weights over 2 GiB (the
limit of a zip without ZIP64 records) or a Keras whose writer can't be
wrapped take Keras' own zipped save instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import time
import zipfile
import zlib
from pathlib import Path

from portaclass._lazy import keras
from portaclass.train import archive_layout

USER_BLOCK = archive_layout.USER_BLOCK  # HDF5's smallest; a zip header of the weights member is 46 bytes
WEIGHTS = "model.weights.h5"
KERAS_MEMBERS = ("metadata.json", "config.json")  # beside the weights, in the unzipped save
ZIP_LIMIT = 2**31 - 1  # offsets and sizes must fit the plain (not ZIP64) records


def write_archive(model, path: Path, members: dict[str, bytes]) -> None:
    """Save ``model`` as the ``.keras`` archive ``path`` (a file nobody
    reads meanwhile: a new one, or a spare overwritten in place), with
    ``members`` (name -> bytes) added. The model's first save goes through
    Keras; the next ones, while its variables stay the same objects, write
    their values into the first one's layout (``archive_layout``)."""
    path = Path(path)
    layout = archive_layout.layout_for(model)
    if layout is not None:  # a save of this model before: values into its layout
        from keras.src.saving import saving_lib

        config, metadata = saving_lib._serialize_model_as_json(model)
        crc = layout.write(path)
        _wrap_in_zip(path, {"metadata.json": metadata.encode(), "config.json": config.encode(),
                            **members}, weights_crc=crc)
        return
    if _has_assets(model):
        _write_with_keras(model, path, members)
        return
    unpacked = path.with_name(path.name.removesuffix(".keras") + ".d")
    try:
        with _hdf5_user_block(USER_BLOCK), archive_layout.Recorder() as recorder:
            keras.saving.save_model(model, unpacked, zipped=False)
        _remember_attr_skipsets()
        weights = unpacked / WEIGHTS
        if not _starts_after_user_block(weights) or weights.stat().st_size > ZIP_LIMIT - (1 << 24):
            _write_with_keras(model, path, members)
            return
        os.replace(weights, path)
        archive_layout.remember(model, archive_layout.ArchiveLayout.learn(model, path, recorder))
        extra = {name: (unpacked / name).read_bytes() for name in KERAS_MEMBERS}
        _wrap_in_zip(path, {**extra, **members})
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _remember_attr_skipsets() -> None:
    """Keras caches the attribute names its walk skips per kind of object
    under one key and looks them up under another (``saving_attr_skipset_``
    vs ``saving_attr_skiplist_``, keras 3.15), so every save builds a
    reference ``Layer()`` per layer to list them again: 0.06 s of a
    ResNet-18 save. The cached sets are static; store them where the
    lookup reads."""
    from keras.src.backend.common import global_state

    for kind in ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss"):
        cached = global_state.get_global_attribute(f"saving_attr_skipset_{kind}", None)
        if cached is not None:
            global_state.set_global_attribute(f"saving_attr_skiplist_{kind}", cached)


def _write_with_keras(model, path: Path, members: dict[str, bytes]) -> None:
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _has_assets(model) -> bool:
    """Whether some layer saves files beside its weights (lookup tables):
    Keras' unzipped save drops those, so such models take the zipped one."""
    return any(hasattr(layer, "save_assets") for layer in model._flatten_layers())


@contextlib.contextmanager
def _hdf5_user_block(size: int):
    """While Keras saves, the HDF5 files it creates for writing begin with
    ``size`` bytes of user block."""
    from keras.src.saving import saving_lib

    real = saving_lib.h5py

    class H5pyWithUserBlock:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def File(name, mode="r", **options):  # noqa: N802 - h5py's name
            if mode == "w" and isinstance(name, (str, os.PathLike)):
                options.setdefault("userblock_size", size)
            return real.File(name, mode=mode, **options)

    saving_lib.h5py = H5pyWithUserBlock()
    try:
        yield
    finally:
        saving_lib.h5py = real


def _starts_after_user_block(weights: Path) -> bool:
    with open(weights, "rb") as f:
        f.seek(USER_BLOCK)
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _wrap_in_zip(path: Path, members: dict[str, bytes], weights_crc: int | None = None) -> None:
    """Turn the HDF5 file ``path`` (with its user block) into a zip archive
    whose first member is that HDF5 data, followed by ``members``;
    ``weights_crc``: the CRC-32 of that data when the writer computed it."""
    stamp = _dos_time()
    entries = []  # (name, crc, size, local header offset)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size - USER_BLOCK
        crc = weights_crc
        if crc is None:
            f.seek(USER_BLOCK)
            crc = 0
            while chunk := f.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
        header = _local_header(WEIGHTS, crc, size, stamp)
        entries.append((WEIGHTS, crc, size, USER_BLOCK - len(header)))
        f.seek(USER_BLOCK - len(header))
        f.write(header)
        f.seek(0, os.SEEK_END)
        for name, data in members.items():
            crc = zlib.crc32(data)
            entries.append((name, crc, len(data), f.tell()))
            f.write(_local_header(name, crc, len(data), stamp))
            f.write(data)
        directory_start = f.tell()
        for name, crc, length, offset in entries:
            f.write(_directory_entry(name, crc, length, offset, stamp))
        directory_size = f.tell() - directory_start
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                            directory_size, directory_start, 0))


# Zip records (APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16): stored members, version 2.0.
def _local_header(name: str, crc: int, size: int, stamp: tuple[int, int]) -> bytes:
    encoded = name.encode("ascii")
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, *stamp, crc, size, size,
                       len(encoded), 0) + encoded


def _directory_entry(name: str, crc: int, size: int, offset: int, stamp: tuple[int, int]) -> bytes:
    encoded = name.encode("ascii")
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, *stamp, crc, size, size,
                       len(encoded), 0, 0, 0, 0, 0, offset) + encoded


def _dos_time() -> tuple[int, int]:
    """(time, date) as zip records keep them."""
    year, month, day, hour, minute, second = time.localtime()[:6]
    return (hour << 11) | (minute << 5) | (second // 2), ((max(year, 1980) - 1980) << 9) | (month << 5) | day
