"""Built-in datasets (shapes, digits, CIFAR-10 offline and via the Keras
cache) and the augmentation preview grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from portaclass.data import load_dataset, make_pipeline, make_shapes, read_cifar10, write_shapes
from portaclass.errors import DataError


def test_shapes_are_deterministic_and_balanced():
    x, y, names = make_shapes(5, 32, seed=4)
    x2, y2, _ = make_shapes(5, 32, seed=4)
    x3, _, _ = make_shapes(5, 32, seed=5)
    assert names == ["circle", "square", "star", "triangle"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, x3)
    assert np.bincount(y).tolist() == [5, 5, 5, 5]
    assert len({im.tobytes() for im in x}) == 20  # every image differs


def test_shapes_classes_differ_in_outline_not_colour():
    x, y, _ = make_shapes(40, 32, seed=0)
    # the share of pixels the shape covers separates stars from squares, whatever the colours
    background = x[:, 0, 0, :].astype(int)
    covered = (np.abs(x.astype(int) - background[:, None, None, :]).sum(-1) > 60).mean(axis=(1, 2))
    star, square = covered[y == 2].mean(), covered[y == 1].mean()
    assert star < square * 0.7


def test_write_shapes_writes_an_image_folder(tmp_path):
    root = write_shapes(tmp_path / "s", n_per_class=2, image_size=24, seed=0)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert files[:2] == ["circle/circle_0000.png", "circle/circle_0001.png"] and len(files) == 8
    x, _, _ = make_shapes(2, 24, seed=0)
    assert np.array_equal(np.asarray(Image.open(root / "circle" / "circle_0000.png")), x[0])
    dataset = load_dataset(root, 24, val_split=0, test_split=0, cache_dir=tmp_path / "c")
    assert dataset.class_names == ["circle", "square", "star", "triangle"]


def test_builtin_specs_load(tmp_path):
    digits = load_dataset("digits", 16, channels=3)
    assert digits.class_names == [str(i) for i in range(10)]
    assert digits.train.images.shape[1:] == (16, 16, 3)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    shapes = load_dataset("shapes", 32, channels=1)
    assert shapes.train.images.shape[1:] == (32, 32, 1) and shapes.channels == 1
    x, y = make_pipeline(shapes.train, 16, image_size=32, channels=1)[0]
    assert x.shape == (16, 32, 32, 1)


@pytest.mark.one_backend
def test_a_folder_named_like_a_builtin_is_the_users_folder(tmp_path, monkeypatch):
    """``--data shapes`` in a folder holding ``shapes/`` (two classes of
    yours) trains on that folder, not on the built-in four-class set, and
    the run records where it is, so it reads the same data from anywhere."""
    import json
    import shutil

    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import run_training

    root = write_shapes(tmp_path / "shapes", n_per_class=6, image_size=16, seed=2)
    for extra in ("star", "triangle"):
        shutil.rmtree(root / extra)
    monkeypatch.chdir(tmp_path)
    assert load_dataset("shapes", 16, cache_dir=tmp_path / "c").class_names == ["circle", "square"]
    result = run_training(TrainOptions(data="shapes", model="simple_cnn", image_size=16, epochs=1,
                                       batch_size=4, out=str(tmp_path / "runs"), quiet=True, report=False),
                          log=lambda _line: None)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["options"]["data"] == str(root.resolve())
    assert config["data"]["class_names"] == ["circle", "square"]
    monkeypatch.chdir(tmp_path / "runs")  # elsewhere, the built-in name means the built-in again
    assert load_dataset("shapes", 16).class_names == ["circle", "square", "star", "triangle"]


@pytest.mark.one_backend
def test_a_run_on_a_builtin_reopened_beside_a_same_named_folder_reads_the_builtin(tmp_path, monkeypatch):
    """config.json records a folder by its absolute path, so a bare "shapes"
    there is the built-in: a ``shapes/`` folder made later beside the run
    changes neither its held-out split, nor its report's preview, nor --resume."""
    import shutil

    import portaclass.train.callbacks as callbacks
    from portaclass.data.run_files import read_split_indices
    from portaclass.report.html import write_report
    from portaclass.run import Run
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import resume_training, run_training
    from tests.helpers import preview_spy

    class Crash(Exception):
        pass

    real = callbacks.RunCheckpoints.on_epoch_end

    def crash_after_the_first_checkpoint(self, epoch, logs=None):
        real(self, epoch, logs)
        raise Crash

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(callbacks.RunCheckpoints, "on_epoch_end", crash_after_the_first_checkpoint)
    with pytest.raises(Crash):
        run_training(TrainOptions(data="shapes", model="simple_cnn", image_size=16, epochs=2, batch_size=16,
                                  out="run", quiet=True, report=False), log=lambda _line: None)
    monkeypatch.setattr(callbacks.RunCheckpoints, "on_epoch_end", real)
    root = write_shapes(tmp_path / "shapes", n_per_class=6, image_size=16, seed=2)
    for extra in ("star", "triangle"):
        shutil.rmtree(root / extra)

    four = ["circle", "square", "star", "triangle"]
    assert Run.open("run").split("val").class_names == four
    lines = []
    resume_training("run", quiet=True, log=lines.append)
    assert any(line.startswith("shapes:") and "4 classes" in line for line in lines), lines
    previewed = preview_spy(monkeypatch)
    write_report("run")
    assert previewed[0].class_names == four
    assert list(previewed[0].train.source_index) == read_split_indices("run", "train")


