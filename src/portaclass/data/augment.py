"""Augmentation presets: drawn per image from (seed, epoch, index), applied
with Pillow in the pipeline's decode threads, never part of the model (a
saved model carries no training-only layers and predicts the same on every
backend).

An image's augmentation happens in three steps, all in
``ImagePipeline.__getitem__`` (and so in ``portaclass preview``):

1. ``plan(epoch, index)`` draws everything the image gets (``ImagePlan``)
   from the image's own random source (``data/draws.py``);
2. the file is decoded to the plan's region (``strong``'s random resized
   crop) at ``input_size``, then ``apply`` resamples it once through the
   plan's affine map (crop window, flip, rotation, RandAugment's geometry:
   ``data/geometry.py``) and runs its pixel-value ops (``data/tonal.py``);
3. ``mix`` blends the batch (MixUp/CutMix, ``strong`` only), drawn from
   (seed, epoch, batch index).

So the batches do not depend on thread timing or the number of workers, and
no framework is involved: they are the same on every backend. Mixing blends
labels too, so a ``strong`` pipeline yields one-hot soft labels
(``Augmenter.soft_labels``) and the trainer compiles categorical
cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from portaclass import checks
from portaclass.data import draws, geometry, tonal
from portaclass.data.constants import PRESETS
from portaclass.data.decode import as_array, fit_region
from portaclass.data.mixing import mix_batch
from portaclass.data.randaugment import Op, RandAugment
from portaclass.errors import UsageError

# ``light`` and ``standard`` decode this much larger and cut a window of the
# target size at a random place: a translation without black borders.
CROP_MARGIN = 1.125
FLIP_PROBABILITY = 0.5
# ``standard``: Keras' RandomRotation(0.05) (a twentieth of a turn either
# way), RandomContrast(0.2) and RandomBrightness(0.15), as Keras documents
# them: contrast factor in [0.8, 1.2] around each channel's mean, brightness
# offset within 15% of 0..255.
STANDARD_DEGREES = 18.0
STANDARD_CONTRAST = 0.2
STANDARD_BRIGHTNESS = 0.15
# ``strong`` zooms and stretches with a random resized crop (torchvision's
# RandomResizedCrop recipe): a region of 35-100% of the image's area, aspect
# 3/4-4/3 of it, cut while decoding (draft mode then decodes no more than
# the region needs).
RESIZED_CROP_AREA = (0.35, 1.0)
RESIZED_CROP_ASPECT = (3 / 4, 4 / 3)
RANDAUGMENT_OPS = 2
RANDAUGMENT_MAGNITUDE = 0.5


def resized_crop_box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A random (top, left, height, width) region, as fractions of the image."""
    area = rng.uniform(*RESIZED_CROP_AREA)
    aspect = np.exp(rng.uniform(*np.log(RESIZED_CROP_ASPECT)))
    width = min(1.0, float(np.sqrt(area * aspect)))
    height = min(1.0, float(np.sqrt(area / aspect)))
    return float(rng.uniform(0, 1 - height)), float(rng.uniform(0, 1 - width)), height, width


def mixes_labels(preset: str) -> bool:
    """Whether ``preset`` blends images and labels (MixUp/CutMix), so that its
    pipelines yield one-hot soft labels."""
    return preset == "strong"


@dataclass(frozen=True)
class ImagePlan:
    """Everything one image gets in one epoch."""

    box: tuple[float, float, float, float] | None = None  # region decoded (fractions)
    window: tuple[float, float] = (0.0, 0.0)  # crop window's place in the margin, (y, x) in [0, 1)
    flip: bool = False
    degrees: float = 0.0  # rotation, counter-clockwise
    contrast: float = 1.0
    brightness: float = 0.0  # offset in 0..255 units
    ops: tuple[Op, ...] = ()  # RandAugment's, in the order drawn


