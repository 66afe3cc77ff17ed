"""A trained classifier ready to score images: the one place predict,
evaluate and explain load a model and turn images into probabilities.

``open_classifier`` takes a run folder or a ``.keras`` file (a portaclass
model file carries its class names and preprocessing: ``ModelInfo``), or a
``keras.Model`` in memory, and places it on the device asked for. A model
trained on a GPU predicts on the CPU on every backend: a file is loaded under
the CPU's device scope, an in-memory model goes through ``backend.cpu_copy``
(on TensorFlow that also turns XLA off, which pins variables to the device
they were made on). Probabilities leave as NumPy (``backend.to_numpy``), so a
CUDA tensor never reaches the caller.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portaclass import layout
from portaclass._lazy import backend, keras
from portaclass.data.inputs import InputImage, tta_views
from portaclass.data.normalize import normalize
from portaclass.errors import ModelFileError, RunError
from portaclass.model_files import load_keras_file
from portaclass.models.registry import Preprocessing
from portaclass.run import Run
from portaclass.train.checkpoint import read_model_info

RUN_MODEL_FILES = ("model.keras", "checkpoints/best.keras", "checkpoints/last.keras")


@dataclass
class Classifier:
    """A loaded model and what it needs to read images: ``class_names``,
    ``input_shape`` (height, width, channels; channels_last), the
    ``preprocessing`` and ``resize`` mode it was trained with, and the
    ``run`` it came from (None for a bare file or an in-memory model).
    ``guessed``: the model came without them (a file not written by
    portaclass): classes are numbered and pixels scaled to [0, 1]."""

    model: object
    class_names: list[str]
    input_shape: tuple[int, int, int]
    preprocessing: Preprocessing
    resize: str = "plain"
    source: str = "<model>"
    run: Run | None = None
    device: str | None = None
    guessed: bool = False  # no class names or preprocessing came with the model
    channels_last_input: bool = False  # an exported file: NHWC whatever Keras' layout

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.input_shape[0], self.input_shape[1]

    @property
    def channels(self) -> int:
        return self.input_shape[2]

    def probabilities(self, pixels: np.ndarray, *, batch_size: int = 32, tta: bool = False) -> np.ndarray:
        """Class probabilities ``(N, classes)`` float32 for uint8 images
        ``(N, H, W, C)`` at the input size; with ``tta`` the mean over
        ``data.inputs.tta_views``."""
        if len(pixels) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        if not tta:
            return self._predict(pixels, batch_size)
        return self.view_probabilities(pixels, batch_size=batch_size).mean(axis=1)

    def view_probabilities(self, pixels: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Probabilities of every test-time augmentation view, ``(N, V,
        classes)``; view 0 is the image itself."""
        views = np.stack([tta_views(image, self.size_hw) for image in pixels])  # (N, V, H, W, C)
        n, v = views.shape[:2]
        flat = self._predict(views.reshape(n * v, *views.shape[2:]), batch_size)
        return flat.reshape(n, v, -1)

    def _predict(self, pixels: np.ndarray, batch_size: int) -> np.ndarray:
        out = []
        with backend.on_device(self.device) if self.device else contextlib.nullcontext():
            for start in range(0, len(pixels), batch_size):
                chunk = pixels[start:start + batch_size]
                padded = np.concatenate([chunk, np.repeat(chunk[-1:], _padded_size(len(chunk), batch_size)
                                                          - len(chunk), 0)])
                x = normalize(padded, self.preprocessing).astype(np.float32)
                if not self.channels_last_input:
                    x = layout.to_model_layout(x)
                scores = backend.to_numpy(self.model.predict_on_batch(self._structured(x)))[: len(chunk)]
                out.append(as_probabilities(np.asarray(scores, np.float32)))
        return np.concatenate(out)

    def _structured(self, x):
        """``x`` as the model's inputs are structured (a model saved with a
        list of one input warns on a bare array)."""
        return [x] if isinstance(getattr(self.model, "_inputs_struct", None), list) else x


