"""``portaclass evaluate``: how good a trained classifier is, per class.

On a run folder the default data is the run's held-out split (splits/test.csv,
else val) read back through ``Run``, with the run's preprocessing: exactly
the images training never saw. ``data`` may instead name another split of
the run or a folder of class folders (a pre-split folder's test/ part, else
all of it). Metrics follow scikit-learn's definitions, computed in NumPy
(``score``), with expected calibration error, which scikit-learn lacks.
``evaluation.json`` and ``confusion_matrix.png`` go into the run (or ``out``).

The module is callable: ``portaclass.evaluate(run_or_model, data=None,
tta=False)`` returns an ``Evaluation``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass._lazy import backend, make_module_callable
from portaclass.data.dataset import Split
from portaclass.data.folder import from_directory
from portaclass.data.inputs import iter_inputs
from portaclass.errors import DataError, UsageError
from portaclass.inference import Classifier, as_probabilities, open_classifier, stack_pixels
from portaclass.run import write_json_atomic

EVALUATION = "evaluation.json"
CONFUSION_MATRIX = "confusion_matrix.png"
SPLIT_NAMES = ("train", "val", "test")
CALIBRATION_BINS = 15
TOP_LOSSES = 16


@dataclass
class Scores:
    """Metrics of one set of predictions (plain, or with test-time augmentation)."""

    accuracy: float
    top_k: int | None
    top_k_accuracy: float | None
    log_loss: float
    expected_calibration_error: float
    macro: dict
    weighted: dict
    per_class: list[dict]
    confusion_matrix: list[list[int]]


@dataclass
class Evaluation:
    """What ``evaluate`` measured: ``scores`` (and ``tta_scores`` with
    ``tta``), on ``count`` images of ``data`` from ``model``; ``skipped``
    lists ``(name, reason)`` of images that could not be read;
    ``top_losses`` the worst-predicted images (name as ``item_names``
    gives it, true, predicted, probability of the truth, loss)."""

    model: str
    data: str
    split: str | None  # the run split scored ("test"...), None for a folder
    backend: str
    class_names: list[str]
    count: int
    scores: Scores
    tta_scores: Scores | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    top_losses: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    files: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.scores.accuracy

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(source, data=None, *, tta: bool = False, out=None, device: str | None = None,
             batch_size: int = 64, top_k: int | None = None, write: bool = True,
             progress=None, unsafe: bool = False) -> Evaluation:
    """Evaluate a run folder, ``.keras`` file or ``keras.Model``.

    Args:
        source: the run folder or model file (or model).
        data: None (the run's held-out split), "train" / "val" / "test" (a
            split of the run), or a folder of class folders.
        tta: also score with test-time augmentation (``tta_scores``).
        out: folder for evaluation.json and confusion_matrix.png (default:
            the run folder; for a bare file, ``<file>.evaluation/``).
        device: "cpu", "gpu" or "gpu:N".
        batch_size: images per forward pass.
        top_k: k of the top-k accuracy (default 5, or fewer with few classes).
        write: False to write nothing.
        progress: called as ``progress(done, total)`` after each batch.
        unsafe: load a model file without ``model_files``' safety checks.
    """
    checks.at_least("batch_size", batch_size, 1)
    if top_k is not None:
        checks.at_least("top_k", top_k, 1)
    start = time.perf_counter()
    classifier = open_classifier(source, device=device, unsafe=unsafe)
    split, data_name, skipped = _resolve_data(classifier, data)
    labels = _labels_in_model_order(split, classifier.class_names, data_name)

    items = list(split.paths) if split.is_files else list(split.images)
    names = item_names(split)
    kept, plain, augmented = [], [], []
    for batch_start, batch in _batches(classifier, items, batch_size):
        for offset, image in enumerate(batch):
            if image.error:
                skipped.append((names[batch_start + offset], image.error))
            else:
                kept.append(batch_start + offset)
        pixels = stack_pixels(batch)
        if tta:  # the first view is the image itself: its column is the plain figure
            views = classifier.view_probabilities(pixels, batch_size=batch_size)
            plain.append(views[:, 0])
            augmented.append(views.mean(axis=1))
        else:
            plain.append(classifier.probabilities(pixels, batch_size=batch_size))
        if progress:
            progress(min(batch_start + len(batch), len(items)), len(items))
    if not kept:
        first, reason = skipped[0] if skipped else ("-", "-")
        raise DataError(f"no image of {data_name} could be read ({len(skipped)} skipped; "
                        f"{first}: {reason})")
    evaluation = _evaluation(classifier, data, split, data_name, labels[kept], [names[i] for i in kept],
                             np.concatenate(plain), np.concatenate(augmented) if tta else None,
                             skipped, top_k)
    evaluation.seconds = round(time.perf_counter() - start, 2)
    if write:
        folder = _output_folder(classifier, out)
        evaluation.files = write_evaluation(evaluation, folder)
    return evaluation


def evaluation_of_outputs(classifier: Classifier, outputs, data=None) -> Evaluation:
    """The evaluation of the model's ``outputs`` (probabilities, or logits
    from a model without softmax) already computed for every image of the
    run split ``data`` (None: the held-out one), in the split's order: a
    run's last validation pass, reused by its report."""
    start = time.perf_counter()
    split, data_name, skipped = _resolve_data(classifier, data)
    probabilities = as_probabilities(np.asarray(outputs, np.float32))
    if len(probabilities) != len(split):
        raise ValueError(f"{len(probabilities)} predictions for the {len(split)} images of {data_name}")
    labels = _labels_in_model_order(split, classifier.class_names, data_name)
    evaluation = _evaluation(classifier, data, split, data_name, labels, item_names(split),
                             probabilities, None, skipped, None)
    evaluation.seconds = round(time.perf_counter() - start, 2)
    return evaluation


