"""Fixtures for the data tests: small image folders, hostile files and
images in every Pillow mode a real folder may hold."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A pixel limit small enough that a 120x120 PNG counts as a decompression bomb.
SMALL_PIXEL_LIMIT = 100 * 100


def solid(size=(40, 30), colour=(200, 30, 30), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def jpeg_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save_args)
    return buffer.getvalue()


def write_hostile_files(folder: Path) -> dict[str, str]:
    """Broken files named like images; returns {file name: expected reason prefix}."""
    folder.mkdir(parents=True, exist_ok=True)
    good = jpeg_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    Image.new("RGB", (120, 120), (0, 0, 255)).save(folder / "bomb.png")
    return {
        "truncated.jpg": "cannot decode",
        "empty.jpg": "empty file",
        "text.jpg": "not a readable image",
        "bomb.png": "decompression bomb",
    }


@pytest.fixture
def hostile_dir(tmp_path) -> tuple[Path, dict[str, str]]:
    """An ImageFolder with classes "cats" and "dogs": good PNGs plus hostile
    files in "cats", a hidden file and a non-image file that must be ignored."""
    root = tmp_path / "hostile"
    for cls, colour in (("cats", (250, 10, 10)), ("dogs", (10, 10, 250))):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            solid((48, 40), colour).save(root / cls / f"{cls}_{i}.png")
    expected = write_hostile_files(root / "cats")
    (root / "cats" / ".hidden.jpg").write_text("hidden files are ignored")
    (root / "dogs" / "notes.txt").write_text("not an image extension")
    return root, expected


@pytest.fixture
def shapes_dir(tmp_path) -> Path:
    from portaclass.data import write_shapes

    return write_shapes(tmp_path / "shapes", n_per_class=10, image_size=40, seed=3)


def mode_images() -> dict[str, Image.Image]:
    """One image per Pillow mode portaclass must convert."""
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 30, 3), np.uint8))
    palette_transparent = rgb.convert("P")
    palette_transparent.info["transparency"] = 0
    wide = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16)
    return {
        "L": rgb.convert("L"),
        "LA": rgb.convert("LA"),
        "P": rgb.convert("P"),
        "P_transparent": palette_transparent,
        "RGBA": rgb.convert("RGBA"),
        "CMYK": rgb.convert("CMYK"),
        "I;16": Image.fromarray(wide),
        "I": Image.fromarray(wide.astype(np.int32)),
        "1": rgb.convert("1"),
    }


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 255, (n, 3072), np.uint8), b"labels": [int(v) for v in rng.integers(0, 3, n)],
            b"batch_label": b"tiny"}


def write_tiny_cifar(folder: Path, per_batch: int = 4) -> Path:
    """A ``cifar-10-batches-py`` folder in the real pickle format, 3 classes."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for i in range(1, 6):
        (batches / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(per_batch, i)))
    (batches / "test_batch").write_bytes(pickle.dumps(cifar_batch(per_batch, 99)))
    meta = {b"label_names": [b"airplane", b"automobile", b"bird"], b"num_vis": 3072}
    (batches / "batches.meta").write_bytes(pickle.dumps(meta))
    return batches


@pytest.fixture
def tiny_cifar(tmp_path) -> Path:
    return write_tiny_cifar(tmp_path / "extracted")


@pytest.fixture
def tiny_cifar_archive(tmp_path, tiny_cifar) -> Path:
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_cifar, arcname="cifar-10-batches-py")
    return archive
