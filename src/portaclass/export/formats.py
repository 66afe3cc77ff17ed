"""The export formats: what each file is called, which backends can write
it (Keras 3.15's ``model.export`` per backend, measured here) and what must
be installed to write and to check it.

Measured with keras 3.15.1 (docs/export.md has the matrix): ONNX is written
by torch (``torch.onnx``) and TensorFlow (tf2onnx); JAX needs jax2onnx,
which pulls in flax, orbax and optax, so a JAX process hands ONNX to a torch
or TensorFlow subprocess unless jax2onnx is already installed. SavedModel
needs TensorFlow's graph (TensorFlow, or JAX through jax2tf); torch's
``tf_saved_model`` path fails on a dynamic batch. ``torch`` is torch's own
ExportedProgram. OpenVINO's converter takes TensorFlow and torch graphs but
not JAX's XlaCallModule. LiteRT comes from TensorFlow's converter (torch
needs litert-torch, which is not in the extras).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from portaclass.config import BACKENDS, is_installed
from portaclass.errors import UsageError


@dataclass(frozen=True)
class ExportFormat:
    """``name`` as the CLI spells it; ``keras_format``: ``model.export``'s
    name for it (None: ``model.save``); ``suffix`` of the file ("" for a
    folder); ``writers``: backends that write it, best first, each with the
    modules it needs; ``runtime``: the modules that load the file to check
    it; ``extra``: the pip extra that brings them."""

    name: str
    keras_format: str | None
    suffix: str
    writers: dict[str, tuple[str, ...]]
    runtime: tuple[str, ...]
    extra: str | None

    def default_file_name(self, stem: str) -> str:
        return f"{stem}{self.suffix}" if self.suffix else f"{stem}_savedmodel"


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("keras", None, ".keras", {b: () for b in BACKENDS}, (), None),
    ExportFormat("onnx", "onnx", ".onnx",
                 {"torch": ("onnx",), "tensorflow": ("onnx", "tf2onnx"), "jax": ("onnx", "jax2onnx")},
                 ("onnxruntime",), "onnx"),
    ExportFormat("savedmodel", "tf_saved_model", "",
                 {"tensorflow": (), "jax": ("tensorflow",)}, ("tensorflow",), "tensorflow"),
    ExportFormat("torch", "torch", ".pt2", {"torch": ()}, ("torch",), "torch"),
    ExportFormat("openvino", "openvino", ".xml",
                 {"torch": ("openvino",), "tensorflow": ("openvino",)}, ("openvino",), "openvino"),
    ExportFormat("litert", "litert", ".tflite", {"tensorflow": ()}, ("ai_edge_litert",), "litert"),
)}


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError.for_option("format", f"{name!r} is not an export format; choose one of "
                                    f"{', '.join(FORMATS)}") from None


def has_modules(modules) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def writer_backend(fmt: ExportFormat, current: str, *, channels_first: bool = False) -> str:
    """The backend that writes ``fmt``: this process's when it can, else the
    first installed one that can; UsageError naming the extra to install.
    ``channels_first``: the model runs NCHW convolutions, which TensorFlow
    cannot run on a CPU, so TensorFlow does not write it."""
    usable = {name: modules for name, modules in fmt.writers.items()
              if not (channels_first and name == "tensorflow")}
    if not usable:
        raise UsageError(f"this model was built channels_first (NCHW convolutions), which TensorFlow, "
                         f"the only writer of {fmt.name}, cannot run on a CPU: export onnx, torch or "
                         "openvino, or train with image_data_format channels_last")
    if current in usable and has_modules(usable[current]):
        return current
    for name, modules in usable.items():
        if name != current and is_installed(name) and has_modules(modules):
            return name
    raise UsageError(f"writing {fmt.name} needs {_needs(fmt)}: pip install 'portaclass[{_extra_for(fmt)}]'")


def check_runtime(fmt: ExportFormat) -> None:
    """UsageError naming the extra when the runtime that checks ``fmt`` is missing."""
    if not has_modules(fmt.runtime):
        raise UsageError(f"checking a {fmt.name} file needs {' and '.join(fmt.runtime)}: "
                         f"pip install 'portaclass[{fmt.extra}]'")


def _needs(fmt: ExportFormat) -> str:
    options = [" + ".join((name, *modules)) for name, modules in fmt.writers.items()]
    return " or ".join(options)


def _extra_for(fmt: ExportFormat) -> str:
    return fmt.extra or "all"


def format_of_file(path) -> ExportFormat:
    """The format of an exported file or folder, from its name."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        return FORMATS["savedmodel"]
    for fmt in FORMATS.values():
        if fmt.suffix and path.name.endswith(fmt.suffix):
            return fmt
    raise UsageError(f"{path}: cannot tell the format of this file (expected "
                     f"{', '.join(f.suffix for f in FORMATS.values() if f.suffix)} or a SavedModel folder)")
