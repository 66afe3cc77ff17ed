"""``report.html``: one self-contained page per run.

Written at the end of ``train`` and rebuilt by ``portaclass report RUN``:
training curves (both fine-tuning phases marked), the confusion matrix and
per-class table of the held-out split, the images with the highest loss
(fastai's ``plot_top_losses``) and Grad-CAM overlays of some of them, an
augmentation preview, the skipped files, the config and the environment.
Every image is inlined as a data URI (figures as SVG, ``report/svg.py``;
grids of photos as JPEG, a fifth of a PNG's bytes) and the page has no script and
no external resource, so it opens anywhere, offline, and can be mailed.
The page comes from a Jinja2 template (``templates/report.html.j2``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from portaclass import __version__
from portaclass.data.decode import DecodeError, as_array, load_image
from portaclass.errors import PortaclassError
from portaclass.evaluate import EVALUATION, Evaluation, evaluate, evaluation_of_outputs, item_names
from portaclass.inference import Classifier, open_classifier
from portaclass.report import grid, svg
from portaclass.run import SKIPPED, Run, sharing_rebuilt_datasets

REPORT = "report.html"
TOP_LOSS_IMAGES = 12
GRADCAM_IMAGES = 4
PREVIEW_IMAGES = 8


def _svg(text: str) -> str:
    """An SVG document (the figures) as a data URI."""
    return "data:image/svg+xml;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def _jpeg(draw) -> str:
    """``draw(file)`` writes a JPEG (the grids of photos); returns it as a data URI."""
    return _data_uri(draw, "image/jpeg")


def _data_uri(draw, mime: str) -> str:
    buffer = io.BytesIO()
    draw(buffer)
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_report(run_dir, *, classifier: Classifier | None = None, out=None,
                 held_out_outputs=None) -> Path:
    """Build ``report.html`` for the run in ``run_dir`` (or at ``out``).

    Args:
        run_dir: a run folder (finished, or with a checkpoint).
        classifier: the trained model in memory (the end of ``train``);
            default: the run's model file.
        out: where to write the page (default ``RUN/report.html``).
        held_out_outputs: the classifier's outputs over the held-out split,
            in its order, when training just computed them (the last
            validation pass); default: a pass over the split.
    Returns:
        The path written.
    """
    with sharing_rebuilt_datasets():
        return _write_report(run_dir, classifier, out, held_out_outputs)


def _write_report(run_dir, classifier: Classifier | None, out, held_out_outputs) -> Path:
    run = Run.open(run_dir)
    history = run.history()
    sections: dict = {"notes": []}
    sections["curves"] = _svg(svg.training_curves(history)) if history else None
    evaluation = None
    if run.held_out is not None:
        try:
            classifier = classifier or open_classifier(run.path)
            evaluation = _held_out_evaluation(run, classifier, held_out_outputs)
        except PortaclassError as error:  # the data moved, the model is missing...
            sections["notes"].append(f"Held-out evaluation left out: {error}")
    else:
        sections["notes"].append("The run held no split out (val_split=0 and test_split=0): "
                                 "there is nothing to evaluate on.")
    if evaluation is not None:
        sections["confusion"] = _svg(svg.confusion_matrix(
            np.asarray(evaluation.scores.confusion_matrix), evaluation.class_names))
        items = _held_out_items(run)  # read the split once for both sections
        images = _top_loss_images(run, evaluation, items)
        if images:
            sections["top_losses"] = _jpeg(lambda f: grid.image_grid(
                [image for image, _ in images], [text for _, text in images], f,
                title="highest loss first: true / predicted (probability)", image_format="JPEG"))
        sections["gradcam"] = _gradcam(classifier, items, evaluation, sections["notes"])
    sections["preview"] = _preview(run, sections["notes"])
    page = _template().render(
        run=run, config=run.config, history=history, evaluation=evaluation,
        metrics=_metrics(run), skipped=_skipped(run),
        config_json=json.dumps(run.config, indent=2, sort_keys=True, default=str),
        env_json=json.dumps(_env(run), indent=2, sort_keys=True, default=str),
        created=time.strftime("%Y-%m-%d %H:%M"), version=__version__, **sections)
    path = Path(out) if out else run.path / REPORT
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _held_out_evaluation(run: Run, classifier: Classifier, outputs=None) -> Evaluation:
    """evaluation.json when ``portaclass evaluate`` wrote it for this
    split, else the evaluation of ``outputs``, else a fresh evaluation (not
    written: the report holds it)."""
    saved = run.path / EVALUATION
    if saved.is_file():
        data = json.loads(saved.read_text())
        if data.get("split") == run.held_out and data.get("model") == classifier.source:
            return _evaluation_from_dict(data)
    if outputs is not None:
        return evaluation_of_outputs(classifier, outputs)
    return evaluate(classifier, write=False)


def _evaluation_from_dict(data: dict) -> Evaluation:
    from portaclass.evaluate import Scores

    values = dict(data)
    values["scores"] = Scores(**data["scores"])
    values["tta_scores"] = Scores(**data["tta_scores"]) if data.get("tta_scores") else None
    values["skipped"] = [tuple(item) for item in data.get("skipped", [])]
    return Evaluation(**{k: v for k, v in values.items() if k in Evaluation.__dataclass_fields__})


def _held_out_items(run: Run) -> dict:
    """name (as evaluate reports it) -> path or array, for the held-out split."""
    split = run.split()
    return dict(zip(item_names(split), split.paths if split.is_files else split.images))


def _top_loss_images(run: Run, evaluation: Evaluation, items: dict) -> list[tuple[np.ndarray, str]]:
    height, width, channels = run.input_shape
    shown = []
    for row in evaluation.top_losses[:TOP_LOSS_IMAGES]:
        item = items.get(row["name"])
        if item is None:
            continue
        try:
            image = as_array(load_image(item, (height * 2, width * 2), channels)) \
                if isinstance(item, Path) else item
        except DecodeError:
            continue
        name = row["name"] if len(row["name"]) <= 28 else "…" + row["name"][-27:]
        shown.append((image, f"{name}\n{row['true']} / {row['predicted']} "
                             f"({row['probability_predicted']:.0%})"))
    return shown


def _gradcam(classifier: Classifier, items: dict, evaluation: Evaluation, notes: list) -> str | None:
    """Grad-CAM overlays of the first top-loss images, for the predicted class."""
    try:
        from portaclass.report import gradcam
    except ImportError:  # the explain module is not part of this build
        return None
    chosen = [items[row["name"]] for row in evaluation.top_losses[:GRADCAM_IMAGES] if row["name"] in items]
    if not chosen:
        return None
    try:
        return _jpeg(lambda f: gradcam.overlay_grid(classifier, chosen, f, image_format="JPEG"))
    except PortaclassError as error:  # a model without a spatial feature map (ViT)
        notes.append(f"Grad-CAM: {error}")
        return None
    except Exception as error:  # a model Grad-CAM can't take apart costs its section, not the page
        notes.append(f"Grad-CAM left out: {type(error).__name__}: {str(error)[:200]}")
        return None


def _preview(run: Run, notes: list) -> str | None:
    """The first images of training epoch 1 as the run's augmentation drew
    them: its own train split (splits/train.csv), in the run's order."""
    from portaclass.data.dataset import Dataset
    from portaclass.report.preview import write_preview

    options = run.options
    if not options.get("data"):
        return None
    height, width, channels = run.input_shape
    try:
        train = run.split("train")
        dataset = Dataset(class_names=train.class_names, train=train, name=Path(options["data"]).name)
        return _jpeg(lambda f: write_preview(
            dataset, out=f, augment=options.get("augment") or "none", count=PREVIEW_IMAGES,
            image_size=(height, width), seed=options.get("seed", 0), channels=channels,
            batch_size=options.get("batch_size") or 32, image_format="JPEG"))
    except PortaclassError as error:  # the data moved since training
        notes.append(f"Augmentation preview left out: {error}")
        return None


def _metrics(run: Run) -> dict:
    try:
        return run.metrics()
    except PortaclassError:
        return {}


def _env(run: Run) -> dict:
    try:
        return run.env()
    except PortaclassError:
        return {}


def _skipped(run: Run) -> list[dict]:
    path = run.path / SKIPPED
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _template():
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("portaclass.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    environment.filters["percent"] = lambda v: "-" if v is None else f"{float(v):.2%}"
    environment.filters["number"] = lambda v, digits=3: "-" if v in (None, "") else f"{float(v):.{digits}f}"
    return environment.get_template("report.html.j2")
