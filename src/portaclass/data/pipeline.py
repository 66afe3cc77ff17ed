"""The input pipeline: one ``keras.utils.PyDataset`` for every backend.

Worker threads (``use_multiprocessing=False``) decode files with Pillow, which
releases the GIL, so a batch per core is decoded and augmented in parallel
without pickling anything and without importing TensorFlow under torch or
JAX. Batches are NumPy ``(x float32, y int32)``, channels_last unless
``channels_first=True``; ``y`` is float32 one-hot rows instead when the
augmentation preset mixes labels (MixUp/CutMix) or ``one_hot=True``
(validation data of such a run).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from portaclass import checks
from portaclass._lazy import keras
from portaclass.data import draws
from portaclass.data.augment import Augmenter, ImagePlan
from portaclass.data.dataset import Split, as_size_hw
from portaclass.data.decode import (
    DEFAULT_MAX_PIXELS,
    RESIZE_MODES,
    DecodeError,
    as_array,
    fit_region,
    load_image,
)
from portaclass.data.loading import to_channel_count
from portaclass.data.mixing import one_hot as to_one_hot
from portaclass.data.normalize import normalize
from portaclass.errors import DataError
from portaclass.layout import to_channels_first
from portaclass.models.registry import Preprocessing


@dataclass(frozen=True)
class Shard:
    """This process's part of every batch in a data-parallel run.

    ``batch_size`` stays the global batch: batch ``i`` of the epoch is the
    same images on one device or many. Its ids are cut into ``processes``
    contiguous parts and process ``index`` reads its own, so each image is
    read by one process once per epoch. A batch whose size is not a multiple
    of ``replicas`` (only an epoch's last) is filled up with repeats of its
    own first images, as torch's ``DistributedSampler`` pads: every engine
    needs equal replica shares (XLA shards evenly, DDP's ranks must step
    together, and a BatchNorm share of zero images would be NaN).
    """

    index: int = 0
    processes: int = 1
    replicas: int = 1

    def part(self, ids: np.ndarray) -> np.ndarray:
        short = -len(ids) % self.replicas
        if short:
            ids = np.concatenate([ids, np.resize(ids, short)])
        share = len(ids) // self.processes
        return ids[self.index * share : (self.index + 1) * share]


class ImagePipeline(keras.utils.PyDataset):
    """Batches of one split: decode (or take from memory), resize, augment,
    normalise.

    A batch is a function of (seed, epoch, batch index) alone: the epoch's
    order comes from (seed, epoch), each image's augmentation from (seed,
    epoch, image index) and a batch's MixUp/CutMix from (seed, epoch, batch
    index) (``data/draws.py``). Two guarantees follow, which training relies
    on for reproducible runs and for resuming:

    * ``workers`` changes no batch: any number of threads, in any order,
      gives the same pixels and labels, bit for bit, on every backend;
    * ``set_epoch(e)`` makes the pipeline yield exactly the batches of epoch
      ``e``, as if ``on_epoch_end`` had been called ``e`` times (Keras calls
      it after each epoch); ``epoch`` is the current one.

    Files that fail to decode mid-training (changed after the pre-pass) are
    replaced by another image of the same batch and listed in
    ``decode_failures`` as ``(relpath, reason)``; the run goes on.
    """

    def __init__(self, split: Split, batch_size: int, *, preprocessing: Preprocessing | None = None,
                 image_size=None, channels: int = 3, augment: str = "none", shuffle: bool = True,
                 seed: int = 0, resize: str = "plain", channels_first: bool = False,
                 workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_queue_size: int = 10, one_hot: bool = False, shard: Shard | None = None):
        workers = workers or os.cpu_count() or 1
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        checks.at_least("batch_size", batch_size, 1)
        checks.choice("resize", resize, RESIZE_MODES)
        checks.channels("channels", channels)
        checks.seed("seed", seed)
        if len(split) == 0:
            raise DataError(f"the {split.name} split has no images")
        preprocessing = preprocessing or Preprocessing()
        image_size = image_size or preprocessing.input_size
        self.split = split
        self.batch_size = int(batch_size)
        self.preprocessing = preprocessing
        self.size_hw = as_size_hw(image_size)
        self.channels = channels
        self.resize_mode = resize
        self.channels_first = channels_first
        self.shuffle = shuffle
        self.seed = seed
        self.max_pixels = max_pixels
        self.class_names = split.class_names
        self.augmenter = Augmenter(augment, seed, self.size_hw, num_classes=len(self.class_names))
        # decoded size: larger than the output when the preset moves a crop window
        self.decode_hw = self.augmenter.input_size(self.size_hw)
        # labels leave as float32 one-hot rows (else int32 class indices)
        self.soft_labels = one_hot or self.augmenter.soft_labels
        self.shard = shard or Shard()
        self.decode_failures: list[tuple[str, str]] = []
        self._failure_lock = threading.Lock()
        self.set_epoch(0)

    @property
    def epoch(self) -> int:
        """The epoch whose batches ``__getitem__`` returns (0 first)."""
        return self._epoch_state[0]

    def set_epoch(self, epoch: int) -> None:
        """Yield the batches of ``epoch`` from now on (order and augmentation),
        exactly as after ``epoch`` calls of ``on_epoch_end`` from the start."""
        checks.at_least("epoch", epoch, 0)
        epoch = int(epoch)
        order = (draws.epoch_order(self.seed, epoch, len(self.split)) if self.shuffle
                 else np.arange(len(self.split)))
        # one assignment: a worker thread reads the epoch and its order together
        self._epoch_state = (epoch, order)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        epoch, order = self._epoch_state
        ids = self.shard.part(order[index * self.batch_size : (index + 1) * self.batch_size])
        if self.split.is_files:
            images, ids = self._load_files(ids, epoch)
        else:
            images = np.stack([self._load_array(int(i), epoch) for i in ids])
        x, y = images, self.split.labels[ids].astype(np.int32)
        if self.augmenter.soft_labels:
            x, y = self.augmenter.mix(x, y, epoch, index)
        x = normalize(x, self.preprocessing).astype(np.float32, copy=False)
        if self.channels_first:
            x = to_channels_first(x)
        if self.soft_labels:
            y = to_one_hot(y, len(self.class_names))
        return x, y

    def _plan(self, i: int, epoch: int) -> ImagePlan | None:
        return self.augmenter.plan(epoch, i, self.channels)

    def _decode(self, i: int, epoch: int) -> np.ndarray:
        plan = self._plan(i, epoch)
        image = load_image(self.split.paths[i], self.decode_hw, self.channels, self.resize_mode,
                           self.max_pixels, box=plan.box if plan else None)
        return as_array(self.augmenter.apply(image, plan))

    def _load_array(self, i: int, epoch: int) -> np.ndarray:
        image = to_channel_count(self.split.images[i : i + 1], self.channels)[0]
        plan = self._plan(i, epoch)
        if plan is None and image.shape[:2] == tuple(self.decode_hw):
            return image
        pil = Image.fromarray(image[..., 0] if self.channels == 1 else image)
        pil = fit_region(pil, self.decode_hw, self.resize_mode, box=plan.box if plan else None)
        return as_array(self.augmenter.apply(pil, plan))

    def _load_files(self, ids: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded images and the split indices they come from.

        A failed file's slot is filled with another good image of the batch
        (its label comes along), so the batch keeps its size and the run goes on.
        """
        good: list[tuple[int, np.ndarray]] = []
        for i in ids:
            try:
                good.append((int(i), self._decode(int(i), epoch)))
            except DecodeError as err:
                self._record(int(i), str(err))
        if not good:
            good = [self._first_decodable(int(ids[0]), epoch)]
        n_good = len(good)
        while len(good) < len(ids):
            good.append(good[len(good) % n_good])
        return np.stack([image for _, image in good]), np.array([i for i, _ in good])

    def _first_decodable(self, start: int, epoch: int) -> tuple[int, np.ndarray]:
        for offset in range(1, len(self.split)):
            i = (start + offset) % len(self.split)
            try:
                return i, self._decode(i, epoch)
            except DecodeError as err:
                self._record(i, str(err))
        raise DataError(f"no image of the {self.split.name} split can be decoded any more")

    def _record(self, i: int, reason: str) -> None:
        path = self.split.paths[i]
        try:
            rel = path.relative_to(self.split.root).as_posix() if self.split.root else str(path)
        except ValueError:
            rel = str(path)
        with self._failure_lock:
            if all(rel != r for r, _ in self.decode_failures):
                self.decode_failures.append((rel, reason))


