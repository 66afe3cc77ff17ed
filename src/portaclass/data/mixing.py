"""MixUp and CutMix on training batches, drawn per batch, blended in NumPy.

Both blend each image with a partner from its batch and blend the labels by
the same weight, so labels leave as one-hot rows that sum to 1 ("soft
labels") and the model is trained with categorical rather than sparse
cross-entropy. Each batch gets one of the two, 50/50 as in timm's
``Mixup(switch_prob=0.5)``; the weights are drawn per image, as Keras'
``MixUp``/``CutMix`` layers draw them.

Everything is drawn from the batch's own random source (seed, epoch, batch
index: ``data/draws.py``). The Keras layers draw from a seed state that
advances with every call, so with several worker threads a batch's mix
depended on which thread got there first. The blend is NumPy, on the uint8
batch: no framework tensors, and faster than the Keras layers on every
backend (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIXUP_ALPHA = 0.2  # Beta(alpha, alpha) mixing weight; the MixUp paper's ImageNet value
CUTMIX_ALPHA = 1.0  # Beta(1, 1): the pasted patch's share of the area is uniform in [0, 1]
SWITCH_PROB = 0.5  # chance a batch gets CutMix instead of MixUp


@dataclass(frozen=True)
class Mix:
    """What one batch drew: image ``i`` is blended with image
    ``partners[i]`` and keeps ``weights[i]`` of its own pixels and label;
    with CutMix, ``boxes[i]`` = (top, left, height, width) is the patch
    taken from the partner."""

    method: str  # "mixup", "cutmix", or "none" (a batch of one)
    partners: np.ndarray
    weights: np.ndarray
    boxes: np.ndarray | None = None


def one_hot(labels, num_classes: int) -> np.ndarray:
    """Integer labels -> float32 one-hot rows; rows already one-hot pass through."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32, copy=False)
    return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]


def draw_mix(rng: np.random.Generator, batch_size: int, size_hw: tuple[int, int]) -> Mix:
    """A batch's method, pairing and weights, from ``rng``."""
    if batch_size < 2:  # nothing to mix with
        return Mix("none", np.arange(batch_size), np.ones(batch_size))
    use_cutmix = rng.random() < SWITCH_PROB
    partners = rng.permutation(batch_size)
    if not use_cutmix:
        return Mix("mixup", partners, rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, batch_size))
    height, width = size_hw
    side = np.sqrt(1.0 - rng.beta(CUTMIX_ALPHA, CUTMIX_ALPHA, batch_size))
    box_h = np.rint(side * height).astype(np.int64)
    box_w = np.rint(side * width).astype(np.int64)
    # the patch lies inside the image (as in Keras' CutMix), anywhere it fits
    top = (rng.random(batch_size) * (height - box_h + 1)).astype(np.int64)
    left = (rng.random(batch_size) * (width - box_w + 1)).astype(np.int64)
    # labels are weighted by the patch's exact pixel area, so they describe the pixels
    weights = 1.0 - box_h * box_w / (height * width)
    return Mix("cutmix", partners, weights, np.stack([top, left, box_h, box_w], axis=1))


def apply_mix(images: np.ndarray, soft_labels: np.ndarray, mix: Mix) -> tuple[np.ndarray, np.ndarray]:
    """``(mixed images, mixed labels)``: ``images`` (NHWC) keep their dtype,
    a uint8 blend rounded to the nearest level (as timm's
    ``FastCollateMixup`` does); labels float32."""
    images = np.asarray(images)
    weights = mix.weights.astype(np.float32)
    labels = soft_labels * weights[:, None] + soft_labels[mix.partners] * (1 - weights[:, None])
    out = images.copy()
    if mix.method == "mixup":
        # one image at a time, so that its float copies stay in the CPU's cache:
        # 6 ms per batch of 32 at 224 px, against 21 ms for float arithmetic on
        # the whole batch (and uint8 out halves the normalisation after)
        rounded = np.issubdtype(images.dtype, np.integer)
        for i, partner in enumerate(mix.partners):
            own, other = images[i].astype(np.float32), images[partner].astype(np.float32)
            own -= other
            own *= weights[i]
            own += other
            out[i] = np.rint(own) if rounded else own
    elif mix.method == "cutmix":
        for i, (top, left, height, width) in enumerate(mix.boxes):
            out[i, top:top + height, left:left + width] = images[mix.partners[i], top:top + height,
                                                                 left:left + width]
    return out, labels.astype(np.float32)


def mix_batch(images: np.ndarray, labels, num_classes: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Mix]:
    """``images`` (NHWC) and integer or one-hot ``labels`` mixed as drawn
    from ``rng``: (images, soft labels, what was drawn)."""
    mix = draw_mix(rng, len(images), images.shape[1:3])
    x, soft = apply_mix(images, one_hot(labels, num_classes), mix)
    return x, soft, mix
