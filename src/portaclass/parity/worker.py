"""The part of ``portaclass parity`` that runs under one backend, in the
fresh interpreter ``parity.runner`` starts for it:
``python -m portaclass.parity.worker JOB.json`` prints one JSON line.

Every file lives in the run's folder, one subfolder per model case
(``<case>/``; the runner writes its ``batch.npz``: channels_last images and
labels). Task ``run``, one process per backend side by side:

1. the reference backend builds each case's model with the seed and saves
   ``initial.keras``, the file every backend starts from; the others wait
   for it (``parity.signals``);
2. each backend measures it: forward passes, loss, gradients and one
   ``train_on_batch`` step (``parity.numerics``) -> ``<backend>/measure.npz``,
   and saves the stepped model -> ``<backend>/stepped.keras``; the
   reference measures its rounding noise too -> ``<backend>/noise<i>.npz``;
3. once all have measured, each loads every backend's stepped model and
   runs it on the batch (the portability matrix) -> ``<backend>/matrix.npz``.

Task ``layers`` (only where the runner found a disagreement): every layer's
output, inference and training mode -> ``<backend>/layers.npz``.

A PortaclassError (a model option the registry refuses) is printed as
``{"error": ...}`` with exit code 2; anything else is a crash, traceback on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from portaclass import config
from portaclass._lazy import backend, keras
from portaclass.errors import PortaclassError, first_line
from portaclass.parity import signals

NUM_CLASSES = 10
STEPPED = "stepped.keras"
INITIAL = "initial.keras"


def case_batch(folder: Path, data_format: str) -> tuple[np.ndarray, np.ndarray]:
    """A case's fixed batch, images in the layout its model file takes."""
    from portaclass.layout import to_model_layout

    with np.load(folder / "batch.npz") as batch:
        return to_model_layout(batch["images"], data_format), batch["labels"]


def load(path: Path):
    from portaclass.model_files import load_keras_file

    return load_keras_file(path)


def run(job: dict) -> dict:
    """Steps 1-3 of the module docstring; ``{"measured": ..., "loaded": ...}``
    per case, or ``{"skipped": reason}`` when the reference failed to build."""
    folder, me, timeout = Path(job["folder"]), backend.NAME, job["timeout_s"]
    if me == job["reference"]:
        signals.signal_done(folder, "prepared", me, prepare(job))
    prepared = signals.wait_for(folder, "prepared", [job["reference"]], timeout)[job["reference"]]
    if "failed" in prepared:
        return {"skipped": f"{job['reference']} could not build the model"}
    job = {**job, "data_format": prepared["data_format"]}
    measured = measure(job)
    signals.signal_done(folder, "measured", me)
    sources = [b for b, info in signals.wait_for(folder, "measured", job["backends"], timeout).items()
               if "failed" not in info]
    return {"measured": measured, "loaded": load_others(job, sources), "data_format": job["data_format"]}


def prepare(job: dict) -> dict:
    """Build and save every case's model; returns the layout they were built in."""
    from portaclass.models import create_model

    for case in job["cases"]:
        size = case["image_size"]
        model = create_model(case["model"], NUM_CLASSES, (size, size, 3), seed=job["seed"],
                             **case["options"])
        model.save(Path(job["folder"]) / case["key"] / INITIAL)
    return {"data_format": keras.config.image_data_format()}


def measure(job: dict) -> dict:
    """``parity.numerics``' measurements of every case on this backend; on
    the reference backend, the same again on each draw of the batch with
    rounding noise (``numerics.with_rounding_noise``)."""
    from portaclass.parity.numerics import NOISE_DRAWS, run_inference, with_rounding_noise

    results = {}
    for case in job["cases"]:
        start = time.perf_counter()
        folder = Path(job["folder"]) / case["key"]
        (folder / backend.NAME).mkdir(exist_ok=True)
        x, y = case_batch(folder, job["data_format"])
        model, arrays, info = _measure_model(folder / INITIAL, x, y, job)
        arrays["predictions"] = run_inference(model, x)
        np.savez(folder / backend.NAME / "measure.npz", **arrays)
        model.save(folder / backend.NAME / STEPPED)
        if backend.NAME == job["reference"]:
            for draw in range(NOISE_DRAWS):
                noisy = _measure_model(folder / INITIAL, with_rounding_noise(x, draw), y, job)[1]
                np.savez(folder / backend.NAME / f"noise{draw}.npz", **noisy)
        results[case["key"]] = {**info, "seconds": time.perf_counter() - start}
    return results


