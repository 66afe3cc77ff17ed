"""Writing one export file in this process, or in a subprocess of the backend
that can write the format (``python -m portaclass.export.write ARGS_JSON``:
the ``.keras`` file is portable, so any backend can load it and write)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

from portaclass._lazy import keras
from portaclass.export.formats import ExportFormat, get_format
from portaclass.export.prepare import inference_graph, strip_training_layers


def write_export(model_path: Path, fmt: ExportFormat, target: Path, *, opset: int | None = None,
                 include_preprocessing: bool = False, unsafe: bool = False) -> list[str]:
    """Write ``fmt`` of the model in ``model_path`` to ``target``; returns the
    training-only layers stripped on the way."""
    from portaclass.inference import open_classifier

    classifier = open_classifier(model_path, unsafe=unsafe)
    if fmt.keras_format is None:  # keeps its structure (nested backbone: Grad-CAM, --backbone)
        model, stripped = strip_training_layers(classifier.model)
        _save_keras(model, target, model_path)
        return stripped
    graph, stripped = inference_graph(classifier.model, classifier.input_shape,
                                      classifier.preprocessing if include_preprocessing else None)
    options = {}
    if opset is not None:
        options["opset_version"] = opset
    if fmt.name == "torch":
        import torch

        # a dynamic batch: torch.export otherwise fixes it at the sample's size
        options["dynamic_shapes"] = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
    # the exporters print progress (tf2onnx, OpenVINO, Keras' own lines) and
    # tracer warnings about Keras internals the user cannot act on
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph.export(str(target), format=fmt.keras_format, verbose=False, **options)
    return stripped


def _save_keras(model, target: Path, model_path: Path) -> None:
    from portaclass.train.checkpoint import read_model_info, save_inference_model

    save_inference_model(model, target, info=read_model_info(model_path))


def write_in_subprocess(backend: str, model_path: Path, fmt: ExportFormat, target: Path, *,
                        opset: int | None, include_preprocessing: bool, unsafe: bool) -> list[str]:
    from portaclass.backend_process import run_script_json

    arguments = {"model": str(model_path), "format": fmt.name, "target": str(target), "opset": opset,
                 "include_preprocessing": include_preprocessing, "unsafe": unsafe}
    try:
        result = run_script_json(["-m", "portaclass.export.write", json.dumps(arguments)], backend)
    except RuntimeError as error:
        last = str(error).strip().splitlines()[-1]
        raise RuntimeError(f"the {backend} subprocess could not write {fmt.name}: {last}") from None
    return result["stripped"]


def main(argv: list[str]) -> None:
    arguments = json.loads(argv[0])
    stripped = write_export(Path(arguments["model"]), get_format(arguments["format"]),
                            Path(arguments["target"]), opset=arguments["opset"],
                            include_preprocessing=arguments["include_preprocessing"],
                            unsafe=arguments["unsafe"])
    print(json.dumps({"stripped": stripped, "backend": keras.backend.backend()}))


if __name__ == "__main__":
    main(sys.argv[1:])
