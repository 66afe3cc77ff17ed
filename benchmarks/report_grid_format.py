"""The report's photo grid as PNG against JPEG: seconds to draw and encode
twelve photos (best of 5) and the bytes inlined into report.html.

    python benchmarks/report_grid_format.py PHOTO_FOLDER [--count 12] [--size 96]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from portaclass.data.decode import IMAGE_EXTENSIONS
from portaclass.report import grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[:args.count]
    images = [np.asarray(Image.open(p).convert("RGB").resize((args.size, args.size))) for p in paths]
    titles = [p.parent.name for p in paths]
    for image_format in ("PNG", "JPEG"):
        best, size = float("inf"), 0
        for _ in range(5):
            buffer = io.BytesIO()
            start = time.perf_counter()
            grid.image_grid(images, titles, buffer, title="highest loss first", image_format=image_format)
            best, size = min(best, time.perf_counter() - start), len(buffer.getvalue())
        print(f"{image_format}: {best:.3f} s, {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
