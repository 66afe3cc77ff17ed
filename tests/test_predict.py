"""portaclass predict: files, folders, PIL images and arrays; per-file error
rows; formats; the model's own preprocessing; CPU prediction of any model."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import portaclass
from portaclass import backend
from portaclass.data.inputs import tta_views
from portaclass.inference import open_classifier
from portaclass.predict import format_predictions
from tests.helpers import invoke_cli


@pytest.fixture(scope="module")
def images(trained_run, tmp_path_factory):
    """Two test images of the run copied into nested folders, plus a broken one."""
    result, root = trained_run
    folder = tmp_path_factory.mktemp("to_predict")
    shutil.copy(root / "circle" / "circle_0000.png", folder / "a.png")
    (folder / "deeper" / "down").mkdir(parents=True)
    shutil.copy(root / "star" / "star_0001.png", folder / "deeper" / "down" / "b.png")
    (folder / "deeper" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def test_predictions_match_the_model_on_the_training_pipelines_inputs(trained_run):
    """predict reads a file as training did: same probabilities as the run's
    own pipeline batch through plain Keras."""
    import keras

    from portaclass import layout
    from portaclass.data import make_pipeline
    from portaclass.run import Run

    run = Run.open(trained_run[0].run_dir)
    split = run.split("test")
    x, _ = make_pipeline(split, len(split), preprocessing=run.preprocessing, image_size=(16, 16),
                         shuffle=False, channels_first=layout.data_format() == layout.CHANNELS_FIRST)[0]
    expected = backend.to_numpy(keras.saving.load_model(run.model_path).predict(x, verbose=0))
    predictions = portaclass.predict(run.path, split.paths, top_k=4)
    for row, prediction in zip(expected, predictions):
        assert prediction.label == run.class_names[int(row.argmax())]
        ordered = dict(zip(prediction.classes, prediction.probabilities))
        got = np.array([ordered[name] for name in run.class_names])
        np.testing.assert_allclose(got, row, atol=1e-5)


def test_a_folder_is_walked_recursively_and_a_broken_file_is_an_error_row(trained_run, images):
    predictions = portaclass.predict(trained_run[0].run_dir, [images], top_k=2)
    names = [p.name.replace(str(images) + "/", "") for p in predictions]
    assert names == ["a.png", "deeper/broken.jpg", "deeper/down/b.png"]
    broken = predictions[1]
    assert broken.error and broken.classes == [] and broken.label is None
    for p in (predictions[0], predictions[2]):
        assert p.error is None and len(p.classes) == 2
        assert all(isinstance(v, float) for v in p.probabilities)
        assert p.probabilities[0] >= p.probabilities[1]


def test_pil_images_and_arrays_of_any_size_and_channels_are_converted(trained_run):
    rng = np.random.default_rng(0)
    inputs = [
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), np.uint8)),
        rng.integers(0, 255, (50, 20), np.uint8),             # greyscale
        rng.integers(0, 255, (16, 16, 4), np.uint8),          # RGBA
        rng.random((16, 16, 3)).astype(np.float32),           # floats in [0, 1]
        rng.integers(0, 255, (16, 16, 7), np.uint8),          # not an image
    ]
    predictions = portaclass.predict(trained_run[0].run_dir, inputs, top_k=1)
    assert [p.error is None for p in predictions] == [True, True, True, True, False]
    assert "(16, 16, 7)" in predictions[-1].error
    batch = portaclass.predict(trained_run[0].run_dir, rng.integers(0, 255, (3, 16, 16, 3), np.uint8))
    assert len(batch) == 3


def test_tta_averages_the_views_the_light_preset_trains_on(trained_run):
    classifier = open_classifier(trained_run[0].run_dir)
    image = np.random.default_rng(1).integers(0, 255, (16, 16, 3), np.uint8)
    views = tta_views(image, (16, 16))
    assert views.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(views[0], image)
    np.testing.assert_array_equal(views[3], image[:, ::-1])
    assert not np.array_equal(views[1], views[2])  # two different shifts
    expected = classifier.probabilities(views).mean(axis=0)
    np.testing.assert_allclose(classifier.probabilities(image[None], tta=True)[0], expected, atol=1e-6)


def test_a_model_made_on_one_device_predicts_on_the_cpu(trained_run):
    """The Python API takes an in-memory model and device="cpu": what a
    notebook that trained on a GPU does (cpu_copy on TensorFlow)."""
    import keras

    model = keras.saving.load_model(trained_run[0].run_dir / "model.keras")
    x = np.random.default_rng(2).integers(0, 255, (2, 16, 16, 3), np.uint8)
    on_cpu = portaclass.predict(model, x, device="cpu", top_k=4)
    assert [len(p.classes) for p in on_cpu] == [4, 4]
    assert on_cpu[0].classes[0].startswith("class_")  # an in-memory model has no class names
    from portaclass import layout

    expected = backend.to_numpy(model.predict(layout.to_model_layout(x.astype("float32") / 255), verbose=0))
    for row, prediction in zip(expected, on_cpu):
        got = dict(zip(prediction.classes, prediction.probabilities))
        np.testing.assert_allclose([got[f"class_{i}"] for i in range(4)], row, atol=1e-5)


def test_json_and_csv_hold_plain_values_and_the_error_column(trained_run, images):
    predictions = portaclass.predict(trained_run[0].run_dir, [images], top_k=2)
    rows = json.loads(format_predictions(predictions, "json"))
    assert rows[1]["error"] and rows[0]["classes"] and rows[0]["error"] is None
    table = list(csv.DictReader(io.StringIO(format_predictions(predictions, "csv"))))
    assert list(table[0]) == ["name", "class_1", "probability_1", "class_2", "probability_2", "error"]
    assert table[1]["error"] and table[1]["class_1"] == ""
    assert float(table[0]["probability_1"]) == pytest.approx(predictions[0].probability, abs=1e-6)


def test_cli_prints_rows_and_exits_1_after_a_bad_file(trained_run, images):
    result = invoke_cli(["predict", str(trained_run[0].run_dir), str(images), "--format", "csv"])
    assert result.exit_code == 1
    assert len(result.stdout.strip().splitlines()) == 4  # header + 3 images
    assert "1 of 3 images could not be read" in result.stderr
    table = invoke_cli(["predict", str(trained_run[0].run_dir), str(images / "a.png")], COLUMNS="400")
    assert table.exit_code == 0 and "a.png" in table.stdout and "%" in table.stdout


def test_cli_misuse_is_one_line_with_exit_code_2(trained_run, images, tmp_path):
    run_dir, image = str(trained_run[0].run_dir), str(images / "a.png")
    for args, named in ((["predict", run_dir, str(tmp_path / "missing.png")], "missing.png"),
                        (["predict", run_dir, str(tmp_path)], "no image files"),
                        (["predict", run_dir, image, "--format", "xml"], "--format"),
                        (["predict", run_dir, image, "--top-k", "0"], "--top-k"),
                        (["predict", str(tmp_path), image], "not a run folder"),
                        (["predict", run_dir, image, "--device", "gpu"], "gpu")):
        result = invoke_cli(args)
        assert result.exit_code == 2, (args, result.output)
        assert named in result.stderr and result.stderr.strip().count("\n") == 0


@pytest.mark.gpu
def test_a_model_trained_on_the_gpu_predicts_through_portaclass_on_the_cpu(trained_run):
    """The seed's trap: a model fitted on a GPU (XLA on TensorFlow pins its
    variables there) asked to predict on the CPU, in memory and from its file."""
    import keras

    x = np.random.default_rng(3).integers(0, 255, (8, 16, 16, 3), np.uint8)
    with backend.on_device("gpu"):
        model = keras.saving.load_model(trained_run[0].run_dir / "model.keras")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x.astype("float32") / 255, np.arange(8) % 4, epochs=1, verbose=0)
        on_gpu = portaclass.predict(model, x, device="gpu", top_k=4)
    on_cpu = portaclass.predict(model, x, device="cpu", top_k=4)
    for a, b in zip(on_gpu, on_cpu):
        assert a.classes[0] == b.classes[0]
        assert a.probabilities[0] == pytest.approx(b.probabilities[0], abs=1e-3)
    from_file = portaclass.predict(trained_run[0].run_dir, x, device="cpu")
    assert len(from_file) == 8 and all(p.error is None for p in from_file)
