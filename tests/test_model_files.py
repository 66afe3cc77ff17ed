"""Safe loading: the hostile files of Keras' CVEs are refused with one line
naming the problem, and nothing in them runs; trusted files load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from portaclass.errors import ModelFileError
from portaclass.model_files import check_keras_archive, check_weights_file, load_keras_file

from .helpers import run_cli


@pytest.fixture(scope="module")
def plain_model_file(tmp_path_factory):
    import keras

    inputs = keras.Input((4,), name="image")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(inputs))
    path = tmp_path_factory.mktemp("plain") / "plain.keras"
    model.save(path)
    return path


MARKER_VARIABLE = "PORTACLASS_TEST_MARKER"


@pytest.fixture(scope="module")
def lambda_model_file(tmp_path_factory):
    """A model whose Lambda layer writes the file named by $MARKER_VARIABLE
    each time it runs (no closure: Keras stores the function's bytecode)."""
    import os

    import keras

    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "lambda-ran"
    os.environ[MARKER_VARIABLE] = str(marker)
    touch = lambda x: (__import__("pathlib").Path(  # noqa: E731
        __import__("os").environ["PORTACLASS_TEST_MARKER"]).write_text("ran"), x)[1]
    inputs = keras.Input((4,), name="image")
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Lambda(touch, name="sneaky")(inputs))
    path = folder / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink()  # building the model ran it once
    yield path, marker
    os.environ.pop(MARKER_VARIABLE, None)


def _rewrite_config(source, target, edit) -> None:
    """Copy the .keras archive ``source`` to ``target`` with ``edit`` applied
    to its parsed config.json."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            new.writestr(item, data)


def test_a_lambda_layer_is_refused_naming_it_and_never_runs(lambda_model_file):
    path, marker = lambda_model_file
    with pytest.raises(ModelFileError, match=r"Lambda layer \('sneaky'\).*--unsafe") as raised:
        load_keras_file(path)
    assert "\n" not in str(raised.value)
    assert not marker.exists()


def test_unsafe_loads_a_trusted_lambda_model(lambda_model_file):
    path, marker = lambda_model_file
    model = load_keras_file(path, unsafe=True)
    assert model.predict(np.ones((1, 4), np.float32), verbose=0).shape == (1, 2)
    assert marker.exists()
    marker.unlink()


def test_a_config_naming_os_system_is_refused_and_nothing_runs(plain_model_file, tmp_path):
    marker = tmp_path / "pwned"

    def plant(config):  # the shape of CVE-2025-1550's payload: a function from another module
        dense = config["config"]["layers"][-1]["config"]
        dense["activation"] = {"module": "os", "class_name": "function", "registered_name": "system",
                               "config": f"touch {marker}"}

    hostile = tmp_path / "hostile.keras"
    _rewrite_config(plain_model_file, hostile, plant)
    with pytest.raises(ModelFileError, match=r"module 'os', outside Keras and portaclass: refused"):
        load_keras_file(hostile)
    assert not marker.exists()


def test_a_truncated_file_and_a_renamed_text_file_are_one_line_errors(plain_model_file, tmp_path):
    truncated = tmp_path / "truncated.keras"
    data = plain_model_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.keras"
    text.write_text("these are my notes, not a model\n")
    for path in (truncated, text):
        with pytest.raises(ModelFileError, match="not a .keras file: not a zip archive, or a truncated one"):
            load_keras_file(path)


def test_a_member_escaping_the_archive_is_refused_even_when_unsafe(plain_model_file, tmp_path):
    hostile = tmp_path / "slip.keras"
    with zipfile.ZipFile(plain_model_file) as old, zipfile.ZipFile(hostile, "w") as new:
        for item in old.infolist():
            new.writestr(item, old.read(item))
        new.writestr("../../outside.txt", "escaped")
    for unsafe in (False, True):
        with pytest.raises(ModelFileError, match=r"escapes the archive \('../../outside.txt'\)"):
            check_keras_archive(hostile, unsafe=unsafe)


def test_a_legacy_h5_model_needs_unsafe(tmp_path):
    legacy = tmp_path / "old.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelFileError, match="legacy HDF5 model file.*--unsafe"):
        load_keras_file(legacy)


def test_pickled_framework_checkpoints_are_not_weights(tmp_path):
    pickled = tmp_path / "resnet.pth"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelFileError, match="not pickled framework checkpoints"):
        check_weights_file(pickled)


@pytest.mark.one_backend
def test_predict_refuses_a_lambda_model_in_one_line_with_exit_2(lambda_model_file, tmp_path):
    from PIL import Image

    path, marker = lambda_model_file
    image = tmp_path / "cat.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(image)
    result = run_cli(["predict", str(path), str(image)])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Lambda layer ('sneaky')" in result.stderr
    assert not marker.exists()
