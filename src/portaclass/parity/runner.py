"""``portaclass parity``'s driver: one model file, one fixed batch, every
backend in a fresh interpreter of its own (``parity.worker``), side by side;
the arrays they write compared here (``parity.compare``) into a
``ParityReport``. This process imports NumPy, never a framework.

One process per backend does everything (``worker.run``): the reference
backend (the first) builds and saves the model, every backend measures it
(forward passes, loss, gradients, one SGD step) and saves its stepped model,
then loads every backend's stepped model (the portability matrix). Only
where a backend disagreed does a second process on it and on the reference
run the model layer by layer, to find where the difference starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portaclass import checks, config
from portaclass.backend_process import on_each_backend, subprocess_env
from portaclass.errors import BackendError, PortaclassError, UsageError
from portaclass.parity import DEFAULT_BACKENDS, results, signals
from portaclass.parity.report import ParityReport

DEFAULT_BATCH_SIZE = 8
DEFAULT_SEED = 0
# The SGD step's size: a power of two, so the gradients read back from the
# step are exact (numerics.sgd_step); about the usual 0.01.
LEARNING_RATE = 2.0**-7
WORKER_TIMEOUT_S = 3600
WORKER_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclass(frozen=True)
class ParityCase:
    """One model to compare: a registry name, its input size (default its
    declared one) and family options (``{"depth": 2}`` for vit_tiny)."""

    model: str
    image_size: int | None = None
    options: dict = field(default_factory=dict)


def run_parity(model: str, *, backends=DEFAULT_BACKENDS, image_size: int | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, seed: int = DEFAULT_SEED,
               options: dict | None = None, perturb: tuple[str, str] | None = None,
               log=None) -> ParityReport:
    """Compare one registry model across backends: logits, loss, gradients,
    one optimizer step and the portability of its saved file.

    Args:
        model: a registered model name (``list_models()``).
        backends: backend names, or one comma-separated string; the first is
            the reference the others are compared with. At least two.
        image_size: square input size (default: the model's declared one);
            at least the model's minimum.
        batch_size: images in the fixed batch.
        seed: seeds the model's initial weights and the batch.
        options: the family's options (``create_model``'s ``**options``).
        perturb: ``(backend, layer)``: add a small difference to that layer's
            weights on that backend only, to see how a disagreement is reported.
        log: called with a line for each stage (progress); None: silent.

    Returns:
        The ``ParityReport``; ``report.passed`` is False when anything is
        beyond tolerance.
    """
    case = ParityCase(model, image_size, dict(options or {}))
    return run_parity_cases([case], backends=backends, batch_size=batch_size, seed=seed,
                            perturb=perturb, log=log)[0]


def run_parity_cases(cases: list[ParityCase], *, backends=DEFAULT_BACKENDS,
                     batch_size: int = DEFAULT_BATCH_SIZE, seed: int = DEFAULT_SEED,
                     perturb: tuple[str, str] | None = None, log=None) -> list[ParityReport]:
    """``run_parity`` for several models at once, each backend's process
    doing all of them (one interpreter start per backend, not per model).
    Arguments as ``run_parity``'s; returns one report per case."""
    log = log or (lambda _line: None)
    backends = check_backends(backends)
    checks.at_least("batch_size", batch_size, 1)
    checks.seed("seed", seed)
    cases = [_checked_case(case) for case in cases]
    if perturb is not None:
        checks.choice("perturb", perturb[0], backends)
    with tempfile.TemporaryDirectory(prefix="portaclass-parity-") as folder:
        job = {"folder": folder, "seed": seed, "learning_rate": LEARNING_RATE, "backends": backends,
               "reference": backends[0], "timeout_s": WORKER_TIMEOUT_S,
               "cases": [{"key": f"case{i}", "model": c.model, "image_size": c.image_size,
                          "options": c.options} for i, c in enumerate(cases)],
               "perturb": {"backend": perturb[0], "layer": perturb[1]} if perturb else None}
        return _run(job, cases, backends, batch_size, log)


def check_backends(backends) -> tuple[str, ...]:
    """``backends`` (names or one comma-separated string) as a tuple of at
    least two distinct, installed backends; UsageError/BackendError otherwise."""
    names = backends.split(",") if isinstance(backends, str) else list(backends)
    names = tuple(name.strip().lower() for name in names if name.strip())
    for name in names:
        checks.choice("backends", name, config.BACKENDS)
    if len(set(names)) != len(names):
        raise UsageError.for_option("backends", f"names a backend twice: {','.join(names)}")
    if len(names) < 2:
        raise UsageError.for_option("backends", f"needs at least two backends to compare; "
                                    f"received {','.join(names) or 'none'}")
    for name in names:
        if not config.is_installed(name):
            raise BackendError(f"backend {name!r} is not installed: pip install 'portaclass[{name}]'")
    return names


def parse_perturb(text: str | None) -> tuple[str, str] | None:
    """``"BACKEND:LAYER"`` (the CLI's ``--perturb``) -> ``(backend, layer)``."""
    if text is None:
        return None
    backend, _, layer = text.partition(":")
    if not backend.strip() or not layer.strip():
        raise UsageError.for_option("perturb", f"must be BACKEND:LAYER; received {text!r}")
    return backend.strip().lower(), layer.strip()


