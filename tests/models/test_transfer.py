"""Transfer learning: frozen base in phase 1, unfreeze for fine-tuning,
BatchNormalization statistics never move (Keras' transfer-learning guide)."""

from __future__ import annotations

import numpy as np
import pytest

from portaclass.backend import to_numpy
from portaclass.errors import ModelFileError, UsageError
from portaclass.models import build_transfer_model, create_model, unfreeze

from .conftest import TEST_SHAPE


def _snapshot(variables):
    return [to_numpy(v).copy() for v in variables]


def _bn_stats(base):
    return [v for v in base.weights if "moving_" in v.path]


def _fit(model, data, lr):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    model.fit(*data, batch_size=8, epochs=1, verbose=0)


@pytest.fixture
def data(image_batch):
    x, y = image_batch
    return np.concatenate([x, x]), np.concatenate([y, y])


def test_frozen_base_then_fine_tune(data):
    model, base = build_transfer_model("mobilenet_v2", 3, TEST_SHAPE, seed=0)
    assert not base.trainable and base.name == "backbone"
    assert model.output.shape[-1] == 3
    base_before, stats_before = _snapshot(base.weights), _snapshot(_bn_stats(base))
    head_before = _snapshot(model.get_layer("predictions").weights)

    _fit(model, data, 1e-3)  # phase 1: only the head learns
    for got, want in zip(_snapshot(base.weights), base_before):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in
               zip(_snapshot(model.get_layer("predictions").weights), head_before))

    assert unfreeze(base, "all") > 0
    _fit(model, data, 1e-4)  # phase 2: recompiled, the base learns too
    trainable_after = _snapshot(base.trainable_weights)
    assert trainable_after and any(
        not np.array_equal(to_numpy(v), before)
        for v, before in zip(base.weights, base_before) if v.trainable
    )
    for got, want in zip(_snapshot(_bn_stats(base)), stats_before):
        np.testing.assert_array_equal(got, want)


def test_unfreeze_specs_keep_batchnorm_frozen():
    import keras

    _, base = build_transfer_model("resnet18", 3, TEST_SHAPE, seed=0)
    assert unfreeze(base, "top:3") == 3
    bns = [layer for layer in base._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    count = unfreeze(base, "from:stage4_block1_1_conv")
    assert base.get_layer("stage4_block2_2_conv").trainable
    assert not base.get_layer("stage3_block2_2_conv").trainable
    assert 4 <= count <= 5  # stage 4's convs (its shortcut conv may come first)
    with pytest.raises(UsageError, match="'top:x'"):
        unfreeze(base, "top:x")
    with pytest.raises(UsageError, match="'nope'"):
        unfreeze(base, "from:nope")


def test_backbone_from_a_saved_model(tmp_path, image_batch):
    trained = create_model("simple_cnn", 5, TEST_SHAPE, seed=0)
    path = tmp_path / "model.keras"
    trained.save(path)
    model, base = build_transfer_model(path, 2, seed=1)
    x, _ = image_batch
    assert model.predict(x, verbose=0).shape == (len(x), 2)
    assert len(base.output.shape) == 4  # cut before the global pooling
    assert not base.trainable
    # the cut keeps the trained features: same values as the trained model's
    for got, want in zip(base.weights, trained.weights[: len(base.weights)]):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


def test_missing_backbone_file_names_it(tmp_path):
    with pytest.raises(ModelFileError, match="gone.keras"):
        build_transfer_model(tmp_path / "gone.keras", 2)


def test_adapt_mode_lets_batchnorm_learn_the_new_data_in_phase_two(data):
    model, base = build_transfer_model("resnet18", 3, TEST_SHAPE, seed=0, batchnorm="adapt")
    stats_before = _snapshot(_bn_stats(base))
    _fit(model, data, 1e-3)  # phase 1: a frozen base keeps its statistics even in adapt mode
    for got, want in zip(_snapshot(_bn_stats(base)), stats_before):
        np.testing.assert_array_equal(got, want)
    unfreeze(base, "all", batchnorm="adapt")
    _fit(model, data, 1e-4)
    assert any(not np.array_equal(got, want)
               for got, want in zip(_snapshot(_bn_stats(base)), stats_before))


def test_unknown_batchnorm_mode_names_it():
    with pytest.raises(UsageError, match="'sometimes'"):
        build_transfer_model("simple_cnn", 3, TEST_SHAPE, batchnorm="sometimes")
