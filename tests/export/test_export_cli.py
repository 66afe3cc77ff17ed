"""`portaclass export`'s bad input: one line naming the problem, exit 2,
nothing written."""

from __future__ import annotations

import pytest

from ..helpers import invoke_cli

pytestmark = pytest.mark.one_backend


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def _fails_with(args, message):
    result = invoke_cli(["export", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_format_names_the_known_ones(model_file):
    _fails_with([str(model_file), "--format", "tensorrt"],
                "'tensorrt' is not an export format; choose one of keras, onnx, savedmodel, torch")


def test_an_out_folder_that_does_not_exist_is_named(model_file, tmp_path):
    _fails_with([str(model_file), "--out", str(tmp_path / "missing" / "m.onnx")],
                f"folder {tmp_path / 'missing'} does not exist")


def test_a_run_without_model_keras_is_still_training(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    _fails_with([str(run)], "has no model.keras yet: the run is still training")


def test_opset_applies_to_onnx_only_and_an_existing_out_is_kept(model_file, tmp_path):
    _fails_with([str(model_file), "--format", "torch", "--opset", "17"], "--opset applies to --format onnx only")
    existing = tmp_path / "m.onnx"
    existing.write_text("mine")
    _fails_with([str(model_file), "--out", str(existing)], "exists; pass --overwrite to replace it")
    assert existing.read_text() == "mine"


def test_verify_only_needs_a_reference(tmp_path):
    _fails_with(["--verify-only", str(tmp_path / "m.onnx")], "--verify-only needs --reference")


def test_a_format_whose_extra_is_missing_names_the_extra(model_file, tmp_path, monkeypatch):
    from portaclass.export import formats

    installed = formats.has_modules
    monkeypatch.setattr(formats, "has_modules",
                        lambda modules: "openvino" not in modules and installed(modules))
    _fails_with([str(model_file), "--format", "openvino", "--out", str(tmp_path / "m.xml")],
                "pip install 'portaclass[openvino]'")
    assert list(tmp_path.iterdir()) == []
