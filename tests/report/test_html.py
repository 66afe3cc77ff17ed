"""report.html: written by train, rebuilt by `portaclass report`,
self-contained, and rendered by a real browser without errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from portaclass.errors import RunError
from portaclass.report.html import write_report
from tests.helpers import invoke_cli

# The page is the same HTML on every backend; what differs per backend (the
# model's scores, Grad-CAM) is tested per backend in test_evaluate.py and test_gradcam.py.
pytestmark = pytest.mark.one_backend

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# Chromium as the machine's probe starts it: no sandbox (root), and no
# background connections, which a closed network refuses many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(trained_run):
    return trained_run[0].run_dir / "report.html"


def test_train_writes_the_report_and_records_its_cost(trained_run, report):
    assert report.is_file()
    assert trained_run[0].metrics["report_seconds"] >= 0
    page = report.read_text()
    for section in ("Training curves", "Held-out evaluation", "Top losses", "Augmentation",
                    "Skipped files", "Configuration", "Environment"):
        assert section in page
    for name in ("circle", "square", "star", "triangle"):
        assert f"<td>{name}</td>" in page  # the per-class table


def test_the_page_is_self_contained(report):
    page = report.read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    kinds = {s.split(";base64,")[0] for s in sources}
    assert sources and all(";base64," in s for s in sources)
    assert kinds == {"data:image/svg+xml", "data:image/jpeg"}  # figures, grids of photos
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_report_command_rebuilds_it_and_names_a_non_run(trained_run, tmp_path):
    out = tmp_path / "again.html"
    result = invoke_cli(["report", str(trained_run[0].run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "Held-out evaluation" in out.read_text()
    bad = invoke_cli(["report", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run folder" in bad.stderr


def test_a_run_folder_moved_away_from_its_data_still_reports(trained_run, tmp_path):
    """The data folder is gone: evaluation and preview can't be redone, the
    curves and config still show, and the page says what is missing."""
    moved = tmp_path / "run"
    shutil.copytree(trained_run[0].run_dir, moved)
    (moved / "evaluation.json").unlink(missing_ok=True)
    (moved / "splits" / "root.txt").write_text(str(tmp_path / "nowhere"))
    with pytest.raises(RunError):
        write_report(tmp_path / "missing")
    path = write_report(moved)
    page = path.read_text()
    assert "Training curves" in page and "Configuration" in page
    assert "Held-out evaluation left out" in page and "nowhere" in page
    assert "Augmentation preview left out" in page and "nowhere" in page


def test_the_preview_draws_from_the_runs_own_train_split(trained_run, tmp_path, monkeypatch):
    """The run held out a quarter twice (not the 0.2/0.1 defaults): the
    preview shows its training images, in splits/train.csv's order."""
    from portaclass.data.run_files import read_split_list
    from tests.helpers import preview_spy

    copy = tmp_path / "run"
    shutil.copytree(trained_run[0].run_dir, copy)
    previewed = preview_spy(monkeypatch)
    write_report(copy)
    train = previewed[0].train
    assert train.relpaths() == [path for path, _ in read_split_list(copy, "train")]
    assert previewed[0].class_names == ["circle", "square", "star", "triangle"]


def test_the_report_renders_in_chromium_with_every_image_loaded(report, backend_name):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium: `make test` installs Debian's package (apt-get install chromium); "
                    "it could not here")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            title = page.title()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report-{backend_name}.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert title.startswith("portaclass report")
    assert len(images) >= 4  # curves, confusion matrix, top losses, augmentation
    assert all(complete and width > 0 for _, complete, width in images), images


def _two_class_options(tmp_path, name):
    from portaclass.data import write_shapes
    from portaclass.train.options import TrainOptions

    root = tmp_path / "two"
    if not root.exists():
        write_shapes(root, n_per_class=12, image_size=16, seed=1)
        for extra in ("star", "triangle"):
            shutil.rmtree(root / extra)
    return TrainOptions(data=str(root), model="simple_cnn", image_size=16, epochs=1, batch_size=8,
                        val_split=0.25, test_split=0.25, out=str(tmp_path / name), quiet=True)


