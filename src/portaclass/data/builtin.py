"""Built-in datasets that need no download."""

from __future__ import annotations

import numpy as np
from PIL import Image


def load_digits(image_size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's handwritten digits (1,797 real 8x8 scans, ships with
    scikit-learn) as uint8 images of ``image_size`` x ``image_size`` x 1."""
    # here, not at the top: scikit-learn takes ~0.5 s to import
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    small = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    images = np.stack(
        [np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.BILINEAR)) for im in small]
    )[..., None]
    return images, digits.target.astype(np.int64), [str(i) for i in range(10)]
