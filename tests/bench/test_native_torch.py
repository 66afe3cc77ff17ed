"""The plain PyTorch reference is portaclass' resnet18, layer for layer, and
its plain script trains a pre-split folder end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from portaclass.bench import native_torch

# The plain PyTorch script is torch whatever the backend; the Keras model it is
# compared with is the same on every backend (tests/models/test_init.py, cross).
pytestmark = pytest.mark.one_backend


@pytest.mark.parametrize("size", [32, 72], ids=["cifar-stem", "imagenet-stem"])
def test_resnet18_matches_portaclass_output_for_output(size):
    import keras
    import torch

    from portaclass.layout import CHANNELS_FIRST, data_format
    from portaclass.models import create_model

    portaclass_model = create_model("resnet18", 3, (size, size, 3), seed=0)
    model = native_torch.build_resnet18(3, size)
    keras_trainable = sum(int(np.prod(w.shape)) for w in portaclass_model.trainable_weights)
    assert sum(p.numel() for p in model.parameters()) == keras_trainable

    native_torch.copy_keras_weights(model, portaclass_model)
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
    keras_input = x.transpose(0, 3, 1, 2) if data_format() == CHANNELS_FIRST else x
    expected = keras.ops.convert_to_numpy(portaclass_model(keras_input, training=False))
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), expected, atol=2e-5)


def test_plain_script_trains_a_presplit_folder(tmp_path):
    import torch

    from portaclass.data import write_shapes

    data = tmp_path / "photos"
    write_shapes(data / "train", n_per_class=4, image_size=40, seed=1)
    write_shapes(data / "val", n_per_class=2, image_size=40, seed=2)
    lines = []
    result = native_torch.train_folder(data, image_size=32, epochs=2, batch_size=8, augment="light",
                                       out=tmp_path / "out", workers=0, log=lines.append)
    assert len(result["epoch_seconds"]) == 2 and len(lines) == 2
    assert result["inside_epochs_s"] == pytest.approx(sum(result["epoch_seconds"]), abs=0.01)
    assert 0.0 <= result["val_accuracy"] <= 1.0 and np.isfinite(result["val_loss"])
    json.dumps(result)  # the script prints it as one JSON line

    checkpoint = torch.load(tmp_path / "out" / "checkpoint.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["optimizer"]["state"]  # Adam moments kept
    model = native_torch.build_resnet18(4, 32)
    model.load_state_dict(torch.load(tmp_path / "out" / "model.pt"))


def test_light_augmentation_crops_and_flips_differently_each_epoch(tmp_path):
    from portaclass.data import write_shapes

    write_shapes(tmp_path / "train", n_per_class=1, image_size=40, seed=1)
    paths, labels, _ = native_torch.image_folder(tmp_path / "train")
    images = native_torch.FolderImages(paths, labels, 32, augment="light", seed=0)
    first, label = images[0]
    assert first.shape == (3, 32, 32) and first.dtype == np.float32 and label == 0
    later = []
    for epoch in (1, 2, 3):
        images.epoch = epoch
        later.append(images[0][0])
    assert not all(np.array_equal(x, first) for x in later)
