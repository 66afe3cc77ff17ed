"""Small, fast training inputs shared by the engine tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory):
    """48 PNGs of the shapes dataset (12 per class, 16 px) in class folders."""
    from portaclass.data import write_shapes

    return write_shapes(tmp_path_factory.mktemp("tiny") / "shapes", n_per_class=12, image_size=16, seed=5)


@pytest.fixture
def tiny_options(tiny_images, tmp_path):
    """``TrainOptions`` for a seconds-long run on ``tiny_images``; override
    fields with keyword arguments."""
    from portaclass.train.options import TrainOptions

    def make(**overrides):
        values = dict(data=str(tiny_images), image_size=16, batch_size=8, epochs=2, val_split=0.25,
                      test_split=0.0, out=str(tmp_path / "run"), quiet=True,
                      report=False)
        values.update(overrides)
        return TrainOptions(**values)

    return make
