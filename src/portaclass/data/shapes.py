"""``shapes``: a deterministic synthetic dataset of coloured circles, squares,
stars and triangles, random in size, position, rotation, colour and noise.

Small enough to generate in a test, hard enough that a model must look at
outlines (colour carries no label), easy enough for a small CNN at 32x32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Alphabetical, so the class index matches Keras' order on a written folder.
SHAPE_CLASSES = ["circle", "square", "star", "triangle"]
SUPERSAMPLE = 4  # draw large, then downsample: anti-aliased edges at small sizes


def _outline(kind: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners, radii = 4, [radius] * 4
    elif kind == "triangle":
        corners, radii = 3, [radius] * 3
    else:  # star: 5 points, inner radius 45% of the outer one
        corners, radii = 10, [radius if i % 2 == 0 else 0.45 * radius for i in range(10)]
    step = 2 * np.pi / corners
    return [
        (cx + r * np.cos(angle + i * step), cy + r * np.sin(angle + i * step))
        for i, r in enumerate(radii)
    ]


def _contrasting_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background and a shape colour at least 90 apart in brightness."""
    while True:
        background = rng.integers(0, 256, 3)
        shape = rng.integers(0, 256, 3)
        if abs(int(background.mean()) - int(shape.mean())) >= 90:
            return tuple(int(v) for v in background), tuple(int(v) for v in shape)


def draw_shape(kind: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """One (image_size, image_size, 3) uint8 image of ``kind``."""
    big = image_size * SUPERSAMPLE
    background, colour = _contrasting_colours(rng)
    canvas = Image.new("RGB", (big, big), background)
    radius = rng.uniform(0.22, 0.40) * big
    margin = radius * 0.9
    cx, cy = rng.uniform(margin, big - margin, 2)
    angle = rng.uniform(0, 2 * np.pi)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        draw.polygon(_outline(kind, cx, cy, radius, angle), fill=colour)
    small = np.asarray(canvas.resize((image_size, image_size), Image.LANCZOS), dtype=np.float32)
    noisy = small + rng.normal(0.0, 8.0, small.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def make_shapes(n_per_class: int = 200, image_size: int = 32, seed: int = 0):
    """``(x uint8 (N, H, W, 3), y int64 (N,), class_names)``, class by class.

    The same seed gives the same images on every machine and backend (NumPy
    and Pillow only).
    """
    rng = np.random.default_rng(seed)
    images = [
        draw_shape(kind, image_size, rng) for kind in SHAPE_CLASSES for _ in range(n_per_class)
    ]
    labels = np.repeat(np.arange(len(SHAPE_CLASSES), dtype=np.int64), n_per_class)
    x = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return x, labels, list(SHAPE_CLASSES)


def write_shapes(path, n_per_class: int = 100, image_size: int = 64, seed: int = 0) -> Path:
    """Write ``make_shapes`` as an ImageFolder of PNGs (``path/<class>/<class>_0000.png``)."""
    root = Path(path)
    x, y, class_names = make_shapes(n_per_class, image_size, seed)
    counters = dict.fromkeys(class_names, 0)
    for image, label in zip(x, y):
        name = class_names[label]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{name}_{counters[name]:04d}.png")
        counters[name] += 1
    return root
