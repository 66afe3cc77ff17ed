"""What the backends' processes wrote, read back and compared
(``parity.compare``) into the numbers of a ``ParityReport``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from portaclass.parity import compare
from portaclass.parity.numerics import NOISE_DRAWS


def read_arrays(path: Path) -> dict:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def differences(folder: Path, backends: list[str], reference: str, names: dict) -> dict:
    """``{backend: [Difference per quantity]}`` against ``reference`` for one
    case, each carrying the reference's rounding noise (the largest change
    over its noise draws). ``names``: the reference's variable paths."""
    theirs = read_arrays(folder / reference / "measure.npz")
    draws = [_differences(read_arrays(folder / reference / f"noise{i}.npz"), theirs, names)
             for i in range(NOISE_DRAWS)]
    noise = [max(d.relative for d in same_quantity) for same_quantity in zip(*draws)]
    return {b: [dataclasses.replace(d, noise=n) for d, n in
                zip(_differences(read_arrays(folder / b / "measure.npz"), theirs, names), noise)]
            for b in backends if b != reference}


def _differences(mine: dict, theirs: dict, names: dict) -> list:
    """One ``compare.Difference`` per quantity of ``compare.TOLERANCES``."""

    def numbered(arrays, prefix, count):
        return [arrays[f"{prefix}_{i}"] for i in range(count)]

    gradients, weights = len(names["gradients"]), len(names["weights"])
    return [
        compare.compare_arrays("logits (inference)", mine["logits_inference"], theirs["logits_inference"]),
        compare.compare_arrays("logits (training)", mine["logits_training"], theirs["logits_training"]),
        compare.compare_arrays("loss", mine["loss"], theirs["loss"]),
        compare.compare_tensors("gradients", numbered(mine, "gradient", gradients),
                                numbered(theirs, "gradient", gradients), names["gradients"]),
        compare.compare_tensors("weights after one step", numbered(mine, "weight", weights),
                                numbered(theirs, "weight", weights), names["weights"]),
    ]


def matrix(folder: Path, backends: list[str], loaded: dict) -> dict:
    """``{saved on: {loaded on: max |difference| of probabilities from the
    saving backend's own, or why the file did not load or run}}``;
    ``loaded[backend]``: that backend's load results for this case."""
    predictions = {target: read_arrays(folder / target / "matrix.npz") for target in backends}
    found = {}
    for source in backends:
        own = read_arrays(folder / source / "measure.npz")["predictions"]
        found[source] = {target: loaded[target]["errors"].get(source) or
                         compare.max_abs_difference(predictions[target][source], own)
                         for target in backends}
    return found


def divergence(folder: Path, backend: str, reference: str, outputs: dict) -> dict:
    """``{"inference": ..., "training": ...}``: the first layer whose output
    differs beyond the logits' tolerance in that mode, with the difference
    (None: every layer agrees); ``{"error": ...}`` when the layers could not
    be run (``outputs``: the layers task's result per backend, a string if it failed)."""
    for b in (backend, reference):
        if isinstance(outputs.get(b), str):
            return {"error": f"{b}: {outputs[b]}"}
    mine = read_arrays(folder / backend / "layers.npz")
    theirs = read_arrays(folder / reference / "layers.npz")
    return {mode: compare.first_divergent_layer(_of_mode(mine, mode), _of_mode(theirs, mode),
                                                compare.TOLERANCES[f"logits ({mode})"])
            for mode in ("inference", "training")}


def _of_mode(arrays: dict, mode: str) -> dict:
    """``layers.npz``'s ``{"<mode>:<layer>": output}`` -> that mode's ``{layer: output}``."""
    prefix = f"{mode}:"
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
