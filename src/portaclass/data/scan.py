"""Finding images in an ImageFolder tree, with class names in Keras' order.

``keras.utils.image_dataset_from_directory`` lists the class folders with
``sorted(os.listdir(directory))``, keeps directories whose name does not start
with ".", and walks each one recursively (sorted). We do the same, so a label
index means the same class here and in a Keras program on the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from portaclass.data.decode import is_image_name
from portaclass.errors import DataError

TRAIN_NAMES = ("train",)
VAL_NAMES = ("val", "validation")
TEST_NAMES = ("test",)


def class_folders(directory: Path) -> list[str]:
    """Class names in Keras' order: sorted names of the visible subfolders."""
    return [
        name
        for name in sorted(os.listdir(directory))
        if not name.startswith(".") and (directory / name).is_dir()
    ]


def images_under(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted like Keras' walk),
    skipping hidden files and folders and non-image extensions silently."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in sorted(os.walk(folder), key=lambda item: item[0]):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(part.startswith(".") for part in Path(dirpath).relative_to(folder).parts):
            continue
        found.extend(Path(dirpath) / name for name in sorted(filenames) if is_image_name(name))
    return found


def find_presplit(root: Path) -> dict[str, Path] | None:
    """``{"train": root/train, "val": ..., "test": ...}`` when ``root`` holds a
    ``train/`` folder next to ``val/``, ``validation/`` or ``test/``; else None."""
    folders = {name: root / name for name in os.listdir(root) if (root / name).is_dir()}
    train = next((folders[n] for n in TRAIN_NAMES if n in folders), None)
    val = next((folders[n] for n in VAL_NAMES if n in folders), None)
    test = next((folders[n] for n in TEST_NAMES if n in folders), None)
    if train is None or (val is None and test is None):
        return None
    if not class_folders(train):  # classes that happen to be named "train"/"test"
        return None
    return {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v is not None}


def index_folder(directory: Path, class_names: list[str] | None = None):
    """``(paths, labels, class_names)`` for one ImageFolder directory.

    With ``class_names`` given (a val/test folder of a pre-split layout), its
    class folders must be among them; missing ones are simply empty.
    """
    found = class_folders(directory)
    if class_names is None:
        class_names = found
        if not class_names:
            raise DataError(f"no class folders in {directory}: expected one subfolder per class")
    else:
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise DataError(
                f"{directory} has class folders not in the training set: {', '.join(unknown)}"
            )
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        if not (directory / name).is_dir():
            continue
        files = images_under(directory / name)
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, labels, class_names