def test_a_two_class_run_reports_and_a_failing_report_is_never_silent(tmp_path, monkeypatch, capsys):
    """Two classes (ants and bees) once broke the held-out scores; and under
    --quiet a report that fails still says so, on stderr."""
    from portaclass.report import html
    from portaclass.train.runner import run_training

    result = run_training(_two_class_options(tmp_path, "ok"), log=lambda _line: None)
    page = (result.run_dir / "report.html").read_text()
    assert "Held-out evaluation" in page and "<td>circle</td>" in page and "<td>square</td>" in page

    def broken(*_args, **_kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(html, "write_report", broken)
    capsys.readouterr()
    result = run_training(_two_class_options(tmp_path, "broken"), log=lambda _line: None)
    assert result.metrics["accuracy"] is not None and not (result.run_dir / "report.html").exists()
    assert f"warning: report.html could not be written (no fonts); try: portaclass report {result.run_dir}" \
        in capsys.readouterr().err


def test_the_report_scores_the_last_validation_pass_not_a_second_one(tmp_path, monkeypatch, backend_name):
    """With validation as the held-out split, the report reuses the model's
    outputs of the last validation pass (torch): no second pass over the
    images, and the same evaluation a fresh pass gives."""
    if backend_name != "torch":
        pytest.skip("TensorFlow and JAX validate in compiled functions: their report makes its own pass")
    import numpy as np

    from portaclass import evaluate as evaluate_module
    from portaclass.report import html
    from portaclass.train.runner import run_training

    options = _two_class_options(tmp_path, "reuse")
    options.test_split, options.epochs = 0.0, 2
    passes, reused = [], []
    monkeypatch.setattr(html, "evaluate", lambda *a, **k: passes.append(1) or evaluate_module.evaluate(*a, **k))
    monkeypatch.setattr(html, "evaluation_of_outputs",
                        lambda *a, **k: reused.append(evaluate_module.evaluation_of_outputs(*a, **k)) or reused[-1])
    result = run_training(options, log=lambda _line: None)
    assert (result.run_dir / "report.html").is_file()
    assert passes == [] and len(reused) == 1
    fresh = evaluate_module.evaluate(result.run_dir, write=False)
    ours = reused[0]
    assert ours.split == fresh.split == "val" and ours.count == fresh.count
    assert ours.scores.confusion_matrix == fresh.scores.confusion_matrix
    assert ours.accuracy == fresh.accuracy == pytest.approx(result.metrics["accuracy"])
    np.testing.assert_allclose(ours.scores.log_loss, fresh.scores.log_loss, rtol=1e-4)
    by_name = {row["name"]: row["loss"] for row in fresh.top_losses}
    for row in ours.top_losses:
        assert row["loss"] == pytest.approx(by_name[row["name"]], rel=1e-4, abs=1e-6)


def test_a_report_on_a_builtin_run_rebuilds_the_dataset_once(tmp_path, monkeypatch):
    """Held-out images, a fresh evaluation and the preview all need the
    built-in's splits: one rebuild serves them (each took 1.55 s for shapes
    at 64 px), and none is kept once the page is written."""
    import portaclass.run as run_module
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import run_training

    result = run_training(TrainOptions(data="shapes", model="simple_cnn", image_size=16, epochs=1, batch_size=32,
                                       out=str(tmp_path / "run"), quiet=True, report=False), log=lambda _line: None)
    real, rebuilt = run_module.load_dataset, []
    monkeypatch.setattr(run_module, "load_dataset", lambda *args, **kwargs: rebuilt.append(kwargs) or real(
        *args, **kwargs))
    page = write_report(result.run_dir).read_text()
    assert "Held-out evaluation" in page and "left out" not in page
    assert len(rebuilt) == 1
    assert run_module._shared_rebuilds is None
