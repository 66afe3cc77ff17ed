"""The export matrix: models saved on each backend, exported to every format
from a process of that backend, each file checked in its own runtime.

    python benchmarks/export_matrix.py --models resnet18,mobilenet_v2 --image-size 32

Per (model, backend that trained it, format): which backend wrote the file
(this one, or a subprocess of one that can), the max abs difference to the
Keras model and top-1 agreement on export's verification batch, and the
seconds ``export_model`` took (write + check). Writes a Markdown table for
docs/export.md. The models are seeded, not trained: export does not care
what the weights learnt, and seeded weights are identical on every backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from portaclass.backend_process import run_script_json
from portaclass.config import BACKENDS, is_installed
from portaclass.export.formats import FORMATS as EXPORT_FORMATS

FORMATS = ("keras", "onnx", "savedmodel", "torch", "openvino", "litert")


def export_all(model: str, image_size: int, folder: Path) -> list[dict]:
    """In this process's backend: save ``model``, export it to every format."""
    import time

    import keras

    from portaclass import create_model
    from portaclass.export import export_model
    from portaclass.models import get_spec
    from portaclass.train.checkpoint import save_inference_model

    spec = get_spec(model)
    classifier = create_model(model, 5, (image_size, image_size, 3), seed=0)
    info = {"class_names": [f"c{i}" for i in range(5)], "input_shape": [image_size, image_size, 3],
            "preprocessing": spec.preprocessing.to_dict(), "resize": "plain"}
    source = save_inference_model(classifier, folder / f"{model}.keras", info=info)
    rows = []
    for fmt in FORMATS:
        out = folder / f"{model}_{fmt}"
        out.mkdir()
        start = time.perf_counter()
        try:
            result = export_model(source, fmt, out / EXPORT_FORMATS[fmt].default_file_name("model"))
            rows.append({"format": fmt, "written_by": result.written_by,
                         "max_abs_diff": result.verification.max_abs_diff,
                         "top1": result.verification.top1_agreement,
                         "seconds": round(time.perf_counter() - start, 1)})
        except Exception as error:  # a cell of the matrix, not the end of it
            rows.append({"format": fmt, "error": str(error).splitlines()[0][:160]})
    return [{"model": model, "backend": keras.backend.backend(), **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rows = []
        for model in args.models.split(","):
            rows += export_all(model, args.image_size, Path(args.worker))
        print(json.dumps(rows))
        return
    rows = []
    for backend in (b for b in BACKENDS if is_installed(b)):
        with tempfile.TemporaryDirectory() as folder:
            rows += run_script_json([__file__, "--models", args.models, "--image-size",
                                     str(args.image_size), "--worker", folder], backend)
    print("| model | trained on | format | written by | max abs diff | top-1 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['model']} | {row['backend']} | {row['format']} | failed: {row['error']} | | | |")
        else:
            print(f"| {row['model']} | {row['backend']} | {row['format']} | {row['written_by']} | "
                  f"{row['max_abs_diff']:.1e} | {row['top1']:.0%} | {row['seconds']} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
