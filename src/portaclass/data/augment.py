"""Augmentation presets, built from Keras preprocessing layers and run in the
input pipeline on the CPU (never part of the model, so a saved model carries
no training-only layers and predicts the same on every backend).

MixUp and CutMix are not in the presets: they need soft (one-hot) labels,
which would change the loss the trainer compiles; pipelines therefore always
yield integer labels (``soft_labels = False``).
"""

from __future__ import annotations

import threading

import numpy as np

from portaclass.errors import UsageError

PRESETS = ("none", "light", "standard", "strong")
# Images are augmented before normalisation, in uint8 range.
VALUE_RANGE = (0, 255)


def _preset_layers(preset: str, seed: int) -> list:
    import keras

    layers = keras.layers
    fmt = {"data_format": "channels_last"}  # our batches are NHWC whatever keras.config says
    if preset == "none":
        return []
    if preset == "light":
        return [
            layers.RandomFlip("horizontal", seed=seed, **fmt),
            layers.RandomTranslation(0.08, 0.08, seed=seed + 1, **fmt),
        ]
    if preset == "standard":
        return [
            layers.RandomFlip("horizontal", seed=seed, **fmt),
            layers.RandomRotation(0.08, seed=seed + 1, **fmt),
            layers.RandomZoom(0.15, seed=seed + 2, **fmt),
            layers.RandomTranslation(0.1, 0.1, seed=seed + 3, **fmt),
            layers.RandomContrast(0.2, value_range=VALUE_RANGE, seed=seed + 4, **fmt),
            layers.RandomBrightness(0.15, value_range=VALUE_RANGE, seed=seed + 5, **fmt),
        ]
    if preset == "strong":
        return [
            layers.RandomFlip("horizontal", seed=seed, **fmt),
            layers.RandomZoom((-0.25, 0.25), seed=seed + 1, **fmt),
            layers.RandomTranslation(0.15, 0.15, seed=seed + 2, **fmt),
            layers.RandAugment(value_range=VALUE_RANGE, num_ops=2, factor=0.5, seed=seed + 3, **fmt),
        ]
    raise UsageError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")


class Augmenter:
    """Applies a preset to NHWC batches in uint8 range; returns float32 NumPy.

    Layers hold a seed generator (a Keras variable), so calls are serialised
    with a lock: pipeline worker threads may call this concurrently.
    """

    def __init__(self, preset: str = "none", seed: int = 0):
        if preset not in PRESETS:
            raise UsageError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self.soft_labels = False
        self._lock = threading.Lock()
        self._layers = []
        if preset != "none":
            from portaclass.backend import on_device

            with on_device("cpu"):  # on a GPU machine the layers' state stays on the host too
                self._layers = _preset_layers(preset, seed)

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
