"""Decoding one image file with Pillow into a uint8 array, whatever its mode.

Real folders hold phone photos rotated by EXIF, palette GIFs, 16-bit TIFFs,
CMYK JPEGs and files that are not what their extension says. Every failure is
raised as ``DecodeError`` with a short reason, so callers can skip and record.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from portaclass.data.constants import RESIZE_MODES
from portaclass.errors import UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Same default as Pillow's own decompression-bomb guard (~89.5 Mpx).
DEFAULT_MAX_PIXELS = 89_478_485


class DecodeError(Exception):
    """A file that cannot be used as an image; ``str(err)`` is the reason."""


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def open_checked(path: str | Path | io.BytesIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open lazily (header only) and refuse empty files and oversized images;
    ``path`` may be a ``BytesIO`` (an upload held in memory)."""
    in_memory = isinstance(path, io.BytesIO)
    path = path if in_memory else Path(path)
    try:
        if (len(path.getbuffer()) if in_memory else path.stat().st_size) == 0:
            raise DecodeError("empty file (0 bytes)")
        image = Image.open(path)
    except DecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb: {err}") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not a readable image: not in any image format Pillow reads") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DecodeError(f"not a readable image: {_short(err)}") from None
    pixels = image.size[0] * image.size[1]
    if pixels > max_pixels:
        image.close()
        raise DecodeError(f"decompression bomb: {pixels} pixels > limit {max_pixels}")
    return image


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> "L" (channels=1) or "RGB" (channels=3).

    Alpha is dropped, as Keras' decoders do; 16/32-bit greyscale is scaled
    down to 8 bits rather than clipped (clipping turns most 16-bit scans white).
    """
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    target = "L" if channels == 1 else "RGB"
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image).astype(np.float32)
        high = float(values.max()) if values.size else 0.0
        if high > 255.0:  # 16-bit range (or wider): map the full range to 0..255
            values = values * (255.0 / (65535.0 if high <= 65535.0 else high))
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode != target:
        image = image.convert(target)
    return image


def resize(image: Image.Image, size_hw: tuple[int, int], mode: str = "plain") -> Image.Image:
    """Resize to (height, width): ``plain`` stretches, ``crop`` centre-crops to
    the target aspect first, ``pad`` letterboxes with black to the target aspect."""
    height, width = size_hw
    if image.size == (width, height):
        return image
    if mode == "plain":
        return image.resize((width, height), Image.BILINEAR)
    if mode == "crop":
        return ImageOps.fit(image, (width, height), Image.BILINEAR)
    if mode == "pad":
        return ImageOps.pad(image, (width, height), Image.BILINEAR, color=0)
    raise UsageError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")


def crop_relative(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Cut ``box`` = (top, left, height, width), as fractions of the image's
    height and width, out of ``image`` (at least one pixel each way)."""
    top, left, height, width = box
    full_w, full_h = image.size
    x0, y0 = int(left * full_w), int(top * full_h)
    x1 = min(full_w, max(x0 + 1, int(round((left + width) * full_w))))
    y1 = min(full_h, max(y0 + 1, int(round((top + height) * full_h))))
    return image.crop((x0, y0, x1, y1))


def fit_region(image: Image.Image, size_hw: tuple[int, int] | None, resize_mode: str = "plain",
               box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """``box`` (see ``crop_relative``) cut out of ``image`` if given, then
    resized to ``size_hw`` if given."""
    if box is not None:
        image = crop_relative(image, box)
    if size_hw is not None:
        image = resize(image, size_hw, resize_mode)
    return image


def load_image(
    path: str | Path | io.BytesIO,
    size_hw: tuple[int, int] | None = None,
    channels: int = 3,
    resize_mode: str = "plain",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """A file -> a loaded Pillow image ("L" or "RGB"), EXIF orientation
    applied; with ``box`` (see ``crop_relative``) only that region, then
    resized to ``size_hw``.

    When ``size_hw`` is given and the file is a JPEG, Pillow's draft mode lets
    libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target, the
    region included), which is most of the speed on large photos.
    """
    image = open_checked(path, max_pixels)
    try:
        with image:
            if size_hw is not None and image.format == "JPEG":
                side = max(size_hw)  # EXIF may swap the axes: ask for the larger side on both
                if box is not None:  # the region must still cover the target
                    side = int(np.ceil(side / min(box[2], box[3])))
                image.draft(None, (side, side))
            image.load()
            image = ImageOps.exif_transpose(image)  # a new image: it outlives the file's
            image = fit_region(to_channels(image, channels), size_hw, resize_mode, box)
    except DecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb: {err}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DecodeError(f"cannot decode: {_short(err)}") from None
    return image


def as_array(image: Image.Image) -> np.ndarray:
    """A Pillow "L" or "RGB" image -> uint8 (H, W, channels)."""
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def decode_image(
    path: str | Path | io.BytesIO,
    size_hw: tuple[int, int] | None = None,
    channels: int = 3,
    resize_mode: str = "plain",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """A file -> uint8 array (H, W, channels): ``load_image`` as an array."""
    return as_array(load_image(path, size_hw, channels, resize_mode, max_pixels, box))


def decode_bytes(
    data: bytes,
    size_hw: tuple[int, int] | None = None,
    channels: int = 3,
    resize_mode: str = "plain",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Encoded image bytes (an upload, a base64 field) -> uint8 array
    (H, W, channels), with the same checks and reasons as a file."""
    return decode_image(io.BytesIO(data), size_hw, channels, resize_mode, max_pixels)


def check_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """None if the file decodes fully, else the reason it does not.

    ``verify`` catches broken PNG/GIF structure; a full ``load`` (at draft
    scale for JPEGs, which still reads every byte) catches truncation.
    """
    try:
        with open_checked(path, max_pixels) as image:
            image.verify()
        with open_checked(path, max_pixels) as image:
            if image.format == "JPEG":
                image.draft(None, (64, 64))
            image.load()
    except DecodeError as err:
        return str(err)
    except Image.DecompressionBombError as err:
        return f"decompression bomb: {_short(err)}"
    except Exception as err:  # noqa: BLE001 - any failure here means "skip this file"
        return f"cannot decode: {_short(err)}"
    return None


def _short(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:160]
