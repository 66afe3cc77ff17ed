"""The model a server answers with: loaded once, safely, warmed up on every
batch shape it will see, and described for the metadata endpoint.

Keras runtime: ``inference.open_classifier`` (safe loading, device placement,
probabilities as NumPy through ``backend.to_numpy``). ONNX runtime: an
``.onnx`` file with its sidecar, or a run / ``.keras`` file exported to ONNX
first (``export.export_model``, which checks the file in onnxruntime).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portaclass.errors import UsageError
from portaclass.serve.options import ServeOptions


@dataclass
class ServedModel:
    """A ``Classifier`` and what the server says about it."""

    classifier: object
    runtime: str  # "keras/torch", "keras/jax", "keras/tensorflow" or "onnxruntime"
    max_batch: int
    cleanup: list[Path] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.classifier.input_shape)

    @property
    def resize(self) -> str:
        return self.classifier.resize

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W, C) at the input size -> probabilities
        (N, classes) float32."""
        return self.classifier.probabilities(pixels, batch_size=self.max_batch)

    def warm_up(self) -> list[int]:
        """Run every batch shape requests can produce (powers of two up to
        ``max_batch``, as ``Classifier`` pads them), so that no user request
        pays for a compile on JAX or TensorFlow. Returns the shapes run."""
        shapes = sorted({min(self.max_batch, 1 << k) for k in range(self.max_batch.bit_length() + 1)})
        rng = np.random.default_rng(0)
        for size in shapes:  # noise, not zeros: some runtimes take shortcuts on constants
            self.probabilities(rng.integers(0, 256, (size, *self.input_shape), dtype=np.uint8))
        return shapes

    def metadata(self) -> dict:
        """What a client needs to send images: shape, layout, pixel range,
        classes and the preprocessing applied on the server."""
        h, w, c = self.input_shape
        return {
            "class_names": self.class_names,
            "input": {"shape": [-1, h, w, c], "layout": "channels_last (NHWC)",
                      "values": "RGB (or greyscale) pixels 0-255; the server applies the preprocessing",
                      "b64": "or {\"b64\": <base64 image file bytes>}: decoded and resized on the server"},
            "output": {"shape": [-1, len(self.class_names)], "values": "class probabilities (softmax)"},
            "preprocessing": self.classifier.preprocessing.to_dict(),
            "resize": self.resize,
            "runtime": self.runtime,
            "max_batch": self.max_batch,
        }  # not the model's path: a client has no business knowing the server's files

    def close(self) -> None:
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def load_served_model(options: ServeOptions, log=lambda line: None) -> ServedModel:
    """The model ``options.source`` names, loaded for ``options.runtime`` on
    ``options.device``. Errors are PortaclassErrors (one line, exit 2)."""
    from portaclass.export.exported import is_exported_file

    source = Path(options.source).expanduser()
    if is_exported_file(source):
        if source.suffix != ".onnx":
            raise UsageError(f"{source}: serve takes a run folder, a .keras file or an .onnx file "
                             "(other exported formats have their own servers)")
        return _onnx_model(source, options, [])
    if options.runtime == "onnx":
        return _exported_to_onnx(source, options, log)
    from portaclass._lazy import backend
    from portaclass.inference import open_classifier

    classifier = open_classifier(source, device=options.device, unsafe=options.unsafe)
    return ServedModel(classifier, f"keras/{backend.NAME}", options.max_batch)


def _onnx_model(path: Path, options: ServeOptions, cleanup: list[Path]) -> ServedModel:
    from portaclass.export.exported import exported_classifier

    if options.device not in (None, "cpu"):
        raise UsageError.for_option("device", f"{options.device}: the ONNX runtime serves on the CPU here")
    return ServedModel(exported_classifier(path), "onnxruntime", options.max_batch, cleanup)


def _exported_to_onnx(source: Path, options: ServeOptions, log) -> ServedModel:
    """A run or ``.keras`` file served on ONNX Runtime: its verified export
    (``RUN/export/model.onnx`` when one is there, else one written now to a
    temporary folder removed when the server stops)."""
    from portaclass.export import export_model
    from portaclass.export.run_export import source_model_file

    model_file = source_model_file(source)
    existing = model_file.parent / "export" / "model.onnx"
    if (model_file.parent / "config.json").is_file() and Path(f"{existing}.json").is_file():
        log(f"serving {existing} (exported from this run)")
        return _onnx_model(existing, options, [])
    folder = Path(tempfile.mkdtemp(prefix="portaclass-serve-"))
    try:
        result = export_model(model_file, "onnx", folder / "model.onnx", unsafe=options.unsafe, log=log)
        log(f"exported to ONNX for serving: {result.verification.summary()}")
        return _onnx_model(result.path, options, [folder])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
