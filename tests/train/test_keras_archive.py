"""Checkpoints and model files written around their weights file
(train/keras_archive.py): a sound zip that Keras and Python's zipfile read
like any .keras file, the same weights and optimizer state back, portaclass'
members inside, Keras' own save for models with assets, nothing left over."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

from portaclass.train.checkpoint import read_model_info, read_state, write_keras_atomic
from portaclass.train.keras_archive import USER_BLOCK

# The archive code is the same on every backend (weights arrive as NumPy);
# every backend writes its checkpoints through it in the resume tests.
pytestmark = pytest.mark.one_backend


def _trained_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    model.train_on_batch(x, np.arange(8) % 3)
    return model


def test_a_checkpoint_is_a_sound_keras_archive_with_everything_back(tmp_path):
    model = _trained_model()
    path = tmp_path / "last.keras"
    path.write_bytes(b"the previous checkpoint")  # replaced whole
    write_keras_atomic(model, path, extra={"epoch": 3}, info={"class_names": ["a", "b", "c"]})
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC checks out
        names = archive.namelist()
        weights = archive.infolist()[0]
        with archive.open(weights) as member:
            assert member.read(8) == b"\x89HDF\r\n\x1a\n"  # the member is the HDF5 file itself
    # written in place, not copied: the weights come first, right after the
    # HDF5 user block that holds their zip header (Keras' own save puts them third)
    assert weights.filename == "model.weights.h5" and weights.header_offset + 46 == USER_BLOCK
    assert set(names) == {"model.weights.h5", "metadata.json", "config.json", "portaclass/state.json",
                          "portaclass/model.json"}
    assert read_state(path) == {"epoch": 3} and read_model_info(path) == {"class_names": ["a", "b", "c"]}
    loaded = keras.saving.load_model(path)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras"]  # no temporary file or folder


def test_a_model_with_assets_takes_keras_own_save(tmp_path):
    """Keras' unzipped save drops assets (a lookup layer's vocabulary): such
    a model is saved the zipped way and keeps them."""
    inputs = keras.Input((1,), dtype="string")
    outputs = keras.layers.StringLookup(vocabulary=["ant", "bee"])(inputs)
    model = keras.Model(inputs, outputs)
    path = write_keras_atomic(model, tmp_path / "lookup.keras", info={"kind": "lookup"})
    loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].get_vocabulary() == ["[UNK]", "ant", "bee"]
    assert read_model_info(path) == {"kind": "lookup"}
