"""Titled grids of images drawn with Pillow: the augmentation preview, the
report's top losses and Grad-CAM overlays.

Pillow rather than matplotlib: a grid is pictures and a few lines of text, and
matplotlib's layout pass and PNG writer made the grids about half of what the
end-of-run report cost (docs/benchmarks.md, "What the report costs a run").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PADDING = 8
JPEG_QUALITY = 90  # captions stay crisp; photos lose nothing visible


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _as_rgb(image: np.ndarray) -> Image.Image:
    """uint8, or floats in [0, 1]; (H, W, 1) grey or (H, W, 3)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


def _fit(picture: Image.Image, tile: int) -> Image.Image:
    """Scaled to fit a tile x tile box: pixels kept sharp when enlarged (an
    8 px digit stays readable), smoothed when shrunk."""
    scale = tile / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return picture.resize(size, method)


def _text_height(draw: ImageDraw.ImageDraw, lines: list[str], font) -> int:
    if not lines:
        return 0
    return draw.multiline_textbbox((0, 0), "\n".join(lines), font=font, spacing=2)[3] + 4


def image_grid(images: list[np.ndarray], titles: list[str], path, *, columns: int = 4, title: str = "",
               tile: int = 200, fontsize: int = 13, image_format: str = "PNG") -> Path:
    """Images (H, W, C), uint8 or floats in [0, 1], in a grid, each under its
    (multi-line) title; a PNG at ``path``, or into a file object (the report
    inlines its images). ``image_format="JPEG"``: a grid of photos at a
    fifth of the PNG's bytes, encoded 50x faster (docs/benchmarks.md)."""
    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    font, title_font = _font(fontsize), _font(fontsize + 3)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption = max((_text_height(measure, str(text).splitlines(), font) for text in titles), default=0)
    heading = _text_height(measure, title.splitlines(), title_font) + (PADDING if title else 0)
    cell_w, cell_h = tile + PADDING, caption + tile + PADDING
    canvas = Image.new("RGB", (columns * cell_w + PADDING, heading + rows * cell_h + PADDING), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.multiline_text((canvas.width // 2, PADDING), title, font=title_font, fill=INK, anchor="ma",
                            align="center", spacing=2)
    for i, (image, text) in enumerate(zip(images, titles)):
        left = PADDING + (i % columns) * cell_w
        top = heading + PADDING + (i // columns) * cell_h
        draw.multiline_text((left + tile // 2, top), str(text), font=font, fill=INK, anchor="ma",
                            align="center", spacing=2)
        picture = _fit(_as_rgb(image), tile)
        canvas.paste(picture, (left + (tile - picture.width) // 2, top + caption + (tile - picture.height) // 2))
    if not hasattr(path, "write"):  # else a file object: the report inlines its images
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format=image_format, **({"quality": JPEG_QUALITY} if image_format == "JPEG" else {}))
    return path
