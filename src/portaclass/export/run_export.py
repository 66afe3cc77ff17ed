"""``portaclass export``: one model, any deployment format, verified.

The file is written in a staging folder beside ``--out``, by this process's
backend when it can write the format and otherwise by a subprocess of one
that can (``formats.writer_backend``); it is then loaded in its own runtime
and compared with the Keras model (``verify``); only a file that passes is
moved to ``--out``, with a ``<out>.json`` sidecar saying how to feed it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from portaclass import checks
from portaclass._lazy import keras
from portaclass.errors import ModelFileError, PortaclassError, RunError, UsageError, first_line
from portaclass.export.formats import (
    ExportFormat,
    check_runtime,
    format_of_file,
    get_format,
    writer_backend,
)
from portaclass.export.prepare import EXPORT_INPUT, built_channels_first
from portaclass.export.runtimes import open_runtime
from portaclass.export.verify import Verification, verify
from portaclass.export.write import write_export, write_in_subprocess


class ExportCheckError(PortaclassError):
    """The exported file does not compute what the Keras model computes."""

    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    format: str
    written_by: str
    verification: Verification
    stripped: list[str] = field(default_factory=list)
    sidecar: Path | None = None


def export_model(source, format: str = "onnx", out=None, *, opset: int | None = None,
                 include_preprocessing: bool = False, unsafe: bool = False, overwrite: bool = False,
                 log=lambda line: None) -> ExportResult:
    """Export a run folder's or ``.keras`` file's model to ``format`` at
    ``out`` (default: ``RUN/export/model.<suffix>``, or beside the file) and
    verify it in the format's own runtime. ``log`` gets one line per step.
    ExportCheckError (exit code 1) when the file disagrees with Keras; nothing
    is left at ``out`` then."""
    fmt = get_format(format)
    if opset is not None:
        if fmt.name != "onnx":
            raise UsageError.for_option("opset", "applies to --format onnx only")
        checks.at_least("opset", opset, 7)
    if include_preprocessing and fmt.name == "keras":
        raise UsageError.for_option("include_preprocessing", "does not apply to keras files, which "
                                    "carry their preprocessing in their portaclass metadata")
    model_path = source_model_file(source)
    target = _target(out, fmt, model_path, overwrite)
    check_runtime(fmt)
    current = keras.backend.backend()
    from portaclass.inference import open_classifier

    classifier = open_classifier(model_path, unsafe=unsafe)
    writer = writer_backend(fmt, current, channels_first=built_channels_first(classifier.model))
    target.parent.mkdir(exist_ok=True)  # RUN/export/, once everything has been checked
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".portaclass-export-") as staging:
        staged = Path(staging) / target.name
        if writer == current:
            log(f"writing {fmt.name} on {current}")
            try:
                stripped = write_export(model_path, fmt, staged, opset=opset,
                                        include_preprocessing=include_preprocessing, unsafe=unsafe)
            except PortaclassError:
                raise
            except Exception as error:  # the exporters raise anything: one line, exit 1
                raise ExportCheckError(f"{current} could not write {fmt.name}: "
                                       f"{first_line(error, 300)}") from error
        else:
            log(f"{current} cannot write {fmt.name} here: writing it in a {writer} subprocess "
                "from the portable .keras file")
            try:
                stripped = write_in_subprocess(writer, model_path, fmt, staged, opset=opset,
                                               include_preprocessing=include_preprocessing,
                                               unsafe=unsafe)
            except RuntimeError as error:
                raise ExportCheckError(str(error)) from None
        if stripped:
            log(f"stripped training-only layers: {', '.join(stripped)}")
        verification = verify(open_runtime(staged, fmt), classifier,
                              includes_preprocessing=include_preprocessing)
        log(f"checked in {fmt.name}'s runtime: {verification.summary()}")
        if not verification.passed:
            raise ExportCheckError(f"the exported {fmt.name} file disagrees with the Keras model "
                                   f"({verification.summary()}); nothing was written to {target}")
        sidecar = Path(staging) / f"{target.name}.json"
        sidecar.write_text(json.dumps(_sidecar(fmt, classifier, model_path, writer, stripped,
                                               include_preprocessing, verification), indent=1))
        _move_into_place(Path(staging), target.parent)
    return ExportResult(target, fmt.name, writer, verification, stripped,
                        target.parent / f"{target.name}.json")


def verify_export(path, reference, *, unsafe: bool = False) -> Verification:
    """Check an exported file against the model it came from (a run folder
    or ``.keras`` file), reading ``<path>.json`` for how to feed it."""
    from portaclass.inference import open_classifier

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"exported file not found: {path}")
    fmt = format_of_file(path)
    sidecar = read_sidecar(path)
    classifier = open_classifier(source_model_file(reference), unsafe=unsafe)
    return verify(open_runtime(path, fmt), classifier,
                  includes_preprocessing=bool(sidecar.get("includes_preprocessing")))


def source_model_file(source) -> Path:
    """The ``.keras`` file a run folder or path names; RunError for a run
    with no final model yet."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RunError(f"{path} is not a run folder (no config.json) and not a model file")
        if not (path / "model.keras").is_file():
            raise RunError(f"{path} has no model.keras yet: the run is still training or stopped "
                           "early (export a checkpoint file from checkpoints/ explicitly)")
        return path / "model.keras"
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file or run folder")
    return path