def _measure_model(path: Path, x, y, job: dict):
    """The model in ``path`` measured on ``(x, y)``: ``(the stepped model,
    {array name: array}, {what the runner needs to name things})``."""
    from portaclass.parity import numerics

    model = load(path)
    _perturbed(model, job)
    changed = numerics.neutralise_random_layers(model)
    logits = numerics.inference_logits(model, numerics.logits_model(model), x)
    step = numerics.sgd_step(model, x, y, job["learning_rate"])
    weights = numerics.float_weights(model)
    arrays = {"logits_inference": logits, "logits_training": step.logits, "loss": np.float64(step.loss),
              **_numbered("gradient", step.gradients),
              **_numbered("weight", [backend.to_numpy(v) for v in weights])}
    numerics.restore_random_layers(model, changed)
    info = {"neutralised": changed, "gradients": [v.path for v in model.trainable_variables],
            "weights": [v.path for v in weights]}
    return model, arrays, info


def load_others(job: dict, sources: list[str]) -> dict:
    """Every measured backend's stepped model run here on each case's batch;
    ``{case: {"errors": {backend: why its file would not load or run}}}``."""
    from portaclass.parity.numerics import run_inference

    results = {}
    for case in job["cases"]:
        folder = Path(job["folder"]) / case["key"]
        x, _ = case_batch(folder, job["data_format"])
        predictions, errors = {}, {}
        for source in sources:
            try:
                predictions[source] = run_inference(load(folder / source / STEPPED), x)
            except Exception as error:  # the matrix's point: a file that won't load or run here
                errors[source] = first_line(error)
        np.savez(folder / backend.NAME / "matrix.npz", **predictions)
        results[case["key"]] = {"errors": errors}
    return results


def layers(job: dict) -> dict:
    """Every layer's output of the cases in ``job["localise"]``, inference
    then training mode (a training-mode call updates BatchNormalization's
    statistics) -> ``<backend>/layers.npz``."""
    from portaclass.parity import numerics

    for case in job["cases"]:
        if case["key"] not in job["localise"]:
            continue
        folder = Path(job["folder"]) / case["key"]
        x, _ = case_batch(folder, job["data_format"])
        model = load(folder / INITIAL)
        _perturbed(model, job)
        numerics.neutralise_random_layers(model)
        outputs = {}
        for mode in ("inference", "training"):
            found = numerics.layer_outputs(model, x, training=mode == "training")
            outputs.update({f"{mode}:{name}": value for name, value in found.items()})
        np.savez(folder / backend.NAME / "layers.npz", **outputs)
    return {}


def _perturbed(model, job: dict) -> None:
    """The deliberate difference ``--perturb BACKEND:LAYER`` asks for, on that backend only."""
    from portaclass.parity.numerics import perturb_layer

    perturb = job.get("perturb")
    if perturb and perturb["backend"] == backend.NAME:
        perturb_layer(model, perturb["layer"])


def _numbered(prefix: str, arrays: list) -> dict:
    return {f"{prefix}_{i}": a for i, a in enumerate(arrays)}


TASKS = {"run": run, "layers": layers}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = TASKS[job["task"]](job)
    except PortaclassError as error:
        signals.signal_failed(job["folder"], config.active_backend(), str(error))
        print(json.dumps({"error": str(error), "type": type(error).__name__}))
        return 2
    except BaseException as error:
        signals.signal_failed(job["folder"], config.active_backend(), first_line(error))
        raise
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
