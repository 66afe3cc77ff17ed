"""The export matrix on the backend under test: a model trained on it goes to
ONNX, SavedModel and torch (in a subprocess of another backend where this one
cannot write the format), and each file is checked here again, in its own
runtime, independently of export's own verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from portaclass.data.normalize import normalize
from portaclass.errors import UsageError
from portaclass.export import ExportCheckError, export_model, load_exported, verify_export
from portaclass.export import runtimes as runtimes_module
from portaclass.export.formats import FORMATS, has_modules
from portaclass.export.verify import verification_images
from portaclass.inference import open_classifier
from portaclass.layout import model_input_shape
from portaclass.run import Run


def _channels_first() -> bool:
    import keras

    return keras.config.image_data_format() == "channels_first"


def _needs_runtime(name: str):
    if not has_modules(FORMATS[name].runtime):
        pytest.skip(f"{name}'s runtime is not installed (pip install 'portaclass[{FORMATS[name].extra}]')")


@pytest.fixture(scope="module")
def run_dir(trained_run):
    return Path(trained_run[0].run_dir)


@pytest.fixture(scope="module")
def keras_reference(run_dir):
    """Images (uint8, 5: not a power of two) and the Keras model's probabilities."""
    classifier = open_classifier(run_dir)
    pixels = verification_images(classifier.input_shape, count=5, seed=7)
    return classifier, pixels, classifier.probabilities(pixels)


