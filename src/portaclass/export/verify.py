"""The check every export passes before it is kept: the exported file, run in
its own runtime on a fixed batch of real-looking images, gives the Keras
model's probabilities to within a tolerance, with the same top-1 class."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from portaclass.data.normalize import normalize
from portaclass.data.shapes import SHAPE_CLASSES, draw_shape
from portaclass.inference import as_probabilities

# float32 through another runtime differs by rounding only (1e-7 measured);
# float16/bfloat16 compute differs more by nature.
TOLERANCE = {"float32": 1e-4, "mixed": 1e-2}
BATCH = 8


@dataclass
class Verification:
    max_abs_diff: float
    top1_agreement: float  # share of images with the same top-1 class
    images: int
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0

    def summary(self) -> str:
        return (f"max abs difference {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}), "
                f"top-1 agreement {self.top1_agreement:.0%} on {self.images} images")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def verification_images(input_shape, count: int = BATCH, seed: int = 0) -> np.ndarray:
    """``count`` uint8 images (N, H, W, C) at the model's input size: drawn
    shapes on coloured backgrounds with sensor noise, not constant arrays
    (a zero batch hides a wrong channel order or scaling)."""
    h, w, c = input_shape
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        rgb = draw_shape(SHAPE_CLASSES[i % len(SHAPE_CLASSES)], max(h, w), rng)[:h, :w]
        if c == 1:
            rgb = rgb.mean(axis=-1, keepdims=True).round().astype(np.uint8)
        elif c == 4:
            rgb = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1)
        images.append(rgb)
    return np.stack(images)


def exported_input(pixels: np.ndarray, classifier, includes_preprocessing: bool) -> np.ndarray:
    """What the exported file takes for ``pixels``: float32 NHWC, raw pixels
    when the preprocessing is inside, else normalised as the model declares."""
    if includes_preprocessing:
        return pixels.astype(np.float32)
    return normalize(pixels, classifier.preprocessing).astype(np.float32)


def verify(run_exported, classifier, *, includes_preprocessing: bool) -> Verification:
    """Compare ``run_exported`` (a runtime from ``runtimes.open_runtime``)
    with the Keras ``classifier`` on ``verification_images``."""
    pixels = verification_images(classifier.input_shape)
    reference = classifier.probabilities(pixels, batch_size=len(pixels))
    got = np.asarray(run_exported(exported_input(pixels, classifier, includes_preprocessing)),
                     np.float32)
    got = as_probabilities(got.reshape(reference.shape))  # logits, as the reference treats them
    return Verification(float(np.abs(got - reference).max()),
                        float(np.mean(got.argmax(axis=1) == reference.argmax(axis=1))),
                        len(pixels), tolerance_of(classifier.model))


def tolerance_of(model) -> float:
    policy = getattr(getattr(model, "dtype_policy", None), "compute_dtype", "float32")
    mixed = any(getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16")
                for layer in model._flatten_layers(include_self=False))
    return TOLERANCE["mixed" if mixed or policy != "float32" else "float32"]
