"""portaclass evaluate: per-class metrics on the run's held-out split, a bare
model file on a folder, calibration, TTA, files written, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import portaclass
from portaclass.errors import DataError, ModelFileError, RunError, UsageError
from portaclass.evaluate import expected_calibration_error, score
from portaclass.run import Run
from tests.helpers import invoke_cli


@pytest.fixture(scope="module")
def run_evaluation(trained_run):
    result, _ = trained_run
    return portaclass.evaluate(result.run_dir, tta=True)


def test_a_run_is_scored_on_its_held_out_split_as_training_scored_it(trained_run, run_evaluation):
    result, _ = trained_run
    run = Run.open(result.run_dir)
    evaluation = run_evaluation
    assert evaluation.count == len(run.split("test")) == result.metrics["images"]
    assert evaluation.accuracy == pytest.approx(result.metrics["accuracy"], abs=1e-6)
    matrix = np.array(evaluation.scores.confusion_matrix)
    assert matrix.shape == (4, 4) and matrix.sum() == evaluation.count
    assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluation.accuracy)
    assert [row["support"] for row in evaluation.scores.per_class] == matrix.sum(axis=1).tolist()
    assert evaluation.scores.top_k == 3 and evaluation.scores.top_k_accuracy >= evaluation.accuracy


def test_evaluation_json_and_confusion_matrix_png_are_written_into_the_run(trained_run, run_evaluation):
    run_dir = trained_run[0].run_dir
    written = json.loads((run_dir / "evaluation.json").read_text())
    assert written["scores"]["accuracy"] == run_evaluation.accuracy
    assert written["tta_scores"]["accuracy"] == run_evaluation.tta_scores.accuracy
    assert written["class_names"] == Run.open(run_dir).class_names
    assert {"macro", "weighted", "per_class", "expected_calibration_error", "log_loss"} <= set(written["scores"])
    assert len(written["top_losses"]) == min(16, run_evaluation.count)
    losses = [row["loss"] for row in written["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    with Image.open(run_dir / "confusion_matrix.png") as image:
        assert image.size[0] > 200 and image.size[1] > 200


def test_metrics_follow_their_definitions():
    truth = np.array([0, 0, 1, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2]])
    scores = score(truth, probabilities, ["a", "b", "c"], k=2)
    assert scores.accuracy == 0.5
    assert scores.top_k == 2 and scores.top_k_accuracy == 0.75  # the 2 of image 4 is ranked third
    assert scores.confusion_matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    per_class = {row["class"]: row for row in scores.per_class}
    assert per_class["a"]["precision"] == 0.5 and per_class["a"]["recall"] == 0.5
    assert per_class["c"]["f1"] == 0.0 and per_class["c"]["support"] == 1
    assert scores.macro["recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert scores.weighted["recall"] == pytest.approx(0.5)  # weighted recall is accuracy


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_scores_agree_with_scikit_learn(classes):
    from sklearn import metrics

    rng = np.random.default_rng(classes)
    truth = rng.integers(0, classes - 1, size=60)  # the last class has no images
    logits = rng.normal(size=(60, classes)) * 2
    logits[:, 0] -= 10  # class 0 is never predicted
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = list(range(classes))
    scores = score(truth, probabilities, [f"c{i}" for i in labels], k=2)
    predicted = probabilities.argmax(axis=1)
    p, r, f, n = metrics.precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    np.testing.assert_allclose([row["precision"] for row in scores.per_class], p)
    np.testing.assert_allclose([row["recall"] for row in scores.per_class], r)
    np.testing.assert_allclose([row["f1"] for row in scores.per_class], f)
    assert [row["support"] for row in scores.per_class] == n.tolist()
    for average in ("macro", "weighted"):
        expected = metrics.precision_recall_fscore_support(truth, predicted, labels=labels, average=average,
                                                           zero_division=0)[:3]
        got = getattr(scores, average)
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], expected)
    assert scores.log_loss == pytest.approx(metrics.log_loss(truth, np.clip(probabilities, 1e-7, 1), labels=labels))
    assert scores.confusion_matrix == metrics.confusion_matrix(truth, predicted, labels=labels).tolist()
    assert scores.accuracy == pytest.approx(metrics.accuracy_score(truth, predicted))
    if classes > 2:  # sklearn's top-k refuses two classes (the case the test below covers)
        assert scores.top_k_accuracy == pytest.approx(
            metrics.top_k_accuracy_score(truth, probabilities, k=2, labels=labels))


def test_two_classes_are_scored_with_top_1():
    # the ants/bees case: sklearn's top-k refuses a binary target with 2-column scores
    truth = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    scores = score(truth, probabilities, ["ants", "bees"], k=1)
    assert scores.accuracy == 0.5 and scores.top_k == 1 and scores.top_k_accuracy == 0.5
    assert scores.confusion_matrix == [[1, 1], [1, 1]]


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    confident_and_right = np.eye(3)[[0, 1, 2, 0]]
    assert expected_calibration_error(np.array([0, 1, 2, 0]), confident_and_right) == 0.0
    # all at 80% confidence, half right: |0.5 - 0.8|
    probabilities = np.array([[0.8, 0.2]] * 4)
    assert expected_calibration_error(np.array([0, 0, 1, 1]), probabilities) == pytest.approx(0.3)


def test_tta_is_reported_beside_the_plain_figure(run_evaluation):
    tta = run_evaluation.tta_scores
    assert tta is not None and 0.0 <= tta.accuracy <= 1.0
    assert np.array(tta.confusion_matrix).sum() == run_evaluation.count


def test_a_bare_model_file_is_scored_on_a_folder_with_classes_matched_by_name(trained_run, tmp_path):
    result, root = trained_run
    model_file = tmp_path / "shipped.keras"
    shutil.copy(result.run_dir / "model.keras", model_file)  # no run folder around it
    folder = tmp_path / "new"
    for name in ("triangle", "circle"):  # fewer classes, in another order than the model's
        shutil.copytree(root / name, folder / name)
    (folder / "circle" / "broken.png").write_bytes(b"not a png")
    evaluation = portaclass.evaluate(model_file, data=folder)
    assert evaluation.count == 32
    assert [name for name, _ in evaluation.skipped] == ["circle/broken.png"]
    matrix = np.array(evaluation.scores.confusion_matrix)
    classes = evaluation.class_names
    assert classes == ["circle", "square", "star", "triangle"]
    assert matrix[classes.index("circle")].sum() == 16 and matrix[classes.index("square")].sum() == 0
    assert (tmp_path / "shipped.keras.evaluation" / "evaluation.json").is_file()


def test_a_folder_with_a_class_the_model_lacks_is_refused_naming_it(trained_run, tmp_path):
    result, root = trained_run
    shutil.copytree(root / "star", tmp_path / "data" / "hexagon")
    with pytest.raises(portaclass.DataError, match="hexagon"):
        portaclass.evaluate(result.run_dir, data=tmp_path / "data", write=False)


def test_bad_sources_and_data_are_one_line_errors(trained_run, tmp_path):
    result, _ = trained_run
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        portaclass.evaluate(tmp_path / "plain")
    (tmp_path / "model.keras").write_text("not a zip")
    with pytest.raises(ModelFileError, match="model.keras"):
        portaclass.evaluate(tmp_path / "model.keras", data=tmp_path)
    with pytest.raises(UsageError, match="`data`"):
        shutil.copy(result.run_dir / "model.keras", tmp_path / "alone.keras")
        portaclass.evaluate(tmp_path / "alone.keras")
    with pytest.raises(UsageError, match="`data`"):
        portaclass.evaluate(result.run_dir, data="holdout")
    moved = shutil.copytree(result.run_dir, tmp_path / "moved")
    (moved / "splits" / "root.txt").write_text(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'}: the data folder .* is gone.*--data"):
        portaclass.evaluate(moved)


def test_cli_prints_the_per_class_table_or_json_only(trained_run, tmp_path):
    run_dir = trained_run[0].run_dir
    table = invoke_cli(["evaluate", str(run_dir), "--out", str(tmp_path / "a")])
    assert table.exit_code == 0, table.output
    assert "precision" in table.stdout and "triangle" in table.stdout and "accuracy" in table.stdout
    as_json = invoke_cli(["evaluate", str(run_dir), "--json", "--out", str(tmp_path / "b")])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["count"] == json.loads(
        (tmp_path / "a" / "evaluation.json").read_text())["count"]


def test_cli_misuse_is_one_line_with_exit_code_2(tmp_path):
    result = invoke_cli(["evaluate", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "not a run folder" in result.stderr
    result = invoke_cli(["evaluate", str(tmp_path), "--device", "gpu:7"])
    assert result.exit_code == 2 and "gpu" in result.stderr