def make_pipeline(split: Split, batch_size: int, *, preprocessing: Preprocessing | None = None,
                  image_size=None, channels: int = 3, augment: str = "none", shuffle: bool = True,
                  seed: int = 0, resize: str = "plain", channels_first: bool = False,
                  workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  one_hot: bool = False, shard: Shard | None = None) -> ImagePipeline:
    """A ``keras.utils.PyDataset`` over ``split`` yielding ``(x, y)`` NumPy
    batches; ``len()`` is the number of batches. Pass it to ``model.fit``.

    Args:
        split: the images and labels (``Dataset.train`` etc.).
        batch_size: images per batch (the last batch may be smaller).
        preprocessing: the model's ``Preprocessing``; default scale to [0, 1].
        image_size: output size, an int or (height, width); default the
            preprocessing's input size.
        channels: 1 or 3; images are converted to it.
        augment: preset name (``data.augment.PRESETS``); "none" for evaluation.
        shuffle: reshuffle every epoch from (seed, epoch).
        seed: seeds shuffling and augmentation: every random draw comes
            from it, the epoch and the image or batch index, so the batches
            do not depend on ``workers`` (see ``ImagePipeline``).
        resize: "plain" (stretch), "crop" or "pad" to the target aspect.
        channels_first: yield NCHW batches (Keras' channels_first models).
        workers: decoding and augmenting threads (default: one per core).
        max_pixels: files with more pixels are refused as decompression bombs.
        one_hot: yield one-hot float labels (validation data of a run whose
            training data mixes labels).
        shard: this process's part of each batch in a data-parallel run
            (``Shard``); default all of it.
    """
    return ImagePipeline(split, batch_size, preprocessing=preprocessing, image_size=image_size,
                         channels=channels, augment=augment, shuffle=shuffle, seed=seed,
                         resize=resize, channels_first=channels_first, workers=workers,
                         max_pixels=max_pixels, one_hot=one_hot, shard=shard)
