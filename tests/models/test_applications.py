"""Pretrained keras.applications families: the real weights="imagenet" path
(offline, through a Keras cache the test seeds itself), weights=PATH, and the
one-line errors for missing or mismatched files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from portaclass.backend import to_numpy
from portaclass.errors import ModelFileError
from portaclass.models import create_model, get_spec

from .conftest import NUM_CLASSES, TEST_SHAPE

# Weight files and the Keras cache are read the same way on every backend;
# loading a saved model on another backend: tests/models/test_portable.py (cross).
pytestmark = pytest.mark.one_backend

# keras/src/applications/mobilenet_v2.py: no-top file for alpha 1.0; rows is
# 224 for any input size outside 96..224 (Keras warns and loads 224's file).
MOBILENET_V2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _marked_base(application_name: str):
    """A no-top keras.applications model whose weights are recognisable."""
    import keras

    from portaclass.layout import model_input_shape

    base = getattr(keras.applications, application_name)(
        include_top=False, weights=None, input_shape=model_input_shape(TEST_SHAPE)
    )
    for index, variable in enumerate(base.weights):
        variable.assign(np.full(variable.shape, 0.001 * (index % 97) + 0.5, "float32"))
    return base


def _backbone_weights(model):
    return [to_numpy(v) for v in model.get_layer("backbone").weights]


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """An empty Keras cache dir (what KERAS_HOME sets), so nothing real is used."""
    from keras.src.backend import config

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home" / "models").mkdir(parents=True)
    return tmp_path / "keras_home"


def test_imagenet_weights_come_from_the_keras_cache(keras_cache):
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    if keras.config.image_data_format() == "channels_first":
        pytest.skip("keras.applications' imagenet weights are channels_last only")
    base = _marked_base("MobileNetV2")
    with h5py.File(keras_cache / "models" / MOBILENET_V2_NO_TOP, "w") as f:
        save_weights_to_hdf5_group(f, base)  # the legacy format Keras publishes
    model = create_model("mobilenet_v2", NUM_CLASSES, TEST_SHAPE, weights="imagenet", seed=0)
    for got, want in zip(_backbone_weights(model), base.weights):
        np.testing.assert_array_equal(got, to_numpy(want))


def test_imagenet_without_cache_or_network_is_one_line(keras_cache, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelFileError, match="imagenet weights for mobilenet_v2") as info:
        create_model("mobilenet_v2", NUM_CLASSES, TEST_SHAPE, weights="imagenet")
    assert "\n" not in str(info.value)


@pytest.mark.jax_slow  # builds EfficientNetB0 twice: 80 s on JAX; the loading code is Keras', per file format
@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_weights_from_a_local_file(tmp_path, suffix):
    """EfficientNet hash-checks its download, so its pretrained path is
    exercised with weights=PATH: a backbone or whole-model file."""
    import keras

    base = _marked_base("EfficientNetB0")
    path = tmp_path / f"b0{suffix}"
    if suffix == ".keras":
        keras.Model(base.inputs, base.outputs).save(path)
    else:
        base.save_weights(path)
    model = create_model("efficientnet_b0", NUM_CLASSES, TEST_SHAPE, weights=str(path), seed=0)
    for got, want in zip(_backbone_weights(model), base.weights):
        np.testing.assert_array_equal(got, to_numpy(want))


def test_missing_weights_file_names_it(tmp_path):
    path = tmp_path / "nope.weights.h5"
    with pytest.raises(ModelFileError, match="nope.weights.h5"):
        create_model("mobilenet_v2", NUM_CLASSES, TEST_SHAPE, weights=str(path))


@pytest.mark.jax_slow  # builds EfficientNetB0: 37 s on JAX; the check before loading is backend-free
def test_wrong_shape_weights_file_names_it(tmp_path):
    path = tmp_path / "mobilenet.weights.h5"
    _marked_base("MobileNetV2").save_weights(path)
    with pytest.raises(ModelFileError, match="mobilenet.weights.h5") as info:
        create_model("efficientnet_b0", NUM_CLASSES, TEST_SHAPE, weights=str(path))
    assert "\n" not in str(info.value)


def test_preprocessing_matches_keras_preprocess_input():
    """Our declared Preprocessing reproduces keras.applications' preprocess_input."""
    from keras.applications import mobilenet_v2, resnet50

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")

    def ours(name):
        prep = get_spec(name).preprocessing
        x = pixels[..., ::-1] if prep.channel_order == "bgr" else pixels
        x = x * prep.scale + prep.offset
        if prep.mean is not None:
            x = (x - np.asarray(prep.mean)) / np.asarray(prep.std)
        return x

    keras_fmt = {"data_format": "channels_last"}
    np.testing.assert_allclose(ours("mobilenet_v2"),
                               mobilenet_v2.preprocess_input(pixels.copy(), **keras_fmt), atol=1e-5)
    np.testing.assert_allclose(ours("resnet50"),
                               resnet50.preprocess_input(pixels.copy(), **keras_fmt), atol=1e-4)
    # EfficientNet and MobileNetV3 rescale inside the model: raw 0..255 in.
    for name in ("efficientnet_b0", "mobilenet_v3_small"):
        assert get_spec(name).preprocessing.scale == 1.0
