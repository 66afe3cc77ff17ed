"""`portaclass train --weights imagenet --freeze-base --fine-tune-epochs N`
end to end, offline: the Keras cache is seeded with a MobileNetV2 weights file
the test writes, so the real `weights="imagenet"` download path is used."""

from __future__ import annotations

import csv

import h5py
import keras
import numpy as np
import pytest

from portaclass.backend import to_numpy
from portaclass.layout import model_input_shape
from portaclass.train.runner import TrainOptions, run_training
from tests.helpers import saved_model_accuracy
from tests.models.test_applications import MOBILENET_V2_NO_TOP


@pytest.fixture
def seeded_keras_cache(tmp_path, monkeypatch):
    from keras.src.backend import config
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    if keras.config.image_data_format() == "channels_first":
        pytest.skip("keras.applications' imagenet weights are channels_last only")
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    # Keras' own random init: trainable (constant "marked" weights saturate
    # ReLU6 and stop every gradient), and distinct from our NumPy-seeded init.
    keras.utils.set_random_seed(123)
    base = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=model_input_shape((32, 32, 3)))
    with h5py.File(home / "models" / MOBILENET_V2_NO_TOP, "w") as f:
        save_weights_to_hdf5_group(f, base)
    return {v.path: to_numpy(v) for v in base.weights}


def test_imagenet_head_then_fine_tune_keeps_batchnorm_statistics(seeded_keras_cache, tmp_path):
    from portaclass.data import write_shapes

    write_shapes(tmp_path / "images", n_per_class=16, image_size=32, seed=0)
    out = tmp_path / "run"
    result = run_training(TrainOptions(
        data=str(tmp_path / "images"), model="mobilenet_v2", image_size=32, weights="imagenet", freeze_base=True,
        epochs=1, fine_tune_epochs=1, unfreeze="top:10", fine_tune_lr=1e-3, batch_size=16,
        out=str(out), quiet=True, report=False), log=lambda line: None)
    with (out / "history.csv").open() as f:
        assert [int(float(r["phase"])) for r in csv.DictReader(f)] == [1, 2]
    backbone = keras.saving.load_model(out / "model.keras").get_layer("backbone")
    imagenet = list(seeded_keras_cache.values())
    weights = [to_numpy(v) for v in backbone.weights]
    moved = [not np.array_equal(w, i) for w, i in zip(weights, imagenet)]
    is_stat = ["moving_" in v.path for v in backbone.weights]
    # BatchNorm statistics never move; phase 2 changed the unfrozen top only.
    assert not any(m for m, s in zip(moved, is_stat) if s)
    assert any(moved[-20:]) and not any(moved[:20])
    assert result.metrics["scored_on"] == "test"
    assert result.metrics["accuracy"] == pytest.approx(saved_model_accuracy(out), abs=1e-6)
