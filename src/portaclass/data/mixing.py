"""MixUp and CutMix on training batches (``keras.layers.MixUp`` / ``CutMix``).

Both blend each image with another of its batch and blend the labels by the
same weight, so labels leave as one-hot rows that sum to 1 ("soft labels") and
the model is trained with categorical rather than sparse cross-entropy. Each
batch gets one of the two, drawn 50/50 as in timm's ``Mixup(switch_prob=0.5)``.
"""

from __future__ import annotations

import numpy as np

from portaclass._lazy import backend, keras

MIXUP_ALPHA = 0.2  # Beta(alpha, alpha) mixing weight; the MixUp paper's ImageNet value
CUTMIX_FACTOR = 1.0  # Keras' default: patch-area weight from Beta(1, 1), uniform
SWITCH_PROB = 0.5  # chance a batch gets CutMix instead of MixUp


def one_hot(labels, num_classes: int) -> np.ndarray:
    """Integer labels -> float32 one-hot rows; rows already one-hot pass through."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32, copy=False)
    return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]


class BatchMixer:
    """``(images, integer labels) -> (mixed images, soft labels)``, NHWC float
    in, float32 NumPy out. One per thread (Augmenter sees to it)."""

    def __init__(self, num_classes: int, seed: int = 0):
        fmt = {"data_format": "channels_last"}
        self.num_classes = num_classes
        self.mixup = keras.layers.MixUp(alpha=MIXUP_ALPHA, seed=seed + 20, **fmt)
        self.cutmix = keras.layers.CutMix(factor=CUTMIX_FACTOR, seed=seed + 21, **fmt)
        self._rng = np.random.default_rng([seed, 104729])
        self.last_method: str | None = None

    def __call__(self, images, labels) -> tuple[np.ndarray, np.ndarray]:
        soft = one_hot(labels, self.num_classes)
        if len(soft) < 2:  # nothing to mix with
            self.last_method = None
            return np.asarray(images, dtype=np.float32), soft
        use_cutmix = self._rng.random() < SWITCH_PROB
        self.last_method = "cutmix" if use_cutmix else "mixup"
        layer = self.cutmix if use_cutmix else self.mixup
        out = layer({"images": np.asarray(images, dtype=np.float32), "labels": soft}, training=True)
        return (np.asarray(backend.to_numpy(out["images"]), dtype=np.float32),
                np.asarray(backend.to_numpy(out["labels"]), dtype=np.float32))
