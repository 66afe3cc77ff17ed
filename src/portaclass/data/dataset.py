"""Datasets and their splits: one labelled list of files or in-memory images.

A ``Split`` holds either file paths (decoded lazily by the pipeline) or a
uint8 NHWC array; both go through the same pipeline (``make_pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portaclass.errors import UsageError


@dataclass
class Split:
    """One part of a dataset: ``paths`` (files) or ``images`` (uint8 NHWC)."""

    name: str
    labels: np.ndarray
    class_names: list[str]
    paths: list[Path] | None = None
    images: np.ndarray | None = None
    root: Path | None = None
    # Where the images came from, for in-memory splits: row numbers in the source arrays.
    source_index: np.ndarray | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if (self.paths is None) == (self.images is None):
            raise UsageError("a Split holds either paths or images, not both or neither")
        if len(self) != len(self.labels):
            raise UsageError(f"split {self.name!r}: {len(self)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.images)

    @property
    def is_files(self) -> bool:
        return self.paths is not None

    def relpaths(self) -> list[str]:
        """Paths relative to the data root, with forward slashes (portable)."""
        if self.paths is None:
            return []
        return [_relative(p, self.root) for p in self.paths]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def subset(self, indices) -> Split:
        indices = np.asarray(indices, dtype=np.int64)
        return Split(
            name=self.name,
            labels=self.labels[indices],
            class_names=self.class_names,
            paths=[self.paths[i] for i in indices] if self.paths is not None else None,
            images=self.images[indices] if self.images is not None else None,
            root=self.root,
            source_index=self.source_index[indices] if self.source_index is not None else None,
        )


@dataclass
class Dataset:
    """A labelled image dataset split into train / val / test.

    ``val`` and ``test`` may be None. ``skipped`` lists ``(relpath, reason)``
    for files the validation pre-pass rejected.
    """

    class_names: list[str]
    train: Split
    val: Split | None = None
    test: Split | None = None
    root: Path | None = None
    name: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Channels the images have (arrays) or are decoded to by default (files).
    channels: int = 3

    def splits(self) -> dict[str, Split]:
        return {n: s for n, s in (("train", self.train), ("val", self.val), ("test", self.test)) if s is not None}

    def summary(self) -> str:
        """One line: images per split, classes, skipped files."""
        counts = ", ".join(f"{n} {len(s)}" for n, s in self.splits().items())
        line = f"{self.name or 'dataset'}: {counts} images; {len(self.class_names)} classes"
        if self.skipped:
            line += f"; {len(self.skipped)} unreadable files skipped (see skipped.csv)"
        else:
            line += "; 0 files skipped"
        return line


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def as_size_hw(image_size) -> tuple[int, int]:
    """``32`` or ``(32, 48)`` -> (height, width)."""
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size), int(image_size))
    else:
        size = tuple(int(s) for s in image_size)
        if len(size) == 3:  # (H, W, C) is accepted too
            size = size[:2]
    if len(size) != 2 or min(size) < 1:
        raise UsageError(f"image size must be a positive int or (height, width), got {image_size!r}")
    return size