def _evaluation(classifier: Classifier, data, split: Split, data_name: str, truth, names: list[str],
                probabilities, augmented, skipped: list, top_k: int | None) -> Evaluation:
    k = top_k or min(5, len(classifier.class_names) - 1)
    return Evaluation(
        model=classifier.source, data=data_name, split=split.name if classifier.run and data in
        (None, *SPLIT_NAMES) else None, backend=backend.NAME,
        class_names=classifier.class_names, count=len(truth),
        scores=score(truth, probabilities, classifier.class_names, k),
        tta_scores=score(truth, augmented, classifier.class_names, k) if augmented is not None else None,
        skipped=skipped, top_losses=_top_losses(truth, probabilities, names, classifier.class_names),
    )


def item_names(split: Split) -> list[str]:
    """How evaluation names a split's images: paths relative to the data
    root, or ``test[7]`` for an in-memory split (what top_losses hold)."""
    return split.relpaths() if split.is_files else [f"{split.name}[{i}]" for i in range(len(split))]


def _batches(classifier: Classifier, items: list, batch_size: int):
    start = 0
    for batch in iter_inputs(items, classifier.size_hw, classifier.channels,
                             resize_mode=classifier.resize, batch_size=batch_size):
        yield start, batch
        start += len(batch)


def _resolve_data(classifier: Classifier, data) -> tuple[Split, str, list]:
    """The split to score, a name for it, and the files its folder's
    pre-pass found unreadable."""
    run = classifier.run
    if data is None or data in SPLIT_NAMES:
        if run is None:
            raise UsageError.for_option("data", f"is needed for {classifier.source}, which is not in "
                                        "a run folder: pass a folder of class folders")
        split = run.split(data)  # a data folder that is gone is one line naming it (load_split_files)
        return split, f"{run.path} {split.name} split", []
    folder = Path(str(data)).expanduser()
    if not folder.is_dir():
        raise UsageError.for_option("data", f"must be {', '.join(SPLIT_NAMES)} or a folder of class "
                                    f"folders; {data!r} is neither")
    dataset = from_directory(folder, val_split=0.0, test_split=0.0,
                             color_mode="grayscale" if classifier.channels == 1 else "rgb")
    split = dataset.test or dataset.val or dataset.train
    label = f"{folder}" + (f" ({split.name}/)" if split is not dataset.train else "")
    return split, label, list(dataset.skipped)


def _labels_in_model_order(split: Split, model_classes: list[str], data_name: str) -> np.ndarray:
    """The split's labels as indices of the model's classes: a folder's
    classes are matched to the model's by name (it may hold fewer)."""
    if list(split.class_names) == list(model_classes):
        return split.labels
    unknown = [name for name in split.class_names if name not in model_classes]
    if unknown:
        raise DataError(f"{data_name} has classes the model does not know: {', '.join(unknown[:5])} "
                        f"(the model's: {', '.join(model_classes[:10])})")
    mapping = np.array([model_classes.index(name) for name in split.class_names])
    return mapping[split.labels]