class Augmenter:
    """A preset's per-image draws and how to apply them; see the module doc.

    It holds no random state (every draw comes from ``data/draws.py``), so
    one Augmenter serves any number of threads.
    """

    def __init__(self, preset: str = "none", seed: int = 0, size_hw: tuple[int, int] | None = None,
                 num_classes: int | None = None):
        """With ``size_hw`` the preset ends images at that size: feed it
        images of ``input_size(size_hw)``. Without it images keep their
        size (and ``light``/``standard`` have no room to move the window).
        ``num_classes`` is needed by presets that mix labels (``soft_labels``)."""
        checks.choice("augment", preset, PRESETS)
        checks.seed("seed", seed)
        self.preset = preset
        self.seed = seed
        self.size_hw = tuple(size_hw) if size_hw and preset != "none" else None
        self.num_classes = num_classes
        self.soft_labels = mixes_labels(preset)
        self.randaugment = (RandAugment(RANDAUGMENT_OPS, RANDAUGMENT_MAGNITUDE)
                            if preset == "strong" else None)

    def input_size(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        """The size to decode to so that the preset's window yields ``size_hw``."""
        if self.preset in ("light", "standard") and self.size_hw is not None:
            return tuple(int(round(s * CROP_MARGIN)) for s in size_hw)
        return tuple(size_hw)

    def plan(self, epoch: int, index: int, channels: int = 3) -> ImagePlan | None:
        """What image ``index`` (in its split) gets in ``epoch``; None for
        the ``none`` preset. The same arguments always give the same plan."""
        if self.preset == "none":
            return None
        rng = draws.image_rng(self.seed, epoch, index)
        if self.preset == "strong":
            box = resized_crop_box(rng)
            flip = bool(rng.random() < FLIP_PROBABILITY)
            return ImagePlan(box=box, flip=flip, ops=self.randaugment.draw(rng, channels))
        window = (float(rng.random()), float(rng.random()))
        flip = bool(rng.random() < FLIP_PROBABILITY)
        if self.preset == "light":
            return ImagePlan(window=window, flip=flip)
        return ImagePlan(
            window=window, flip=flip,
            degrees=float(rng.uniform(-STANDARD_DEGREES, STANDARD_DEGREES)),
            contrast=float(rng.uniform(1 - STANDARD_CONTRAST, 1 + STANDARD_CONTRAST)),
            brightness=float(rng.uniform(-STANDARD_BRIGHTNESS, STANDARD_BRIGHTNESS) * 255.0),
        )

    def matrix(self, plan: ImagePlan, input_hw: tuple[int, int]) -> np.ndarray:
        """The plan's affine map from the output (``size_hw``) to an input
        image of ``input_hw``: window, then flip, then rotation, then
        RandAugment's geometric ops."""
        out_h, out_w = self.output_size(input_hw)
        in_h, in_w = input_hw
        # the window's offset is a whole pixel in 0..margin, uniform as Keras' RandomCrop's
        top = int(plan.window[0] * (max(in_h - out_h, 0) + 1))
        left = int(plan.window[1] * (max(in_w - out_w, 0) + 1))
        maps = [geometry.shift(left, top)]
        if plan.flip:
            maps.append(geometry.mirror(out_w))
        if plan.degrees:  # about the window's centre: the margin fills the corners first
            maps.append(geometry.rotation(plan.degrees, (out_w / 2, out_h / 2)))
        if plan.ops:
            maps.append(RandAugment.geometry(plan.ops, (out_h, out_w)))
        return geometry.chain(*maps)

    def output_size(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """``size_hw``, or the input's own size when the Augmenter has none."""
        return self.size_hw or tuple(input_hw)

    def warp(self, image: Image.Image, plan: ImagePlan) -> Image.Image:
        """The plan's geometry: ``image`` (at ``input_size``) resampled once
        onto the output size."""
        input_hw = (image.height, image.width)
        return geometry.warp(image, self.matrix(plan, input_hw), self.output_size(input_hw))

    @staticmethod
    def tone(image: Image.Image, plan: ImagePlan) -> Image.Image:
        """The plan's pixel-value ops."""
        if plan.contrast != 1.0 or plan.brightness:
            image = tonal.contrast_brightness(image, plan.contrast, plan.brightness)
        return RandAugment.tone(image, plan.ops)

    def apply(self, image: Image.Image, plan: ImagePlan | None) -> Image.Image:
        """``image`` (decoded to the plan's ``box`` at ``input_size``) as
        the model gets it, before mixing."""
        if plan is None:
            return image
        return self.tone(self.warp(image, plan), plan)

    def mix(self, images: np.ndarray, labels, epoch: int, batch_index: int) -> tuple[np.ndarray, np.ndarray]:
        """MixUp or CutMix of batch ``batch_index`` of ``epoch``: the images
        (their dtype kept) and soft labels. Presets that do not mix return
        both as they are."""
        if not self.soft_labels:
            return images, labels
        if not self.num_classes:
            raise UsageError(f"the {self.preset!r} preset mixes labels: "
                             "give Augmenter the number of classes")
        x, soft, _ = mix_batch(images, labels, self.num_classes,
                               draws.batch_rng(self.seed, epoch, batch_index))
        return x, soft

    def transform_images(self, images: np.ndarray, *, epoch: int = 0, indices=None) -> np.ndarray:
        """In-memory NHWC images (0..255, at ``input_size``) through the
        per-image part of the preset, as the pipeline applies it to images
        ``indices`` (default 0, 1, ...) of ``epoch``: float32 NHWC."""
        return self._transform(images, epoch, indices).astype(np.float32)

    def _transform(self, images, epoch: int, indices) -> np.ndarray:
        images = _as_uint8(images)
        indices = range(len(images)) if indices is None else indices
        out = []
        for image, index in zip(images, indices):
            plan = self.plan(epoch, int(index), image.shape[-1])
            pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            if plan is not None and plan.box is not None:
                pil = fit_region(pil, (pil.height, pil.width), box=plan.box)
            out.append(as_array(self.apply(pil, plan)))
        return np.stack(out)

    def __call__(self, images: np.ndarray, labels, *, epoch: int = 0, indices=None,
                 batch_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``transform_images`` then ``mix``: ``(augmented images, labels)``;
        with a mixing preset the labels come back as float32 one-hot soft
        labels, else unchanged."""
        if self.soft_labels and not self.num_classes:
            raise UsageError(f"the {self.preset!r} preset mixes labels: "
                             "give Augmenter the number of classes")
        x, labels = self.mix(self._transform(images, epoch, indices), labels, epoch, batch_index)
        return x.astype(np.float32), labels


def augment_batch(images: np.ndarray, preset: str, seed: int = 0) -> np.ndarray:
    """One-off: ``images`` (NHWC, 0..255) through the per-image part of
    ``preset`` (no MixUp/CutMix: that needs labels), float32."""
    return Augmenter(preset, seed).transform_images(images)


def _as_uint8(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
