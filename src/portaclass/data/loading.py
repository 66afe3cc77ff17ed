"""``load_dataset``: one entry point for folders, built-ins and CIFAR-10."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass.data.builtin import load_digits
from portaclass.data.cifar import load_cifar10_keras, read_cifar10
from portaclass.data.constants import BUILTINS
from portaclass.data.dataset import Dataset, Split, as_size_hw
from portaclass.data.decode import DEFAULT_MAX_PIXELS
from portaclass.data.folder import from_directory
from portaclass.data.shapes import make_shapes
from portaclass.data.split import split_stratified
from portaclass.errors import DataError, UsageError

SHAPES_PER_CLASS = 500  # 2,000 images: simple_cnn learns them in a few epochs at 32x32


def to_channel_count(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 NHWC with 1 or 3 channels -> ``channels`` channels."""
    checks.channels("channels", channels)
    have = x.shape[-1]
    if have == channels:
        return x
    if have == 1:
        return np.repeat(x, 3, axis=-1)
    # RGB -> L with Pillow's (ITU-R 601-2) weights, so arrays and files agree.
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return (x[..., :3].astype(np.float32) @ weights).round().clip(0, 255).astype(np.uint8)[..., None]


def from_arrays(
    x,
    y,
    class_names,
    *,
    val_split: float = 0.2,
    test_split: float = 0.1,
    seed: int = 0,
    name: str = "arrays",
    test: tuple | None = None,
) -> Dataset:
    """In-memory uint8 NHWC images as a Dataset, split stratified and seeded.

    Args:
        x: uint8 images (N, H, W, 1 or 3).
        y: integer labels in ``0..len(class_names) - 1``.
        class_names: one name per class, in label order.
        val_split, test_split: shares of each class held out.
        seed: seeds the split.
        name: the dataset's name in summaries and run folders.
        test: ``(x_test, y_test)`` of an official test set (CIFAR-10's); then
            only ``val_split`` is carved from ``x``.
    """
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UsageError(f"from_arrays takes uint8 images (N, H, W, 1 or 3); got {x.dtype} {x.shape}")
    if len(x) != len(y):
        raise UsageError(f"from_arrays: {len(x)} images but {len(y)} labels")
    class_names = [str(c) for c in class_names]
    if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
        raise UsageError(f"labels must be in 0..{len(class_names) - 1} for {len(class_names)} classes")
    fractions = {"train": 0.0, "val": val_split} if test is not None else {
        "train": 0.0, "val": val_split, "test": test_split}
    parts = split_stratified(y, fractions, seed)

    def part(split_name: str, indices) -> Split:
        return Split(split_name, y[indices], class_names, images=x[indices], source_index=np.asarray(indices))

    train, val = part("train", parts["train"]), part("val", parts["val"])
    if test is not None:
        x_test, y_test = np.asarray(test[0]), np.asarray(test[1]).reshape(-1).astype(np.int64)
        test_split_obj = Split("test", y_test, class_names, images=x_test, source_index=np.arange(len(y_test)))
    else:
        test_split_obj = part("test", parts["test"])
    missing = [c for c, n in zip(class_names, np.bincount(train.labels, minlength=len(class_names))) if n == 0]
    if missing:
        raise DataError(f"class {missing[0]!r} of {name} has no training image after the val/test split")
    return Dataset(
        class_names=class_names,
        train=train,
        val=val if len(val) else None,
        test=test_split_obj if len(test_split_obj) else None,
        root=None,
        name=name,
        channels=int(x.shape[-1]),
    )


def _is_cifar_path(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return (path / "batches.meta").is_file() or (path / "cifar-10-batches-py" / "batches.meta").is_file()


def load_dataset(
    spec,
    image_size,
    *,
    channels: int = 3,
    val_split: float = 0.2,
    test_split: float = 0.1,
    seed: int = 0,
    cache_dir=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    from_run: bool = False,
) -> Dataset:
    """A Dataset from ``spec``, split stratified and seeded.

    Args:
        spec: a folder of class folders (or a pre-split one), ``"digits"``,
            ``"shapes"``, ``"cifar10"`` (Keras download/cache; an existing
            folder of that name wins), or a path to
            ``cifar-10-python.tar.gz`` or its extracted folder.
        image_size: an int or (height, width): the size built-in datasets
            are made at (the pipeline resizes everything to the model's size).
        channels: 1 or 3; in-memory datasets are returned with this many.
        val_split, test_split: shares of each class held out (CIFAR-10 keeps
            its official test set and ignores ``test_split``).
        seed: seeds the split.
        cache_dir: where the bad-file pre-pass caches its verdicts.
        max_pixels: files with more pixels are skipped as decompression bombs.
        from_run: ``spec`` is a run's recorded data (config.json), where a
            folder is an absolute path: a bare built-in name there is the
            built-in, even from a directory holding a folder of that name.

    Returns:
        A ``Dataset`` with ``train`` and, where non-empty, ``val``/``test``.
    """
    height, width = as_size_hw(image_size)
    checks.channels("channels", channels)
    key = str(spec)
    path = Path(key).expanduser()
    if path.is_dir() and not (from_run and key in BUILTINS):  # a folder the user has, even one named "digits/"
        key = str(path.resolve())
    if key == "digits":
        x, y, names = load_digits(height)
        return from_arrays(to_channel_count(x, channels), y, names, val_split=val_split,
                           test_split=test_split, seed=seed, name="digits")
    if key == "shapes":
        x, y, names = make_shapes(SHAPES_PER_CLASS, max(height, width), seed=1234)
        return from_arrays(to_channel_count(x, channels), y, names, val_split=val_split,
                           test_split=test_split, seed=seed, name="shapes")
    if key == "cifar10" or (path.exists() and _is_cifar_path(path)):
        (x, y), (x_test, y_test), names = load_cifar10_keras() if key == "cifar10" else read_cifar10(path)
        return from_arrays(to_channel_count(x, channels), y, names, val_split=val_split,
                           test_split=0.0, seed=seed, name="cifar10",
                           test=(to_channel_count(x_test, channels), y_test))
    return from_directory(
        path, val_split=val_split, test_split=test_split, seed=seed,
        color_mode="grayscale" if channels == 1 else "rgb", cache_dir=cache_dir, max_pixels=max_pixels,
    )