def score(truth: np.ndarray, probabilities: np.ndarray, class_names: list[str], k: int) -> Scores:
    """Accuracy, top-k, log loss, calibration error, per-class and averaged
    precision/recall/F1 and the confusion matrix (rows: truth).

    The definitions are scikit-learn's (precision_recall_fscore_support with
    zero_division=0, log_loss, confusion_matrix; tests compare the two), in
    NumPy: importing sklearn.metrics cost every run's report 0.6 s and 78 MB."""
    truth = np.asarray(truth, dtype=np.int64)
    count = len(class_names)
    predicted = probabilities.argmax(axis=1)
    confusion = np.bincount(truth * count + predicted, minlength=count * count).reshape(count, count)
    hits, support, chosen = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    precision, recall = _ratio(hits, chosen), _ratio(hits, support)
    f1 = _ratio(2 * hits, 2 * hits + (support - hits) + (chosen - hits))
    per_class = [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
                  "support": int(n)} for name, p, r, f, n in zip(class_names, precision, recall, f1, support)]
    weights = support / max(support.sum(), 1)
    averages = {"macro": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                          "f1": float(f1.mean())},
                "weighted": {"precision": float(precision @ weights), "recall": float(recall @ weights),
                             "f1": float(f1 @ weights)}}
    use_k = k if 1 <= k < count else None
    return Scores(
        accuracy=float((predicted == truth).mean()),
        top_k=use_k,
        top_k_accuracy=top_k_accuracy(truth, probabilities, use_k) if use_k else None,
        log_loss=log_loss(truth, probabilities),
        expected_calibration_error=expected_calibration_error(truth, probabilities),
        macro=averages["macro"], weighted=averages["weighted"], per_class=per_class,
        confusion_matrix=confusion.tolist(),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's
    zero_division=0)."""
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def log_loss(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-probability of the true class, each row clipped to
    [1e-7, 1] and renormalised, as scikit-learn's log_loss does."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return float(-np.log(clipped[np.arange(len(truth)), truth]).mean())


def top_k_accuracy(truth: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the k most probable. Not
    sklearn's top_k_accuracy_score: it refuses two classes (a binary target
    with 2-column scores), the case of every two-folder dataset."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((ranked == np.asarray(truth)[:, None]).any(axis=1).mean())


def expected_calibration_error(truth: np.ndarray, probabilities: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error (Guo et al. 2017): confidence against
    accuracy in equal-width confidence bins, weighted by the bins' sizes."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def _top_losses(truth, probabilities, names, class_names, count: int = TOP_LOSSES) -> list[dict]:
    """The images the model got most wrong (highest cross-entropy first):
    fastai's ``plot_top_losses`` list."""
    true_probability = probabilities[np.arange(len(truth)), truth]
    losses = -np.log(np.clip(true_probability, 1e-7, 1.0))
    worst = np.argsort(-losses, kind="stable")[:count]
    return [{"name": names[i], "true": class_names[truth[i]],
             "predicted": class_names[int(probabilities[i].argmax())],
             "probability_predicted": float(probabilities[i].max()),
             "probability_true": float(true_probability[i]), "loss": float(losses[i])} for i in worst]


def _output_folder(classifier: Classifier, out) -> Path:
    if out is not None:
        return Path(out)
    if classifier.run is not None:
        return classifier.run.path
    return Path(f"{classifier.source}.evaluation")


def write_evaluation(evaluation: Evaluation, folder: Path) -> dict:
    """evaluation.json and confusion_matrix.png in ``folder``."""
    from portaclass.report.plots import plot_confusion_matrix

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": str(folder / EVALUATION), "confusion_matrix": str(folder / CONFUSION_MATRIX)}
    plot_confusion_matrix(np.asarray(evaluation.scores.confusion_matrix), evaluation.class_names,
                          folder / CONFUSION_MATRIX, title=f"{evaluation.data} ({evaluation.backend})")
    write_json_atomic(folder / EVALUATION, evaluation.to_dict() | {"files": files})
    return files


make_module_callable(__name__, evaluate)