def _independent_run(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    """The file loaded the way a deployment loads it, not through portaclass."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return loaded.serve(tf.constant(x)).numpy()
    if fmt == "torch":
        import torch

        return torch.export.load(str(path)).module()(torch.from_numpy(x)).detach().numpy()
    if fmt == "openvino":
        import openvino

        # float32 asked for: on a CPU with bf16 instructions OpenVINO's default is bfloat16
        compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return compiled(x)[compiled.outputs[0]]
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    raise AssertionError(fmt)


def _check_file(result, fmt, keras_reference, *, includes_preprocessing, run_dir):
    classifier, pixels, expected = keras_reference
    assert result.verification.passed and result.path.exists()
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["class_names"] == Run.open(run_dir).class_names
    assert sidecar["includes_preprocessing"] is includes_preprocessing
    assert sidecar["input"]["shape"] == [None, *classifier.input_shape]
    x = pixels.astype(np.float32) if includes_preprocessing else normalize(pixels, classifier.preprocessing)
    for batch in (x, x[:1]):  # the batch dimension stays dynamic
        got = _independent_run(result.path, fmt, np.ascontiguousarray(batch, np.float32))
        np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-4, rtol=0)


def test_a_trained_model_exports_to_onnx_and_matches_in_onnxruntime(run_dir, keras_reference, tmp_path):
    _needs_runtime("onnx")
    result = export_model(run_dir, "onnx", tmp_path / "model.onnx")
    assert "head_dropout (Dropout)" in result.stripped
    _check_file(result, "onnx", keras_reference, includes_preprocessing=False, run_dir=run_dir)


@pytest.mark.parametrize("fmt", ["savedmodel", "torch"])
def test_savedmodel_and_torch_from_this_backend_with_preprocessing_inside(
        fmt, run_dir, keras_reference, tmp_path, backend_name):
    _needs_runtime(fmt)
    suffix = FORMATS[fmt].suffix or "_savedmodel"
    result = export_model(run_dir, fmt, tmp_path / f"model{suffix}", include_preprocessing=True)
    writers = FORMATS[fmt].writers
    assert result.written_by in writers
    if backend_name in writers:  # never a subprocess when this backend can write it
        assert result.written_by == backend_name
    _check_file(result, fmt, keras_reference, includes_preprocessing=True, run_dir=run_dir)


def test_augmentation_layers_of_a_model_made_elsewhere_are_stripped(tmp_path):
    """ONNX export fails on RandomFlip in Keras 3.15 on TensorFlow and torch:
    export removes it (and says so), and the file computes the same."""
    _needs_runtime("onnx")
    import keras

    inputs = keras.Input(model_input_shape((12, 12, 3)))
    x = keras.layers.RandomFlip("horizontal", name="flip")(inputs)
    x = keras.layers.RandomRotation(0.1, name="rotate")(x)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(keras.layers.Dropout(0.5)(x))
    path = tmp_path / "elsewhere.keras"
    keras.Model(inputs, outputs).save(path)
    result = export_model(path, "onnx", tmp_path / "elsewhere.onnx")
    assert {"flip (RandomFlip)", "rotate (RandomRotation)"} <= set(result.stripped)
    assert result.verification.passed


@pytest.mark.one_backend
@pytest.mark.parametrize("fmt", ["openvino", "litert"])
def test_openvino_and_litert_files_match_in_their_runtimes(fmt, run_dir, keras_reference, tmp_path):
    _needs_runtime(fmt)
    if fmt == "litert" and _channels_first():
        # only TensorFlow writes LiteRT here, and it runs no NCHW convolution on a CPU
        with pytest.raises(UsageError, match="built channels_first .* the only writer of litert"):
            export_model(run_dir, fmt, tmp_path / "model.tflite")
        return
    result = export_model(run_dir, fmt, tmp_path / f"model{FORMATS[fmt].suffix}")
    _check_file(result, fmt, keras_reference, includes_preprocessing=False, run_dir=run_dir)
    if fmt == "openvino":
        assert (tmp_path / "model.bin").is_file()


@pytest.mark.one_backend
def test_a_file_that_disagrees_fails_and_leaves_nothing_behind(run_dir, tmp_path, monkeypatch):
    _needs_runtime("onnx")

    def off_by_a_little(path):
        session = runtimes_module._onnx(path)
        return lambda x: session(x) + 1e-3

    monkeypatch.setitem(runtimes_module._OPENERS, "onnx", off_by_a_little)
    with pytest.raises(ExportCheckError, match="disagrees with the Keras model") as raised:
        export_model(run_dir, "onnx", tmp_path / "model.onnx")
    assert raised.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []  # no file, no sidecar, no staging folder


@pytest.mark.one_backend
def test_predict_and_verify_only_take_the_exported_file(run_dir, keras_reference, tmp_path, trained_run):
    _needs_runtime("onnx")
    import portaclass

    exported = export_model(run_dir, "onnx", tmp_path / "model.onnx").path
    images = sorted(Path(trained_run[1]).rglob("*.png"))[:6]
    from_run = portaclass.predict(run_dir, images, top_k=1)
    from_onnx = portaclass.predict(exported, images, top_k=1)
    assert [p.classes for p in from_onnx] == [p.classes for p in from_run]
    np.testing.assert_allclose([p.probabilities for p in from_onnx], [p.probabilities for p in from_run],
                               atol=1e-4)
    model = load_exported(exported)
    _, pixels, expected = keras_reference
    np.testing.assert_allclose(model.predict(pixels), expected, atol=1e-4)
    assert verify_export(exported, run_dir).passed
    from ..helpers import invoke_cli

    checked = invoke_cli(["export", "--verify-only", str(exported), "--reference", str(run_dir)])
    assert checked.exit_code == 0 and "top-1 agreement 100%" in checked.stdout, checked.output


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


@pytest.mark.one_backend
def test_a_pt2_file_whose_weights_are_a_hostile_pickle_is_refused_and_nothing_runs(run_dir, tmp_path):
    """torch.export.load unpickles weights marked ``use_pickle`` with
    weights_only=False; portaclass reads them as tensors only."""
    _needs_runtime("torch")
    import pickle
    import zipfile

    from portaclass.errors import ModelFileError

    exported = export_model(run_dir, "torch", tmp_path / "model.pt2").path
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt2"
    with zipfile.ZipFile(exported) as old, zipfile.ZipFile(hostile, "w") as new:
        config_name = next(n for n in old.namelist() if n.endswith("weights/model_weights_config.json"))
        config = json.loads(old.read(config_name))
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True  # the first weight now reads as a pickle...
        weight_name = config_name.replace("model_weights_config.json", first["path_name"])
        for item in old.infolist():
            data = old.read(item)
            if item.filename == config_name:
                data = json.dumps(config).encode()
            elif item.filename == weight_name:  # ...which runs a shell command
                data = pickle.dumps(_RunsShell(f"touch {marker}"))
            new.writestr(item, data)
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        runtimes_module.open_runtime(hostile, FORMATS["torch"])
    assert not marker.exists()
