"""``portaclass parity``: does a model compute the same numbers on
TensorFlow, PyTorch and JAX, and does the file one backend saves run the
same on the others?

``run_parity`` (``parity.runner``) starts one process per backend
(``parity.worker``, which measures with ``parity.numerics``), compares
their arrays (``parity.compare``) and returns a ``ParityReport``
(``parity.report``). Names resolve lazily: importing this package loads
no framework.
"""

from __future__ import annotations

from portaclass._lazy import lazy_getattr

# The reference first: torch's float32 reductions are among the most exact
# we measured (a training-mode BatchNormalization's batch variance over
# 100,352 values per channel, mobilenet_v2 at 224x224, batch 8, against
# float64: torch 1.2e-7, JAX 5e-8, TensorFlow's tf.nn.moments 1.5e-4), and it
# runs the rounding-noise draws without compiling (docs/parity.md).
DEFAULT_BACKENDS = ("torch", "tensorflow", "jax")

_LAZY = {
    "run_parity": "portaclass.parity.runner",
    "run_parity_cases": "portaclass.parity.runner",
    "ParityCase": "portaclass.parity.runner",
    "parse_perturb": "portaclass.parity.runner",
    "ParityReport": "portaclass.parity.report",
    "print_report": "portaclass.parity.report",
    "TOLERANCES": "portaclass.parity.compare",
    "MATRIX_TOLERANCE": "portaclass.parity.compare",
}

__getattr__ = lazy_getattr("portaclass.parity", _LAZY, globals())

__all__ = ["DEFAULT_BACKENDS", *sorted(_LAZY)]