def _padded_size(count: int, batch_size: int) -> int:
    """The batch shape to run ``count`` images at: the next power of two, at
    most ``batch_size``. JAX and TensorFlow compile once per shape, so shapes
    are few (log2 of the batch size), and one image does not cost a full batch."""
    return min(batch_size, 1 << max(0, count - 1).bit_length())


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """A model ending in softmax gives probabilities already; logits (a
    model from elsewhere) get a softmax."""
    if scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def open_classifier(source, *, device: str | None = None, unsafe: bool = False) -> Classifier:
    """A ``Classifier`` from a run folder, a ``.keras`` file or a
    ``keras.Model`` (a ``Classifier`` is passed through); ``device`` is
    "cpu", "gpu" or "gpu:N" (default: the backend's choice). Files load
    through ``model_files`` (safe mode unless ``unsafe``). RunError /
    ModelFileError name what is wrong."""
    if isinstance(source, Classifier):
        return source
    if device is not None:
        with backend.on_device(device):  # BackendError now, not mid-way: "no GPU"
            pass
    if isinstance(source, keras.Model):
        return _from_memory(source, device)
    path = Path(source).expanduser()
    if path.is_dir():
        run = Run.open(path)
        model_path = next((path / name for name in RUN_MODEL_FILES if (path / name).is_file()), None)
        if model_path is None:
            raise RunError(f"{path} has no model file yet (no model.keras or checkpoint): "
                           "the run has not finished an epoch")
        info = run.model_info()
    else:
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file or run folder")
        model_path, run = path, _run_holding(path)
        info = read_model_info(path) or (run.model_info() if run else None)
    model = load_keras_file(model_path, unsafe=unsafe, device=device)
    info = info or _guess_info(model, model_path)
    return Classifier(model, list(info["class_names"]), tuple(info["input_shape"]),
                      Preprocessing.from_dict(info.get("preprocessing") or {}),
                      info.get("resize") or "plain", str(model_path), run, device,
                      guessed=bool(info.get("guessed")))


def classifier_of_run(run: Run, model) -> Classifier:
    """The model a run has just trained, in memory, with the run's classes
    and preprocessing (the end of ``train`` reports without reloading it)."""
    info = run.model_info()
    return Classifier(model, list(info["class_names"]), tuple(info["input_shape"]),
                      Preprocessing.from_dict(info["preprocessing"]), info["resize"],
                      str(run.model_path), run)


def _run_holding(path: Path) -> Run | None:
    """The run a model file sits in (``RUN/model.keras`` or
    ``RUN/checkpoints/x.keras``), when there is one."""
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.json").is_file():
            try:
                return Run.open(folder)
            except RunError:
                return None
    return None


def _guess_info(model, path: Path) -> dict:
    """A file from outside portaclass: the input shape from the model, class
    names by index; its pixel scaling cannot be known."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape:
        raise ModelFileError(f"{path} does not take fixed-size images (input shape {shape})")
    if layout.data_format() == layout.CHANNELS_FIRST:
        shape = (shape[1], shape[2], shape[0])
    classes = int(model.outputs[0].shape[-1])
    return {"class_names": [f"class_{i}" for i in range(classes)], "input_shape": list(shape),
            "preprocessing": Preprocessing(input_size=shape[:2]).to_dict(), "resize": "plain",
            "guessed": True}


def _from_memory(model, device: str | None) -> Classifier:
    if device is not None and backend.parse_device_spec(device)[0] == "cpu" and model.weights \
            and backend.device_of(model.weights[0]).kind != "cpu":
        model = backend.cpu_copy(model)
    info = _guess_info(model, Path("<model>"))
    return Classifier(model, info["class_names"], tuple(info["input_shape"]),
                      Preprocessing.from_dict(info["preprocessing"]), device=device, guessed=True)


def stack_pixels(images: list[InputImage]) -> np.ndarray:
    """The decoded images of a batch as one uint8 array (failed ones left out)."""
    good = [image.pixels for image in images if image.pixels is not None]
    return np.stack(good) if good else np.zeros((0, 1, 1, 1), np.uint8)
