"""``portaclass predict``: the top classes of new images.

A run folder, a ``.keras`` file or a ``keras.Model`` predicts with its own
preprocessing and class names (``inference.open_classifier``), on the device
asked for. Images are files, folders (walked recursively), Pillow images or
NumPy arrays (channels_last); one that cannot be read is a ``Prediction``
with an ``error`` and the rest go on. Everything returned is plain Python.

The module is callable: ``portaclass.predict(model, images, device=None,
top_k=3)`` returns a list of ``Prediction``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass._lazy import make_module_callable
from portaclass.data.inputs import as_image_list, expand_paths, iter_inputs
from portaclass.export.exported import exported_classifier, is_exported_file
from portaclass.inference import open_classifier, stack_pixels

FORMATS = ("table", "json", "csv")


@dataclass
class Prediction:
    """One image's result: ``classes`` and ``probabilities`` best first
    (``top_k`` of them), or ``error`` when the image could not be read."""

    name: str
    classes: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str | None:
        return self.classes[0] if self.classes else None

    @property
    def probability(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None

    def to_dict(self) -> dict:
        return asdict(self)


def predict(model, images, *, device: str | None = None, top_k: int = 3, batch_size: int = 32,
            tta: bool = False, progress=None, log=None, unsafe: bool = False) -> list[Prediction]:
    """Predict ``images`` with ``model``.

    Args:
        model: a run folder, a ``.keras`` file, a ``keras.Model``, or a file
            ``portaclass export`` wrote (``.onnx``, ``.pt2``, ``.xml``, ``.tflite``,
            a SavedModel folder), run in its own runtime with its sidecar.
        images: one or a list of: image files, folders (searched
            recursively), Pillow images, NumPy arrays ``(H, W)`` /
            ``(H, W, C)`` (or one ``(N, H, W, C)`` array); any size and
            channel count: each is converted as the model was trained.
        device: "cpu", "gpu" or "gpu:N" (default: the backend's choice). A
            model trained on a GPU predicts on the CPU on every backend.
        top_k: how many classes to return per image.
        batch_size: images per forward pass.
        tta: average over test-time augmentation views (flip, shifts).
        progress: called as ``progress(done, total)`` after each batch.
        log: called with a one-line note when the model carries no class
            names or preprocessing (a ``.keras`` file not from portaclass).
        unsafe: load a model file without ``model_files``' safety checks.

    Returns:
        One ``Prediction`` per image, in input order (folders expanded).
    """
    checks.at_least("top_k", top_k, 1)
    checks.at_least("batch_size", batch_size, 1)
    items = expand_paths(as_image_list(images))
    if isinstance(model, (str, Path)) and is_exported_file(model):
        classifier = exported_classifier(model)  # through its own runtime (onnxruntime...)
    else:
        classifier = open_classifier(model, device=device, unsafe=unsafe)
    if classifier.guessed and log:
        log(f"note: {classifier.source} carries no class names or preprocessing (not saved by "
            "portaclass): classes are numbered and pixels scaled to [0, 1]")
    k = min(top_k, len(classifier.class_names))
    results: list[Prediction] = []
    for batch in iter_inputs(items, classifier.size_hw, classifier.channels,
                             resize_mode=classifier.resize, batch_size=batch_size):
        probabilities = iter(classifier.probabilities(stack_pixels(batch), batch_size=batch_size, tta=tta))
        for image in batch:
            if image.error:
                results.append(Prediction(image.name, error=image.error))
                continue
            ranked = top_classes(next(probabilities), classifier.class_names, k)
            results.append(Prediction(image.name, [name for name, _ in ranked], [p for _, p in ranked]))
        if progress:
            progress(len(results), len(items))
    return results




def top_classes(row: np.ndarray, class_names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable (class, probability) pairs of one row, best
    first (ties in class order)."""
    best = np.argsort(-row, kind="stable")[:k]
    return [(class_names[i], float(row[i])) for i in best]


def format_predictions(predictions: list[Prediction], fmt: str) -> str:
    """``json`` (a list of objects) or ``csv`` (name, class_1, probability_1,
    ..., error) text; the table is drawn by the CLI with Rich."""
    checks.choice("format", fmt, FORMATS)
    if fmt == "json":
        return json.dumps([p.to_dict() for p in predictions], indent=1)
    k = max((len(p.classes) for p in predictions), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *[f"{col}_{i + 1}" for i in range(k) for col in ("class", "probability")],
                     "error"])
    for p in predictions:
        pairs = [value for i in range(k) for value in
                 ((p.classes[i], f"{p.probabilities[i]:.6f}") if i < len(p.classes) else ("", ""))]
        writer.writerow([p.name, *pairs, p.error or ""])
    return buffer.getvalue()


make_module_callable(__name__, predict)
