"""Augmentation presets, built from Keras preprocessing layers and run in the
input pipeline on the CPU (never part of the model, so a saved model carries
no training-only layers and predicts the same on every backend).

``strong`` adds RandAugment (``data/randaugment.py``) and MixUp or CutMix
(``data/mixing.py``). Mixing blends labels too, so a ``strong`` pipeline
yields one-hot soft labels (``Augmenter.soft_labels``) and the trainer
compiles categorical instead of sparse cross-entropy.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from portaclass import checks
from portaclass._lazy import backend, keras
from portaclass.data.constants import FILL_MODE, PRESETS, VALUE_RANGE
from portaclass.data.mixing import BatchMixer
from portaclass.data.randaugment import RandAugment
from portaclass.errors import UsageError

# Presets that shift the image do it by decoding this much larger and taking
# a random crop of the target size: as good as a translation and ~40x cheaper
# than Keras' affine transform, which is slow on the torch backend
# (RandomTranslation with fill_mode="reflect": ~6 s per 32 images at 224 px).
CROP_MARGIN = 1.125
# ``strong`` zooms and stretches with a random resized crop (torchvision's
# RandomResizedCrop recipe): a region of 35-100% of the image's area, aspect
# 3/4-4/3 of it, cut by Pillow while decoding in the worker threads, where
# the resize happens anyway. Keras has no such layer, and RandomZoom's affine
# transform costs ~0.4 s per 32 images on the torch backend.
RESIZED_CROP_AREA = (0.35, 1.0)
RESIZED_CROP_ASPECT = (3 / 4, 4 / 3)


def resized_crop_box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A random (top, left, height, width) region, as fractions of the image."""
    area = rng.uniform(*RESIZED_CROP_AREA)
    aspect = np.exp(rng.uniform(*np.log(RESIZED_CROP_ASPECT)))
    width = min(1.0, float(np.sqrt(area * aspect)))
    height = min(1.0, float(np.sqrt(area / aspect)))
    return float(rng.uniform(0, 1 - height)), float(rng.uniform(0, 1 - width)), height, width


def _preset_layers(preset: str, seed: int, size_hw: tuple[int, int] | None) -> list:
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
            RandAugment(num_ops=2, magnitude=0.5, seed=seed, value_range=VALUE_RANGE),
        ]
    checks.choice("augment", preset, PRESETS)
    return []


def mixes_labels(preset: str) -> bool:
    """Whether ``preset`` blends images and labels (MixUp/CutMix), so that its
    pipelines yield one-hot soft labels."""
    return preset == "strong"


class Augmenter:
    """Applies a preset to NHWC batches in uint8 range; returns float32 NumPy.

    Keras layers hold seed state (a variable) and are not safe to call from
    several threads at once. Each call checks out a set of layers of its own
    from a pool (building one, seeded ``seed + 7919 * k`` for the k-th, when
    all are busy) and returns it after: pipeline worker threads augment in
    parallel, and the sets are reused although Keras starts new worker
    threads every epoch.
    """

    def __init__(self, preset: str = "none", seed: int = 0, size_hw: tuple[int, int] | None = None,
                 num_classes: int | None = None):
        """With ``size_hw`` the preset ends batches at that size via a random
        crop: feed it images of ``input_size(size_hw)``. Without it no crop is
        applied and batches keep their shape. ``num_classes`` is needed by
        presets that mix labels (``soft_labels``)."""
        checks.choice("augment", preset, PRESETS)
        self.preset = preset
        self.size_hw = size_hw if preset != "none" else None
        self.soft_labels = mixes_labels(preset)
        self.resized_crop = preset == "strong"
        self.num_classes = num_classes
        self._seed = seed
        self._pool_lock = threading.Lock()
        self._idle: list[tuple[list, object]] = []
        self.layer_sets_built = 0
        self._checkin(self._checkout())  # build one now: a bad preset fails here, not in a worker

    def _checkout(self) -> tuple[list, object]:
        """An idle (layers, mixer) set, or a new one when all are in use."""
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
            seed = self._seed + 7919 * self.layer_sets_built
            self.layer_sets_built += 1
        layers, mixer = [], None
        if self.preset != "none":
            with backend.on_device("cpu"):  # on a GPU machine the layers' state stays on the host
                layers = _preset_layers(self.preset, seed, self.size_hw)
                if self.soft_labels and self.num_classes:
                    mixer = BatchMixer(self.num_classes, seed)
        return layers, mixer

    def _checkin(self, layer_set: tuple[list, object]) -> None:
        with self._pool_lock:
            self._idle.append(layer_set)

    @contextmanager
    def _borrowed(self):
        """A (layers, mixer) set of this call's own, back in the pool after."""
        layer_set = self._checkout()
        try:
            yield layer_set
        finally:
            self._checkin(layer_set)

    def input_size(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        """The size to decode to so the final crop yields ``size_hw``."""
        if self.size_hw is None:
            return size_hw
        return tuple(int(round(s * CROP_MARGIN)) for s in size_hw)

    def crop_box(self, epoch: int, index: int) -> tuple[float, float, float, float] | None:
        """The region of image ``index`` to decode this epoch (None: all of
        it). Drawn from (seed, epoch, index), so it needs no per-thread state
        and a rerun with the same seed sees the same crops."""
        if not self.resized_crop:
            return None
        return resized_crop_box(np.random.default_rng([self._seed, epoch, index, 31]))

    def transform_images(self, images: np.ndarray) -> np.ndarray:
        """The per-image part of the preset (no mixing): float32 NHWC."""
        x = np.asarray(images, dtype=np.float32)
        if self.preset == "none":
            return x
        with self._borrowed() as (layers, _):
            return self._transform_images(x, layers)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(augmented images, labels)``: with a mixing preset the labels come
        back as float32 one-hot soft labels, else unchanged."""
        x = np.asarray(images, dtype=np.float32)
        if self.preset == "none":
            return x, labels
        if self.soft_labels and not self.num_classes:
            raise UsageError(f"the {self.preset!r} preset mixes labels: "
                             "give Augmenter the number of classes")
        with self._borrowed() as (layers, mixer):
            x = self._transform_images(x, layers)
            if mixer is not None:
                with backend.on_device("cpu"):
                    x, labels = mixer(x, labels)
                x = np.clip(x, *VALUE_RANGE)
        return x, labels

    @staticmethod
    def _transform_images(x: np.ndarray, layers: list) -> np.ndarray:
        with backend.on_device("cpu"):
            for layer in layers:
                x = layer(x, training=True)
            out = backend.to_numpy(x)
        return np.clip(np.asarray(out, dtype=np.float32), *VALUE_RANGE)


def augment_batch(images: np.ndarray, preset: str, seed: int = 0) -> np.ndarray:
    """One-off: ``images`` (NHWC, 0..255) through the per-image part of
    ``preset`` (no MixUp/CutMix: that needs labels), float32."""
    return Augmenter(preset, seed).transform_images(images)
