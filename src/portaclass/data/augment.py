"""Augmentation presets, built from Keras preprocessing layers and run in the
input pipeline on the CPU (never part of the model, so a saved model carries
no training-only layers and predicts the same on every backend).

MixUp and CutMix are not in the presets: they need soft (one-hot) labels,
which would change the loss the trainer compiles; pipelines therefore always
yield integer labels (``soft_labels = False``). RandAugment is not used
either: it picks affine ops with "reflect" fill, which on the torch backend
took up to minutes per 224-px batch in our measurements.
"""

from __future__ import annotations

import threading

import numpy as np

from portaclass.errors import UsageError

PRESETS = ("none", "light", "standard", "strong")
# Images are augmented before normalisation, in uint8 range.
VALUE_RANGE = (0, 255)


# Presets that shift the image do it by decoding this much larger and taking
# a random crop of the target size: as good as a translation and ~40x cheaper
# than Keras' affine transform, which is slow on the torch backend
# (RandomTranslation with fill_mode="reflect": ~6 s per 32 images at 224 px).
CROP_MARGIN = 1.125
# Fill mode for rotation/zoom: on the torch backend Keras' affine transform
# takes ~20 s per 32 images at 252 px with "reflect" (the default) or
# "nearest", ~0.4 s with "constant". Black corners at small angles are harmless.
FILL_MODE = "constant"


def _preset_layers(preset: str, seed: int, size_hw: tuple[int, int] | None) -> list:
    import keras

    layers = keras.layers
    fmt = {"data_format": "channels_last"}  # our batches are NHWC whatever keras.config says
    crop = [layers.RandomCrop(*size_hw, seed=seed + 10, **fmt)] if size_hw else []
    if preset == "none":
        return []
    if preset == "light":
        return crop + [layers.RandomFlip("horizontal", seed=seed, **fmt)]
    if preset == "standard":
        return crop + [
            layers.RandomFlip("horizontal", seed=seed, **fmt),
            layers.RandomRotation(0.05, fill_mode=FILL_MODE, seed=seed + 1, **fmt),
            layers.RandomContrast(0.2, value_range=VALUE_RANGE, seed=seed + 4, **fmt),
            layers.RandomBrightness(0.15, value_range=VALUE_RANGE, seed=seed + 5, **fmt),
        ]
    if preset == "strong":
        return crop + [
            layers.RandomFlip("horizontal", seed=seed, **fmt),
            layers.RandomZoom((-0.2, 0.2), fill_mode=FILL_MODE, seed=seed + 1, **fmt),
            layers.RandomRotation(0.1, fill_mode=FILL_MODE, seed=seed + 2, **fmt),
            layers.RandomContrast(0.35, value_range=VALUE_RANGE, seed=seed + 3, **fmt),
            layers.RandomBrightness(0.25, value_range=VALUE_RANGE, seed=seed + 4, **fmt),
        ]
    raise UsageError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")


class Augmenter:
    """Applies a preset to NHWC batches in uint8 range; returns float32 NumPy.

    Layers hold a seed generator (a Keras variable), so calls are serialised
    with a lock: pipeline worker threads may call this concurrently.
    """

    def __init__(self, preset: str = "none", seed: int = 0, size_hw: tuple[int, int] | None = None):
        """With ``size_hw`` the preset ends batches at that size via a random
        crop: feed it images of ``input_size(size_hw)``. Without it no crop is
        applied and batches keep their shape."""
        if preset not in PRESETS:
            raise UsageError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self.size_hw = size_hw if preset != "none" else None
        self.soft_labels = False
        self._lock = threading.Lock()
        self._layers = []
        if preset != "none":
            from portaclass.backend import on_device

            with on_device("cpu"):  # on a GPU machine the layers' state stays on the host too
                self._layers = _preset_layers(preset, seed, self.size_hw)

    def input_size(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        """The size to decode to so the final crop yields ``size_hw``."""
        if self.size_hw is None:
            return size_hw
        return tuple(int(round(s * CROP_MARGIN)) for s in size_hw)

    def __bool__(self) -> bool:
        return bool(self._layers)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if not self._layers:
            return x
        from portaclass.backend import on_device, to_numpy

        with self._lock, on_device("cpu"):
            for layer in self._layers:
                x = layer(x, training=True)
            out = to_numpy(x)
        return np.clip(np.asarray(out, dtype=np.float32), *VALUE_RANGE)


def augment_batch(images: np.ndarray, preset: str, seed: int = 0) -> np.ndarray:
    """One-off: ``images`` (NHWC, 0..255) augmented with ``preset``, float32."""
    return Augmenter(preset, seed)(images)
