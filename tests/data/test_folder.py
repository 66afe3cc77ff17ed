"""Indexing an ImageFolder: Keras' class order, pre-split layouts, seeded
stratified splits, skipped files, the scan cache and the run-directory files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from portaclass.data import (
    from_directory,
    load_dataset,
    load_split_files,
    read_split_list,
    write_run_files,
)
from portaclass.errors import DataError
from tests.data.conftest import SMALL_PIXEL_LIMIT, solid


def make_folder(root, counts: dict[str, int], suffix="png"):
    for cls, count in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            solid((12, 12), (i * 20 % 255, 100, 50)).save(root / cls / f"img_{i}.{suffix}")
    return root


def test_class_order_and_files_match_keras(tmp_path, backend_name):
    import keras
    from keras.src.utils.dataset_utils import index_directory

    root = make_folder(tmp_path / "d", {"b": 2, "B": 2, "a": 1, "10": 1, "9": 1, "_x": 1, "a b": 1})
    (root / "b" / "nested").mkdir()
    solid().save(root / "b" / "nested" / "deep.jpg")
    (root / ".git").mkdir()  # hidden folders are not classes, for Keras nor us
    solid().save(root / "stray.png")  # files at the root are not classes
    dataset = from_directory(root, val_split=0, test_split=0, cache_dir=tmp_path / "cache")
    keras_paths, keras_labels, keras_classes = index_directory(
        str(root), "inferred", formats=(".png", ".jpg"), shuffle=False, verbose=False)
    assert dataset.class_names == keras_classes == ["10", "9", "B", "_x", "a", "a b", "b"]
    ours = sorted(zip(map(str, dataset.train.paths), dataset.train.labels.tolist()))
    assert ours == sorted(zip(keras_paths, np.asarray(keras_labels).tolist()))
    if backend_name == "tensorflow":  # the public Keras API builds a tf.data pipeline
        ds = keras.utils.image_dataset_from_directory(root, image_size=(8, 8), verbose=False)
        assert ds.class_names == dataset.class_names


def test_split_is_stratified_seeded_and_disjoint(shapes_dir, tmp_path):
    first = from_directory(shapes_dir, val_split=0.2, test_split=0.1, seed=7, cache_dir=tmp_path / "c")
    again = from_directory(shapes_dir, val_split=0.2, test_split=0.1, seed=7, cache_dir=tmp_path / "c")
    other = from_directory(shapes_dir, val_split=0.2, test_split=0.1, seed=8, cache_dir=tmp_path / "c")
    assert first.train.paths == again.train.paths and first.test.paths == again.test.paths
    assert first.val.paths != other.val.paths
    assert (len(first.train), len(first.val), len(first.test)) == (28, 8, 4)
    assert set(first.val.class_counts().values()) == {2}  # 20% of 10 per class
    names = [set(s.paths) for s in (first.train, first.val, first.test)]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert "train 28, val 8, test 4 images; 4 classes" in first.summary()


def test_presplit_layout_is_respected(tmp_path):
    root = tmp_path / "pre"
    make_folder(root / "train", {"cat": 5, "dog": 5})
    make_folder(root / "validation", {"cat": 2, "dog": 1})
    make_folder(root / "test", {"dog": 3})
    dataset = from_directory(root, val_split=0.5, test_split=0.5, cache_dir=tmp_path / "c")
    assert dataset.class_names == ["cat", "dog"]
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (10, 3, 3)
    assert all(p.parent.parent.name == "validation" for p in dataset.val.paths)
    assert dataset.test.labels.tolist() == [1, 1, 1]


def test_presplit_without_val_carves_it_from_train(tmp_path):
    root = tmp_path / "pre"
    make_folder(root / "train", {"cat": 5, "dog": 5})
    make_folder(root / "test", {"cat": 1, "dog": 1})
    dataset = from_directory(root, val_split=0.2, cache_dir=tmp_path / "c")
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (8, 2, 2)


def test_classes_named_train_and_test_are_not_a_presplit_layout(tmp_path):
    root = make_folder(tmp_path / "d", {"train": 3, "test": 3})
    dataset = from_directory(root, val_split=0, test_split=0, cache_dir=tmp_path / "c")
    assert dataset.class_names == ["test", "train"] and len(dataset.train) == 6


def test_presplit_with_unknown_class_is_an_error(tmp_path):
    root = tmp_path / "pre"
    make_folder(root / "train", {"cat": 2})
    make_folder(root / "val", {"cow": 1})
    with pytest.raises(DataError, match="cow"):
        from_directory(root, cache_dir=tmp_path / "c")


def test_hostile_files_are_skipped_and_listed(hostile_dir, tmp_path):
    root, expected = hostile_dir
    dataset = from_directory(root, val_split=0, test_split=0, cache_dir=tmp_path / "c",
                             max_pixels=SMALL_PIXEL_LIMIT)
    assert len(dataset.train) == 12
    reasons = dict(dataset.skipped)
    assert set(reasons) == {f"cats/{name}" for name in expected}
    for name, reason in expected.items():
        assert reasons[f"cats/{name}"].startswith(reason)
    assert "4 unreadable files skipped" in dataset.summary()
    run_dir = tmp_path / "run"
    write_run_files(dataset, run_dir)
    with open(run_dir / "skipped.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"] and {r[0] for r in rows[1:]} == set(reasons)


def test_scan_cache_skips_decoding_on_second_run(shapes_dir, tmp_path, monkeypatch):
    from portaclass.data import decode

    calls = []
    original = decode.check_image
    monkeypatch.setattr(decode, "check_image", lambda p, m: calls.append(p) or original(p, m))
    from_directory(shapes_dir, cache_dir=tmp_path / "cache")
    assert len(calls) == 40
    assert list((tmp_path / "cache").glob("scan-*.json"))
    from_directory(shapes_dir, cache_dir=tmp_path / "cache")
    assert len(calls) == 40  # nothing decoded again
    changed = shapes_dir / "circle" / "circle_0000.png"
    Image.new("RGB", (9, 9)).save(changed)  # new size and mtime: checked again
    from_directory(shapes_dir, cache_dir=tmp_path / "cache")
    assert calls[40:] == [changed]


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = make_folder(tmp_path / "d", {"full": 2})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*empty has no usable image"):
        from_directory(root, cache_dir=tmp_path / "c")


def test_class_of_only_broken_files_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", {"full": 2})
    (root / "broken").mkdir()
    (root / "broken" / "a.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"broken has no usable image \(1 unreadable"):
        from_directory(root, cache_dir=tmp_path / "c")


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "d" / "cls").mkdir(parents=True)
    (tmp_path / "d" / "cls" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="no images found in .*d"):
        from_directory(tmp_path / "d", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing", 32)


def test_split_leaving_a_class_without_training_image_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", {"many": 10, "two": 2})
    with pytest.raises(DataError, match=r"two has no training image"):
        from_directory(root, val_split=0.5, test_split=0.3, cache_dir=tmp_path / "c")


def test_split_lists_round_trip_through_the_run_dir(shapes_dir, tmp_path):
    dataset = from_directory(shapes_dir, cache_dir=tmp_path / "c")
    run_dir = tmp_path / "run"
    write_run_files(dataset, run_dir)
    rows = read_split_list(run_dir, "test")
    assert rows[0][0].count("/") == 1 and not rows[0][0].startswith("/")  # relative to the root
    test = load_split_files(run_dir, "test")
    assert test.paths == dataset.test.paths
    assert test.labels.tolist() == dataset.test.labels.tolist()
    with open(run_dir / "skipped.csv") as f:
        assert f.read().strip() == "path,reason"  # header only when nothing was skipped