def _checked_case(case: ParityCase) -> ParityCase:
    from portaclass.models.registry import check_input_size, get_spec

    spec = get_spec(case.model)
    size = case.image_size if case.image_size is not None else max(spec.preprocessing.input_size)
    checks.at_least("image_size", size, 1)
    check_input_size(spec, (size, size, 3))
    return ParityCase(case.model, int(size), case.options)


def _write_batch(folder: Path, case: ParityCase, batch_size: int, seed: int) -> None:
    """The fixed batch: images of the ``shapes`` dataset (natural-looking
    edges and flat regions; white noise would make deep features nearly
    equal across images), normalised as the model declares
    (``Preprocessing``), channels_last; labels cycle the classes, shuffled."""
    from portaclass.data.normalize import normalize
    from portaclass.data.shapes import SHAPE_CLASSES, draw_shape
    from portaclass.models.registry import get_spec
    from portaclass.parity.worker import NUM_CLASSES

    rng = np.random.default_rng(seed)
    pixels = np.stack([draw_shape(SHAPE_CLASSES[i % len(SHAPE_CLASSES)], case.image_size, rng)
                       for i in range(batch_size)])
    images = normalize(pixels, get_spec(case.model).preprocessing)
    labels = rng.permutation(np.arange(batch_size) % NUM_CLASSES)
    folder.mkdir(parents=True)
    np.savez(folder / "batch.npz", images=images, labels=labels)


def _run(job: dict, cases: list[ParityCase], backends: tuple, batch_size: int, log) -> list[ParityReport]:
    folder, reference = Path(job["folder"]), backends[0]
    for spec, case in zip(job["cases"], cases):
        _write_batch(folder / spec["key"], case, batch_size, job["seed"])
    names = ", ".join(f"{c.model} at {c.image_size}x{c.image_size}" for c in cases)
    log(f"{reference} builds {names} (seed {job['seed']}); then on {', '.join(backends)}, side by "
        "side: forward passes, loss, gradients, one SGD step, every backend's saved model loaded")
    done = _on_each(backends, lambda b: _worker("run", b, job), log)
    if isinstance(done[reference], str) and not signals.has_done(folder, "prepared", reference):
        raise BackendError(f"{reference} could not build the model: {done[reference]}")
    measured = {b: r if isinstance(r, str) else r["measured"] for b, r in done.items()}
    reports = [ParityReport.start(case, spec["key"], backends, batch_size, job, measured)
               for spec, case in zip(job["cases"], cases)]
    ran = [b for b in backends if not isinstance(measured[b], str)]
    for spec, report in zip(job["cases"], reports):
        case_folder = folder / spec["key"]
        if reference in ran:
            report.differences = results.differences(case_folder, ran, reference,
                                                     measured[reference][spec["key"]])
        report.matrix = results.matrix(case_folder, ran, {b: done[b]["loaded"][spec["key"]] for b in ran})
    localise = {b: sorted({spec["key"] for spec, report in zip(job["cases"], reports)
                           if b in report.disagreeing() or b == reference and report.disagreeing()})
                for b in ran}
    if any(localise.values()):
        where = [b for b in ran if localise[b]]
        log(f"on {', '.join(where)}: every layer's output, to find where the difference starts")
        job["data_format"] = done[reference]["data_format"]
        outputs = _on_each(where, lambda b: _worker("layers", b, {**job, "localise": localise[b]}), log)
        for spec, report in zip(job["cases"], reports):
            report.divergence = {b: results.divergence(folder / spec["key"], b, reference, outputs)
                                 for b in report.disagreeing()}
    return reports


def _on_each(backends, run, log) -> dict:
    """``run`` per backend side by side; a backend whose worker crashed maps
    to the reason (a string), the others to their results."""

    def timed(backend):
        start = time.perf_counter()
        try:
            result = run(backend)
        except WorkerCrashed as crash:
            log(f"{backend}: failed: {crash}")
            return str(crash)
        log(f"{backend}: done in {time.perf_counter() - start:.1f} s")
        return result

    return on_each_backend(timed, backends)


class WorkerCrashed(Exception):
    """A backend's worker ended without its result: the reason is the message."""


def _worker(task: str, backend: str, job: dict) -> dict:
    """Run one task of ``parity.worker`` under ``backend``; its JSON result.
    A PortaclassError in the worker is raised here again (the user's to fix);
    a crash raises WorkerCrashed with the last line of its stderr."""
    path = Path(job["folder"]) / f"job-{task}-{backend}.json"
    path.write_text(json.dumps({**job, "task": task}))
    try:
        result = subprocess.run([sys.executable, "-m", "portaclass.parity.worker", str(path)],
                                env=subprocess_env(backend, **WORKER_ENVIRONMENT),
                                capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        signals.signal_failed(job["folder"], backend, "timed out")
        raise WorkerCrashed(f"{task} took over {WORKER_TIMEOUT_S} s") from None
    lines = result.stdout.strip().splitlines()
    output = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    if result.returncode == 2 and output and "error" in output:
        raise _error_type(output["type"])(f"{backend}: {output['error']}")
    if result.returncode != 0 or output is None:
        stderr = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = (stderr[-1] if stderr else f"exit code {result.returncode}")[:300]
        signals.signal_failed(job["folder"], backend, reason)  # it may have died without saying so
        raise WorkerCrashed(reason)
    return output


def _error_type(name: str) -> type[PortaclassError]:
    from portaclass import errors

    found = getattr(errors, name, PortaclassError)
    return found if isinstance(found, type) and issubclass(found, PortaclassError) else PortaclassError
