"""A grid of augmented training samples, to check an augmentation preset by eye
before spending hours training with it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass._lazy import LazyModule
from portaclass.data.augment import mixes_labels
from portaclass.data.constants import PRESETS
from portaclass.data.dataset import Dataset
from portaclass.data.loading import load_dataset
from portaclass.report.grid import image_grid
from portaclass.train.options import TrainOptions

# subclasses keras.utils.PyDataset: imported on first use, after the options are checked
pipeline_module = LazyModule("portaclass.data.pipeline")

DEFAULT_PREVIEW_SIZE = 128
# MixUp/CutMix pair images within a batch: preview with training's batches
TRAIN_BATCH_SIZE = TrainOptions.batch_size


def sample_batch(dataset, n: int, image_size, augment: str, seed: int, channels: int, *,
                 epoch: int = 0, batch_size: int = TRAIN_BATCH_SIZE):
    """The first ``n`` training images of ``epoch`` (float, 0..1, NHWC) and
    their labels, exactly as a training run with this seed, image size and
    batch size gets them: the same pipeline, so the same order, the same
    per-image draws and (``strong``) the same MixUp/CutMix partners. Only
    the scaling differs: 0..1 here, the model's own in training."""
    if not mixes_labels(augment):
        # order and draws are per image: without MixUp/CutMix partners,
        # batches of n give the same first n images, and decode no more
        batch_size = min(batch_size, n)
    pipeline = pipeline_module.make_pipeline(
        dataset.train, batch_size, preprocessing=None, image_size=image_size, channels=channels,
        augment=augment, shuffle=True, seed=seed, workers=1)
    pipeline.set_epoch(epoch)
    xs, ys = [], []
    for index in range(len(pipeline)):
        x, y = pipeline[index]
        xs.append(x)
        ys.append(y)
        if sum(len(part) for part in xs) >= n:
            break
    return np.clip(np.concatenate(xs)[:n], 0.0, 1.0), np.concatenate(ys)[:n]


def label_title(label, class_names) -> str:
    """A class name, or for a MixUp/CutMix soft label the two classes it
    blends with their shares, e.g. ``cat 70% + dog 30%``."""
    label = np.asarray(label)
    if label.ndim == 0:
        return class_names[int(label)]
    top = [int(i) for i in np.argsort(label)[::-1][:2] if label[i] >= 0.005]
    if len(top) == 1:
        return class_names[top[0]]
    return " + ".join(f"{class_names[i]} {label[i]:.0%}" for i in top)


def write_preview(
    data_spec,
    *,
    out="grid.png",
    augment: str = "standard",
    count: int = 16,
    image_size=DEFAULT_PREVIEW_SIZE,
    seed: int = 0,
    channels: int = 3,
    cache_dir=None,
    epoch: int = 0,
    batch_size: int = TRAIN_BATCH_SIZE,
    image_format: str = "PNG",
) -> Path:
    """Write a PNG grid of ``count`` augmented samples of ``data_spec`` (anything
    ``load_dataset`` takes, or a ``Dataset``), each titled with its class:
    the first ``count`` images of training epoch ``epoch`` (0 first) as a
    ``train`` run with the same seed and ``batch_size`` draws them
    (``sample_batch``); ``image_format`` as ``grid.image_grid`` takes it.

    Uses matplotlib's Agg canvas directly, so it needs no display and leaves
    the user's pyplot backend alone.
    """
    checks.at_least("count", count, 1)  # before the dataset is loaded and keras imported
    checks.at_least("epoch", epoch, 0)
    checks.at_least("batch_size", batch_size, 1)
    checks.choice("augment", augment, PRESETS)
    dataset = data_spec if isinstance(data_spec, Dataset) else load_dataset(
        data_spec, image_size, channels=channels, seed=seed, cache_dir=cache_dir)
    x, y = sample_batch(dataset, count, image_size, augment, seed, channels, epoch=epoch,
                        batch_size=batch_size)
    return image_grid(list(x), [label_title(label, dataset.class_names) for label in y], out,
                      columns=math.ceil(math.sqrt(len(x))), tile=160, fontsize=12,
                      title=f"{dataset.name or 'data'}: augment={augment}, seed {seed}, epoch {epoch}",
                      image_format=image_format)
