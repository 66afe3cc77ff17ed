"""Predicting with an exported file: ``load_exported(path)`` reads the file
in its own runtime and its ``<path>.json`` sidecar (class names, input size,
preprocessing), so ``portaclass predict model.onnx photo.jpg`` works like
predicting with the run it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from portaclass.errors import ModelFileError
from portaclass.export.formats import FORMATS, format_of_file
from portaclass.export.run_export import read_sidecar
from portaclass.export.runtimes import open_runtime
from portaclass.models.registry import Preprocessing

EXPORTED_SUFFIXES = tuple(f.suffix for f in FORMATS.values() if f.suffix and f.name != "keras")
# Preprocessing that leaves pixels as they are: the file normalises inside.
IDENTITY = {"scale": 1.0, "offset": 0.0, "mean": None, "std": None, "channel_order": "rgb"}


class ExportedModel:
    """An exported file ready to predict: ``predict(images)`` takes uint8
    images (N, H, W, C) at the input size and returns probabilities;
    ``predict_on_batch`` takes what the file takes (float32 NHWC)."""

    def __init__(self, path: Path, sidecar: dict):
        self.path = path
        self.format = format_of_file(path)
        self.info = sidecar
        self._run = open_runtime(path, self.format)

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(np.ascontiguousarray(x, np.float32)))

    def predict(self, images) -> np.ndarray:
        from portaclass.data.normalize import normalize
        from portaclass.inference import as_probabilities

        pixels = np.asarray(images)
        return as_probabilities(self.predict_on_batch(normalize(pixels, self.preprocessing)))

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.info["input"]["shape"][1:])

    @property
    def preprocessing(self) -> Preprocessing:
        data = dict(self.info["preprocessing"])
        if self.info.get("includes_preprocessing"):
            data.update(IDENTITY)
        return Preprocessing.from_dict(data)


def exported_classifier(path):
    """An exported file as an ``inference.Classifier``, for predict."""
    from portaclass.inference import Classifier

    model = load_exported(path)
    return Classifier(model, model.class_names, model.input_shape, model.preprocessing,
                      model.info.get("resize") or "plain", str(path), channels_last_input=True)


def is_exported_file(path) -> bool:
    """True for a path that names an exported file (not ``.keras``)."""
    path = Path(path)
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.suffix in EXPORTED_SUFFIXES


def load_exported(path) -> ExportedModel:
    """An exported file (.onnx, .pt2, .xml, .tflite or a SavedModel folder)
    with the sidecar ``portaclass export`` wrote beside it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"exported file not found: {path}")
    sidecar = read_sidecar(path)
    if not sidecar:
        raise ModelFileError(f"{path} has no {path.name}.json beside it: the class names and "
                             "preprocessing that `portaclass export` writes there are needed to predict")
    if sidecar.get("format") == "keras":
        raise ModelFileError(f"{path} is a .keras file: open it as a model, not an export")
    return ExportedModel(path, sidecar)
