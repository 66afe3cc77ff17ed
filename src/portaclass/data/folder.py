"""``from_directory``: an ImageFolder tree (or a pre-split one) as a Dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass.data.dataset import Dataset, Split, _relative
from portaclass.data.decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from portaclass.data.scan import find_presplit, index_folder
from portaclass.data.split import split_stratified
from portaclass.data.validate import find_bad_files
from portaclass.errors import DataError

COLOR_MODES = {"rgb": 3, "grayscale": 1}


def from_directory(
    path,
    *,
    val_split: float = 0.2,
    test_split: float = 0.1,
    seed: int = 0,
    color_mode: str = "rgb",
    cache_dir=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> Dataset:
    """Index a folder with one subfolder per class and split it.

    A root holding ``train/`` plus ``val/``/``validation/`` and/or ``test/``
    (each with class folders) is taken as already split: a missing ``val/`` is
    carved from ``train/`` with ``val_split``, a missing ``test/`` stays empty.
    Otherwise splits are stratified and seeded (``split_stratified``).
    Unreadable files are skipped and listed in ``Dataset.skipped``.

    Args:
        path: the folder.
        val_split, test_split: shares of each class held out (of ``train/``
            for a pre-split folder without ``val/``).
        seed: seeds the split.
        color_mode: "rgb" or "grayscale": the channels images decode to.
        cache_dir: where the pre-pass caches its verdicts (default
            ``~/.cache/portaclass``).
        max_pixels: files with more pixels are skipped as decompression bombs.
        workers: pre-pass threads (default: one per core).
    """
    checks.choice("color_mode", color_mode, COLOR_MODES)
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data folder {root} not found")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder (expected one subfolder per class)")

    presplit = find_presplit(root)
    if presplit:
        parts = {name: index_folder(folder) if name == "train" else None for name, folder in presplit.items()}
        class_names = parts["train"][2]
        for name, folder in presplit.items():
            if name != "train":
                parts[name] = index_folder(folder, class_names)
        indexed = {name: (p, lab) for name, (p, lab, _) in parts.items()}
    else:
        paths, labels, class_names = index_folder(root)
        indexed = {"all": (paths, labels)}

    every_path = [p for paths, _ in indexed.values() for p in paths]
    if not every_path:
        raise DataError(f"no images found in {root} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    bad = find_bad_files(root, every_path, cache_dir=cache_dir, max_pixels=max_pixels, workers=workers)
    skipped = sorted((_relative(p, root), reason) for p, reason in bad.items())

    def usable(name: str) -> Split:
        paths, labels = indexed[name]
        keep = [i for i, p in enumerate(paths) if p not in bad]
        return Split(name=name, labels=np.asarray(labels, np.int64)[keep] if keep else np.zeros(0, np.int64),
                     class_names=class_names, paths=[paths[i] for i in keep], root=root)

    if presplit:
        train = usable("train")
        _require_every_class(train, presplit["train"], bad_count=len(bad))
        val = usable("val") if "val" in indexed else None
        test = usable("test") if "test" in indexed else None
        if val is None and val_split > 0:
            train, val = _carve(train, {"train": 0.0, "val": val_split}, seed)
    else:
        whole = usable("all")
        _require_every_class(whole, root, bad_count=len(bad))
        parts = split_stratified(whole.labels, {"train": 0.0, "val": val_split, "test": test_split}, seed)
        train, val, test = (_named(whole.subset(parts[n]), n) for n in ("train", "val", "test"))
    _require_training_image(train, presplit["train"] if presplit else root)
    return Dataset(
        class_names=list(class_names),
        train=train,
        val=val if val is not None and len(val) else None,
        test=test if test is not None and len(test) else None,
        root=root,
        name=root.name,
        skipped=skipped,
        channels=COLOR_MODES[color_mode],
    )


def _named(split: Split, name: str) -> Split:
    split.name = name
    return split


def _carve(split: Split, fractions: dict[str, float], seed: int) -> tuple[Split, Split]:
    parts = split_stratified(split.labels, fractions, seed)
    return _named(split.subset(parts["train"]), "train"), _named(split.subset(parts["val"]), "val")


def _require_every_class(split: Split, folder: Path, bad_count: int) -> None:
    counts = np.bincount(split.labels, minlength=len(split.class_names))
    for name, count in zip(split.class_names, counts):
        if count == 0:
            hint = f" ({bad_count} unreadable files skipped, see skipped.csv)" if bad_count else ""
            raise DataError(f"class folder {os.path.join(folder, name)} has no usable image{hint}")


def _require_training_image(train: Split, folder: Path) -> None:
    counts = np.bincount(train.labels, minlength=len(train.class_names))
    for name, count in zip(train.class_names, counts):
        if count == 0:
            raise DataError(
                f"class folder {os.path.join(folder, name)} has no training image left after the "
                "val/test split; add images or lower val_split/test_split"
            )
