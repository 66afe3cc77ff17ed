"""Checkpoints and model files written around their weights file
(train/keras_archive.py): a sound zip that Keras and Python's zipfile read
like any .keras file, the same weights and optimizer state back, portaclass'
members inside, Keras' own save for models with assets, nothing left over."""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np
import pytest

from portaclass.train import archive_layout
from portaclass.train.checkpoint import (
    read_model_info,
    read_state,
    remove_partial_writes,
    remove_spares,
    write_keras_atomic,
)
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


def _weights_member(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return archive.read("model.weights.h5")


def _keras_own_bytes(model, path) -> bytes:
    """The weights file as Keras' walk writes it now (no learned layout)."""
    archive_layout.forget_all()
    write_keras_atomic(model, path)
    return _weights_member(path)


def test_the_next_checkpoint_of_a_model_is_the_file_keras_would_write(tmp_path):
    """After the first save the values go straight into the file's layout:
    the result must be byte for byte Keras' own weights file for the new
    values, load back, and carry the new values, not the first save's."""
    model = _trained_model()
    first = write_keras_atomic(model, tmp_path / "last.keras", extra={"epoch": 1})
    first_bytes = _weights_member(first)
    assert archive_layout.layout_for(model) is not None  # learned from the first save
    x = np.random.default_rng(1).normal(size=(8, 6, 6, 3)).astype("float32")
    model.train_on_batch(x, np.arange(8) % 3)  # new weights, moments and iteration count
    second = write_keras_atomic(model, tmp_path / "last.keras", extra={"epoch": 2})
    second_bytes = _weights_member(second)
    assert second_bytes != first_bytes
    assert second_bytes == _keras_own_bytes(model, tmp_path / "keras.keras")
    assert read_state(second) == {"epoch": 2}
    loaded = keras.saving.load_model(second)
    for ours, theirs in zip(model.variables + model.optimizer.variables,
                            loaded.variables + loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_a_model_that_gained_variables_is_walked_again(tmp_path):
    """A model saved before its optimizer was built: the next save must hold
    the optimizer's state, so the first save's layout no longer applies."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    write_keras_atomic(model, tmp_path / "m.keras")
    model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 3), "float32"))
    path = write_keras_atomic(model, tmp_path / "m.keras")
    loaded = keras.saving.load_model(path)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables) > 1
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


@keras.saving.register_keras_serializable("portaclass_tests")
class CountingLayer(keras.layers.Layer):
    """Saves a number computed at save time, not a variable."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, inputs):
        self.calls += 1
        return inputs

    def save_own_variables(self, store):
        store["calls"] = np.array(self.calls)

    def load_own_variables(self, store):
        self.calls = int(store["calls"][()])


def test_a_layer_saving_computed_values_is_walked_every_time(tmp_path):
    model = keras.Sequential([keras.Input((2,)), CountingLayer()])
    write_keras_atomic(model, tmp_path / "m.keras")
    assert archive_layout.layout_for(model) is None
    model.layers[0].calls = 7
    loaded = keras.saving.load_model(write_keras_atomic(model, tmp_path / "m.keras"))
    assert loaded.layers[0].calls == 7


def test_keras_walk_lists_the_attributes_it_skips_once(tmp_path, monkeypatch):
    """Keras' saving caches the attributes its walk skips under a key it
    never reads back, building a throwaway Layer() per layer on every save;
    after one save, portaclass' later walks build none."""
    model = _trained_model()
    _keras_own_bytes(model, tmp_path / "a.keras")
    built = []
    real_init = keras.layers.Layer.__init__
    monkeypatch.setattr(keras.layers.Layer, "__init__",
                        lambda self, *a, **k: (built.append(type(self)), real_init(self, *a, **k))[1])
    _keras_own_bytes(model, tmp_path / "b.keras")
    assert built == []


def test_epoch_checkpoints_are_written_over_the_file_they_replace(tmp_path):
    """Every epoch's save goes into the file the save before replaced
    (its blocks, not new ones), the checkpoint is whole after each save,
    and a run's end or a resume leaves the checkpoint alone."""
    model = _trained_model()
    path = tmp_path / "last.keras"
    spare = tmp_path / ".last.tmp-spare.keras"
    inodes = []
    for epoch in (1, 2, 3, 4):
        spare_inode = spare.stat().st_ino if spare.exists() else None
        write_keras_atomic(model, path, extra={"epoch": epoch}, reuse_space=True)
        assert read_state(path) == {"epoch": epoch}
        if spare_inode is not None:
            assert path.stat().st_ino == spare_inode  # written into the spare, renamed into place
        inodes.append(path.stat().st_ino)
    assert spare.stat().st_ino == inodes[-2]  # the replaced checkpoint is the next spare
    assert len(set(inodes)) == 2
    os.link(path, tmp_path / ".last.tmp-previous.keras")  # as a kill between the renames leaves it
    removed = remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [".last.tmp-previous.keras", ".last.tmp-spare.keras"]
    write_keras_atomic(model, path, extra={"epoch": 5}, reuse_space=True)
    remove_spares(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras"]
    assert read_state(path) == {"epoch": 5}
    keras.saving.load_model(path)


def test_a_model_of_bfloat16_variables_is_saved_by_keras_every_time(tmp_path):
    """Variables NumPy has no name for (bfloat16, stored by Keras with a
    dtype attribute): no layout, and every save is Keras' own."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, dtype="bfloat16")])
    write_keras_atomic(model, tmp_path / "m.keras")
    assert archive_layout.layout_for(model) is None
    model.layers[0].kernel.assign(np.ones((4, 3)))
    loaded = keras.saving.load_model(write_keras_atomic(model, tmp_path / "m.keras"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.layers[0].kernel).astype("float32"),
                                  np.ones((4, 3), "float32"))