def read_sidecar(path: Path) -> dict:
    sidecar = Path(f"{path}.json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except ValueError as error:
        raise ModelFileError(f"{sidecar} is not valid JSON: {error}") from None


def _target(out, fmt: ExportFormat, model_path: Path, overwrite: bool) -> Path:
    if out is None:
        run_dir = model_path.parent
        folder = run_dir / "export" if (run_dir / "config.json").is_file() else run_dir
        target = folder / fmt.default_file_name(model_path.stem)
        checked = run_dir  # RUN/export/ is made once the export can go ahead
    else:
        target = Path(out).expanduser()
        checked = target.parent
        if not checked.is_dir():
            raise UsageError.for_option("out", f"{target}: folder {checked} does not exist")
    if not os.access(checked, os.W_OK):
        raise UsageError.for_option("out", f"{target}: folder {checked} is not writable")
    if fmt.suffix and not target.name.endswith(fmt.suffix):
        raise UsageError.for_option("out", f"{target}: a {fmt.name} file must end in {fmt.suffix}")
    if target.exists() and not overwrite:
        raise UsageError.for_option("out", f"{target} exists; pass --overwrite to replace it")
    if target.resolve() == model_path.resolve():
        raise UsageError.for_option("out", f"{target} is the model being exported")
    return target


def _move_into_place(staging: Path, folder: Path) -> None:
    for item in staging.iterdir():
        destination = folder / item.name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(item, destination)


def _sidecar(fmt, classifier, model_path, writer, stripped, includes_preprocessing, verification):
    h, w, c = classifier.input_shape
    return {
        "format": fmt.name,
        "class_names": classifier.class_names,
        "input": {"name": EXPORT_INPUT, "shape": [None, h, w, c], "layout": "NHWC" if fmt.name != "keras"
                  else backend_layout(), "dtype": "float32",
                  "values": "RGB pixels in [0, 255]" if includes_preprocessing
                  else "pixels after `preprocessing` (x * scale + offset, then (x - mean) / std)"},
        "includes_preprocessing": includes_preprocessing,
        "preprocessing": classifier.preprocessing.to_dict(),
        "resize": classifier.resize,
        "output": "class probabilities (softmax), float32 (N, classes)",
        "source": str(model_path),
        "written_by_backend": writer,
        "stripped_layers": stripped,
        "verification": verification.to_dict(),
        "keras_version": keras.__version__,
    }



def backend_layout() -> str:
    return "NCHW" if keras.config.image_data_format() == "channels_first" else "NHWC"
