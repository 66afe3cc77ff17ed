"""Images a user hands to predict, evaluate or explain, as uint8 arrays.

A user passes files, folders (walked recursively), Pillow images or NumPy
arrays, of any size, mode and channel count. Each becomes an ``(H, W, C)``
uint8 array at the model's input size and channel count, decoded the way the
training pipeline decodes (``data/decode.py``: EXIF orientation, any mode,
the run's resize mode), so a model sees at prediction what it saw in
training. A file that cannot be used is one ``InputImage`` with an
``error``, never an exception that stops the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from portaclass.data.decode import (
    IMAGE_EXTENSIONS,
    DecodeError,
    as_array,
    fit_region,
    is_image_name,
    load_image,
    to_channels,
)
from portaclass.errors import UsageError

# How much larger than the input size test-time augmentation decodes, so
# that its shifted windows stay inside the image: the ``light`` preset's
# crop margin (data/augment.py), whose geometry TTA replays.
TTA_MARGIN = 1.125


@dataclass
class InputImage:
    """One user input: ``name`` (a path, or ``<image N>`` for an in-memory
    one), and either ``pixels`` (uint8 ``(H, W, C)``) or ``error``."""

    name: str
    pixels: np.ndarray | None = None
    error: str | None = None


def as_image_list(images) -> list:
    """One image or many, as the public functions take them: a path, a
    Pillow image or an array is one image, an ``(N, H, W, C)`` array is N."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def expand_paths(items: Iterable) -> list:
    """Files and in-memory images in the order given, each folder replaced by
    the image files under it (sorted, recursively). A path that does not
    exist is a UsageError naming it (a typo is not a bad image), and so is a
    folder without image files."""
    expanded: list = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if path.is_dir():
                found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name)
                               and not any(part.startswith(".") for part in p.relative_to(path).parts))
                if not found:
                    raise UsageError(f"{path}: no image files in this folder "
                                     f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
                expanded.extend(found)
            elif path.exists():
                expanded.append(path)
            else:
                raise UsageError(f"{path}: no such file or folder")
        else:
            expanded.append(item)
    return expanded


def _from_memory(item, size_hw, channels: int, resize_mode: str) -> np.ndarray:
    if isinstance(item, Image.Image):
        image = item
    else:
        array = np.asarray(item)
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]  # alpha dropped, as the file decoder does
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
            raise DecodeError(f"an array of shape {array.shape} is not an image "
                              "(expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), channels last)")
        if array.dtype != np.uint8:
            high = float(np.nanmax(array)) if array.size else 0.0
            # floats in [0, 1] are scaled up; anything else is read as 0..255
            array = array * 255.0 if array.dtype.kind == "f" and high <= 1.0 else array
            array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    return as_array(fit_region(to_channels(image, channels), size_hw, resize_mode))


def load_input(item, size_hw: tuple[int, int], channels: int, *, resize_mode: str = "plain",
               name: str | None = None) -> InputImage:
    """One path / Pillow image / array -> an ``InputImage`` at ``size_hw``."""
    name = name or (str(item) if isinstance(item, (str, os.PathLike)) else "<image>")
    try:
        if isinstance(item, (str, os.PathLike)):
            pixels = as_array(load_image(item, size_hw, channels, resize_mode))
        else:
            pixels = _from_memory(item, size_hw, channels, resize_mode)
    except DecodeError as error:
        return InputImage(name, error=str(error))
    except OSError as error:  # unreadable file (permissions, vanished)
        return InputImage(name, error=f"cannot read: {error.strerror or error}")
    return InputImage(name, pixels=pixels)


def iter_inputs(items: list, size_hw: tuple[int, int], channels: int, *, resize_mode: str = "plain",
                batch_size: int = 32, workers: int | None = None) -> Iterator[list[InputImage]]:
    """``items`` (already expanded) loaded in batches of ``batch_size``,
    decoded on a thread pool (Pillow releases the GIL while decoding)."""
    names = [str(item) if isinstance(item, (str, os.PathLike)) else f"<image {i}>"
             for i, item in enumerate(items)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for start in range(0, len(items), batch_size):
            chunk = range(start, min(start + batch_size, len(items)))
            yield list(pool.map(lambda i: load_input(items[i], size_hw, channels,
                                                     resize_mode=resize_mode, name=names[i]), chunk))


def tta_views(pixels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Test-time augmentation views of one image at ``size_hw``: the image,
    its mirror, and two windows shifted diagonally by the ``light`` preset's
    margin (and their mirrors) -- the geometry the model was trained to
    ignore, drawn deterministically. Returns ``(6, H, W, C)`` uint8."""
    height, width = size_hw
    big_h, big_w = round(height * TTA_MARGIN), round(width * TTA_MARGIN)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    large = as_array(image.resize((big_w, big_h), Image.BILINEAR))
    shifted = [large[:height, :width], large[big_h - height:, big_w - width:]]
    views = [pixels, *shifted]
    views += [view[:, ::-1] for view in views]
    return np.stack(views)
