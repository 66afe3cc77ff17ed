"""The input pipeline: one ``keras.utils.PyDataset`` for every backend.

Worker threads (``use_multiprocessing=False``) decode files with Pillow, which
releases the GIL, so a batch per core is decoded in parallel without pickling
anything and without importing TensorFlow under torch or JAX. Batches are
NumPy ``(x float32, y int32)``, channels_last unless ``channels_first=True``;
``y`` is float32 one-hot rows instead when the augmentation preset mixes
labels (MixUp/CutMix) or ``one_hot=True`` (validation data of such a run).
"""

from __future__ import annotations

import os
import threading

import numpy as np
from PIL import Image

from portaclass import checks
from portaclass._lazy import keras
from portaclass.data.augment import Augmenter
from portaclass.data.dataset import Split, as_size_hw
from portaclass.data.decode import (
    DEFAULT_MAX_PIXELS,
    RESIZE_MODES,
    DecodeError,
    crop_relative,
    decode_image,
)
from portaclass.data.decode import resize as resize_image
from portaclass.data.loading import to_channel_count
from portaclass.data.mixing import one_hot as to_one_hot
from portaclass.data.normalize import normalize
from portaclass.errors import DataError
from portaclass.layout import to_channels_first
from portaclass.models.registry import Preprocessing


class ImagePipeline(keras.utils.PyDataset):
    """Batches of one split: decode (or take from memory), resize, augment,
    normalise. Reshuffled at each epoch end from ``(seed, epoch)``.

    Files that fail to decode mid-training (changed after the pre-pass) are
    replaced by another image of the same batch and listed in
    ``decode_failures`` as ``(relpath, reason)``; the run goes on.
    """

    def __init__(self, split: Split, batch_size: int, *, preprocessing: Preprocessing | None = None,
                 image_size=None, channels: int = 3, augment: str = "none", shuffle: bool = True,
                 seed: int = 0, resize: str = "plain", channels_first: bool = False,
                 workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_queue_size: int = 10, one_hot: bool = False):
        workers = workers or os.cpu_count() or 1
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        checks.at_least("batch_size", batch_size, 1)
        checks.choice("resize", resize, RESIZE_MODES)
        checks.channels("channels", channels)
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
        # decoded size: larger than the output when the preset random-crops
        self.decode_hw = self.augmenter.input_size(self.size_hw)
        # labels leave as float32 one-hot rows (else int32 class indices)
        self.soft_labels = one_hot or self.augmenter.soft_labels
        self.decode_failures: list[tuple[str, str]] = []
        self._failure_lock = threading.Lock()
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.split))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.split))

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()

    def set_epoch(self, epoch: int) -> None:
        """Produce the batches of ``epoch`` next, as if ``epoch`` epochs had run."""
        self.epoch = int(epoch)
        self._order = self._epoch_order()

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        ids = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.split.is_files:
            images, ids = self._load_files(ids)
        else:
            images = self._load_arrays(ids)
        y = self.split.labels[ids].astype(np.int32)
        x, y = self.augmenter(images, y)
        x = normalize(x, self.preprocessing).astype(np.float32, copy=False)
        if self.channels_first:
            x = to_channels_first(x)
        if self.soft_labels:
            y = to_one_hot(y, len(self.class_names))
        return x, y

    def _decode(self, i: int) -> np.ndarray:
        return decode_image(self.split.paths[i], self.decode_hw, self.channels, self.resize_mode,
                            self.max_pixels, box=self.augmenter.crop_box(self.epoch, i))

    def _load_files(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded images and the split indices they come from.

        A failed file's slot is filled with another good image of the batch
        (its label comes along), so the batch keeps its size and the run goes on.
        """
        good: list[tuple[int, np.ndarray]] = []
        for i in ids:
            try:
                good.append((int(i), self._decode(int(i))))
            except DecodeError as err:
                self._record(int(i), str(err))
        if not good:
            good = [self._first_decodable(int(ids[0]))]
        n_good = len(good)
        while len(good) < len(ids):
            good.append(good[len(good) % n_good])
        return np.stack([image for _, image in good]), np.array([i for i, _ in good])

    def _first_decodable(self, start: int) -> tuple[int, np.ndarray]:
        for offset in range(1, len(self.split)):
            i = (start + offset) % len(self.split)
            try:
                return i, self._decode(i)
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

    def _load_arrays(self, ids: np.ndarray) -> np.ndarray:
        images = to_channel_count(self.split.images[ids], self.channels)
        boxes = [self.augmenter.crop_box(self.epoch, int(i)) for i in ids]
        if images.shape[1:3] == tuple(self.decode_hw) and all(b is None for b in boxes):
            return images
        resized = []
        for image, box in zip(images, boxes):
            pil = Image.fromarray(image[..., 0] if self.channels == 1 else image)
            if box is not None:
                pil = crop_relative(pil, box)
            resized.append(np.asarray(resize_image(pil, self.decode_hw, self.resize_mode)))
        out = np.stack(resized)
        return out[..., None] if out.ndim == 3 else out


def make_pipeline(split: Split, batch_size: int, *, preprocessing: Preprocessing | None = None,
                  image_size=None, channels: int = 3, augment: str = "none", shuffle: bool = True,
                  seed: int = 0, resize: str = "plain", channels_first: bool = False,
                  workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  one_hot: bool = False) -> ImagePipeline:
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
        seed: seeds shuffling and augmentation.
        resize: "plain" (stretch), "crop" or "pad" to the target aspect.
        channels_first: yield NCHW batches (Keras' channels_first models).
        workers: decoding threads (default: one per core).
        max_pixels: files with more pixels are refused as decompression bombs.
        one_hot: yield one-hot float labels (validation data of a run whose
            training data mixes labels).
    """
    return ImagePipeline(split, batch_size, preprocessing=preprocessing, image_size=image_size,
                         channels=channels, augment=augment, shuffle=shuffle, seed=seed,
                         resize=resize, channels_first=channels_first, workers=workers,
                         max_pixels=max_pixels, one_hot=one_hot)
