"""Shared test plumbing: the backend under test and GPU skipping. Helpers for
running code under another backend live in tests/helpers.py."""

from __future__ import annotations

import os

import pytest

import portaclass

portaclass.use_backend(os.environ.get("KERAS_BACKEND") or None)


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    from portaclass import backend

    if not backend.has_gpu():
        skip = pytest.mark.skip(reason=f"no GPU visible to the {backend.NAME} backend")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend_name() -> str:
    return portaclass.active_backend()




@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished two-epoch simple_cnn run on 64 shape PNGs (16 px) with a
    held-out test split: what evaluate, predict and the report read."""
    from portaclass.data import write_shapes
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import run_training

    root = write_shapes(tmp_path_factory.mktemp("data") / "shapes", n_per_class=16, image_size=16, seed=3)
    options = TrainOptions(data=str(root), model="simple_cnn", image_size=16, epochs=2, batch_size=8,
                           val_split=0.25, test_split=0.25, out=str(tmp_path_factory.mktemp("runs") / "run"),
                           quiet=True)
    return run_training(options, log=lambda _line: None), root

