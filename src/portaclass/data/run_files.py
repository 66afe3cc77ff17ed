"""The data files a run directory keeps: split lists (so evaluation scores
the very images held out at training time) and the skipped-file list."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from portaclass.data.dataset import Split
from portaclass.errors import DataError


def write_run_files(dataset, run_dir: Path) -> Path:
    """``run_dir/splits/{train,val,test}.csv`` (``path,label`` relative to the
    data root; ``index,label`` for in-memory datasets), ``splits/classes.txt``
    and ``run_dir/skipped.csv`` (``path,reason``, header only when none)."""
    split_dir = run_dir / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "classes.txt").write_text("\n".join(dataset.class_names) + "\n", encoding="utf-8")
    if dataset.root is not None:
        (split_dir / "root.txt").write_text(str(Path(dataset.root).resolve()) + "\n", encoding="utf-8")
    for name, split in dataset.splits().items():
        with open(split_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path" if split.is_files else "index", "label"])
            writer.writerows(zip(_split_items(split), (split.class_names[i] for i in split.labels)))
    with open(run_dir / "skipped.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows(dataset.skipped)
    return split_dir


def _split_items(split) -> list[str]:
    """A split's first column: paths relative to the data root, or row numbers."""
    if split.is_files:
        return split.relpaths()
    index = split.source_index if split.source_index is not None else range(len(split))
    return [str(int(i)) for i in index]


def read_class_names(run_dir) -> list[str]:
    path = Path(run_dir) / "splits" / "classes.txt"
    if not path.exists():
        raise DataError(f"{path} not found: this run directory has no split lists")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_split_list(run_dir, name: str = "test") -> list[tuple[str, str]]:
    """``[(relpath or index, class name), ...]`` as written by ``write_run_files``."""
    path = Path(run_dir) / "splits" / f"{name}.csv"
    if not path.exists():
        raise DataError(f"{path} not found: the run has no {name!r} split")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [(row[0], row[1]) for row in rows[1:] if row]


def check_same_splits(run_dir, dataset) -> None:
    """DataError when ``dataset`` (the run's data loaded again, e.g. for
    --resume) no longer gives the classes and split lists the run recorded:
    a class or file added or removed since would otherwise re-split the data
    silently, or fail deep inside the model's weight loading."""
    recorded_classes = read_class_names(run_dir)
    if dataset.class_names != recorded_classes:
        raise DataError(f"{dataset.root or dataset.name}: the classes are now {', '.join(dataset.class_names)}; "
                        f"the run in {run_dir} trained on {', '.join(recorded_classes)}")
    splits = Path(run_dir) / "splits"
    recorded = {name: [item for item, _ in read_split_list(run_dir, name)] if (splits / f"{name}.csv").exists() else []
                for name in ("train", "val", "test")}
    unreadable = dict(dataset.skipped)  # a file good when the run started, not now, re-splits all
    lost = next((item for items in recorded.values() for item in items if item in unreadable), None)
    if lost is not None:
        raise DataError(f"{Path(dataset.root) / lost}: cannot be read any more ({unreadable[lost]}); the run in "
                        f"{run_dir} trained on it: restore it to resume, or start a new run")
    for name, items in recorded.items():
        split = dataset.splits().get(name)
        now = [] if split is None else _split_items(split)
        if now != items:
            raise DataError(f"{dataset.root or dataset.name}: the {name} split is not the one the run in {run_dir} "
                            f"recorded ({len(now)} images now, {len(items)} in splits/{name}.csv): files were "
                            "added, removed or renamed since; restore them to resume, or start a new run")


def read_split_indices(run_dir, name: str) -> list[int]:
    """The source row numbers of an in-memory split (``index`` column)."""
    return [int(index) for index, _ in read_split_list(run_dir, name)]


def load_split_files(run_dir, name: str = "test", root=None) -> Split:
    """The file split ``name`` of a run, resolved against ``root`` (default:
    the data root recorded by the run). Labels keep the run's class order."""
    run_dir = Path(run_dir)
    class_names = read_class_names(run_dir)
    if root is None:
        root_file = run_dir / "splits" / "root.txt"
        if not root_file.exists():
            raise DataError(f"{run_dir} was trained on an in-memory dataset; pass the data root")
        root = root_file.read_text(encoding="utf-8").strip()
    root = Path(root)
    if not root.is_dir():  # one line naming it, not a decode failure per file
        raise DataError(f"{root}: the data folder {run_dir} was trained on is gone (moved or deleted); "
                        "evaluate takes a folder of class folders with --data")
    index = {c: i for i, c in enumerate(class_names)}
    rows = read_split_list(run_dir, name)
    unknown = sorted({label for _, label in rows if label not in index})
    if unknown:
        raise DataError(f"{run_dir}/splits/{name}.csv names unknown classes: {', '.join(unknown)}")
    paths = [root / rel for rel, _ in rows]
    labels = np.array([index[label] for _, label in rows], dtype=np.int64)
    return Split(name=name, labels=labels, class_names=class_names, paths=paths, root=root)


def append_decode_failures(run_dir, failures) -> int:
    """Add files that failed during training (``pipeline.decode_failures``)
    to ``run_dir/skipped.csv``, once each; returns how many were new."""
    path = Path(run_dir) / "skipped.csv"
    known: set[str] = set()
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            known = {row[0] for row in list(csv.reader(f))[1:] if row}
    new = [(rel, reason) for rel, reason in failures if rel not in known]
    write_header = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if write_header:
            writer.writerow(["path", "reason"])
        writer.writerows((rel, f"failed during training: {reason}") for rel, reason in new)
    return len(new)
