"""The numbers of ``portaclass parity``: how far one backend's arrays are
from the reference backend's, and the tolerances they are held to.

"Relative" is per tensor: ``max|a - b| / max|b|``, ``b`` the reference. It is
the largest difference measured against the tensor's own scale, so a
difference in an element near zero is not blown up the way an element-wise
``|a - b| / |b|`` would blow it up; a reference that is all zeros gives 0
when the other is all zeros too, and infinity otherwise. NaN anywhere (in
either) is infinitely different.

For a list of tensors (gradients, weights) the worst tensor's figure counts,
and it is named; there the scale of a tensor is at least ``NOISE_FLOOR``
times the largest tensor's (``max|a - b| / max(max|b|, NOISE_FLOOR * S)``).
Some gradients are zero in exact arithmetic and rounding noise in float32:
an attention key's bias (softmax ignores a shift shared by every key), a
BatchNormalization's beta or a conv bias when another BatchNormalization
re-centres what follows, and the moving mean fed by such a centred batch.
Measured on the registry, those tensors peak at 1e-10..1e-8 of the largest
gradient and every other one at 2e-3 or more (docs/parity.md): compared with
their own scale, noise would be a 100 % difference.

Training-mode results (and so the step) are not a smooth function of
rounding: a ReLU unit whose input is within rounding of zero is on or off
depending on the kernel's summation order, and each flip moves the
gradients by a step, largest where a BatchNormalization averages few values
(small images, small batches). Measured: mobilenet_v2 at 32x32, batch 4, one
unit of ``block_4_expand_relu`` at +8e-7 on TensorFlow (oneDNN) and -1e-6 on
PyTorch moves a gradient by 10 % of its tensor's largest value. So the
reference measures its own *rounding noise* (``numerics.with_rounding_noise``:
the same batch with rounding-sized changes), and a training-mode quantity
passes up to ``NOISE_MARGIN`` times that noise where it exceeds the
tolerance. Inference is continuous in rounding and keeps its tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# float32 tolerances on the relative difference (the matrix: absolute, on
# probabilities). Forward passes agree to ~1e-6 on every registry model
# (docs/parity.md); a step compounds the forward and backward passes.
TOLERANCES = {
    "logits (inference)": 1e-5,
    "logits (training)": 1e-5,
    "loss": 1e-5,
    "gradients": 1e-4,
    "weights after one step": 1e-4,
}
MATRIX_TOLERANCE = 1e-4
# Quantities of a training-mode pass, held to their rounding noise too.
NOISE_CALIBRATED = ("logits (training)", "loss", "gradients", "weights after one step")
NOISE_MARGIN = 2.0
# A tensor's scale is at least this fraction of the largest tensor's.
NOISE_FLOOR = 1e-3


@dataclass(frozen=True)
class Difference:
    """How far another backend is from the reference on one quantity;
    ``noise``: how far the reference moves from itself when its input gets
    rounding noise (``numerics.with_rounding_noise``)."""

    quantity: str  # a key of TOLERANCES
    max_abs: float
    relative: float
    worst: str | None = None  # the variable with the largest relative difference
    noise: float = 0.0

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.quantity]

    @property
    def allowed(self) -> float:
        """The tolerance; for a training-mode quantity, ``NOISE_MARGIN``
        times the rounding noise where that is larger."""
        if self.quantity not in NOISE_CALIBRATED:
            return self.tolerance
        return max(self.tolerance, NOISE_MARGIN * self.noise)

    @property
    def passed(self) -> bool:
        return self.relative <= self.allowed

    def to_dict(self) -> dict:
        noise = _finite(self.noise) if self.quantity in NOISE_CALIBRATED else None
        return {"max_abs": _finite(self.max_abs), "relative": _finite(self.relative),
                "worst": self.worst, "tolerance": self.tolerance, "rounding_noise": noise,
                "allowed": _finite(self.allowed), "passed": self.passed}


def max_abs_difference(a, b) -> float:
    """``max|a - b|`` in float64; infinity for a NaN, an infinity or a shape mismatch."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    difference = np.abs(a - b)
    return float(difference.max()) if np.isfinite(difference).all() else math.inf


def relative_difference(a, b, floor: float = 0.0) -> float:
    """``max|a - b| / max(max|b|, floor)`` (module docstring): 0 for equal
    arrays, inf for NaNs."""
    difference = max_abs_difference(a, b)
    if difference == 0.0 or math.isinf(difference):
        return difference
    scale = max(_scale(b), floor)
    return difference / scale if scale > 0 else math.inf


def _scale(b) -> float:
    b = np.asarray(b, np.float64)
    return float(np.abs(b).max()) if b.size else 0.0


def compare_arrays(quantity: str, a, b) -> Difference:
    return Difference(quantity, max_abs_difference(a, b), relative_difference(a, b))


def compare_tensors(quantity: str, others: list, references: list, names: list[str]) -> Difference:
    """The worst of a list of tensors (per-tensor relative difference, each
    scale at least ``NOISE_FLOOR`` times the largest), naming it; the largest
    absolute difference over all of them."""
    if len(others) != len(references):
        return Difference(quantity, math.inf, math.inf, f"{len(others)} tensors vs {len(references)}")
    if not references:
        return Difference(quantity, 0.0, 0.0)
    floor = NOISE_FLOOR * max(_scale(b) for b in references)
    relatives = [relative_difference(a, b, floor) for a, b in zip(others, references)]
    worst = int(np.argmax(relatives))
    return Difference(quantity, max(max_abs_difference(a, b) for a, b in zip(others, references)),
                      relatives[worst], names[worst])


def first_divergent_layer(outputs: dict, references: dict, tolerance: float) -> tuple[str, float] | None:
    """The first layer (in the order the layers run) whose output differs
    from the reference's by more than ``tolerance`` (relative), with that
    difference; None when every layer agrees."""
    for name, reference in references.items():
        if name not in outputs:
            return name, math.inf
        relative = relative_difference(outputs[name], reference)
        if relative > tolerance:
            return name, relative
    return None


def _finite(value: float):
    """JSON has no infinity: None stands for it."""
    return None if math.isinf(value) or math.isnan(value) else value