def check_tiny_cifar(dataset):
    assert dataset.class_names == ["airplane", "automobile", "bird"]
    assert len(dataset.train) + len(dataset.val) == 20 and len(dataset.test) == 4
    assert dataset.train.images.shape[1:] == (32, 32, 3)


def test_cifar_folder_and_archive_give_the_same_arrays(tiny_cifar, tiny_cifar_archive):
    from tests.data.conftest import cifar_batch

    (x, y), (xt, yt), names = read_cifar10(tiny_cifar)
    (x2, y2), (xt2, yt2), _ = read_cifar10(tiny_cifar_archive)
    assert np.array_equal(x, x2) and np.array_equal(yt, yt2)
    # rows are channel-major: the first 1024 bytes are the red plane
    row = cifar_batch(4, 1)[b"data"][0]
    assert np.array_equal(x[0, :, :, 0].reshape(-1), row[:1024])
    assert np.array_equal(x[0, :, :, 2].reshape(-1), row[2048:])
    check_tiny_cifar(load_dataset(tiny_cifar.parent, 32, val_split=0.2))
    check_tiny_cifar(load_dataset(tiny_cifar, 32, val_split=0.2))
    check_tiny_cifar(load_dataset(tiny_cifar_archive, 32, val_split=0.2))


def test_cifar10_keyword_reads_the_keras_cache_offline(tmp_path, monkeypatch):
    from keras.src.backend import config as keras_config

    from portaclass.data import cifar
    from tests.data.conftest import write_tiny_cifar

    # where keras.datasets.cifar10.load_data() extracts its download
    write_tiny_cifar(tmp_path / "kerashome" / "datasets" / "cifar-10-batches-py-target")
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "kerashome"))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download CIFAR-10")

    import keras

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", no_download)
    assert cifar.keras_cache_folder() == tmp_path / "kerashome/datasets/cifar-10-batches-py-target/cifar-10-batches-py"
    check_tiny_cifar(load_dataset("cifar10", 32, val_split=0.2))


def test_broken_or_missing_cifar_files_are_data_errors(tiny_cifar):
    (tiny_cifar / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR-10 batch file"):
        read_cifar10(tiny_cifar)
    (tiny_cifar / "data_batch_3").unlink()
    with pytest.raises(DataError, match="cannot read .*data_batch_3"):
        read_cifar10(tiny_cifar)


@pytest.mark.parametrize("spec", ["folder", "shapes"])
def test_preview_writes_a_titled_grid(tmp_path, shapes_dir, spec):
    from portaclass.report.preview import write_preview

    out = write_preview(str(shapes_dir) if spec == "folder" else "shapes", out=tmp_path / "grid.png",
                        augment="standard", count=6, image_size=32, cache_dir=tmp_path / "c")
    assert out == tmp_path / "grid.png"
    image = Image.open(out)
    assert image.size[0] > 200 and image.size[1] > 150
    assert np.asarray(image.convert("L")).std() > 10  # not a blank canvas
