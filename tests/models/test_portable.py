"""A .keras file saved on one backend loads with plain keras on another,
in a process that never imports portaclass, with the same predictions."""

from __future__ import annotations

import pytest

from ..helpers import on_each_backend, run_python_json

SAVE = """
import json, numpy as np
from portaclass.models import create_model
from portaclass.backend import to_numpy
x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
np.save({dir!r} + "/x.npy", x)
for name, options in {models!r}:
    model = create_model(name, 3, (32, 32, 3), seed=0, **options)
    model.save({dir!r} + f"/{{name}}.keras")
    np.save({dir!r} + f"/{{name}}.npy", to_numpy(model.predict(x, verbose=0)))
print(json.dumps("ok"))
"""

LOAD = """
import json, sys, numpy as np, keras
x = np.load({dir!r} + "/x.npy")
diffs = {{}}
for name, _ in {models!r}:
    model = keras.saving.load_model({dir!r} + f"/{{name}}.keras")
    probs = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    diffs[name] = float(np.abs(probs - np.load({dir!r} + f"/{{name}}.npy")).max())
assert "portaclass" not in sys.modules
print(json.dumps(diffs))
"""

# One of each kind: plain CNN, residual, attention, and a keras.applications
# backbone under our head (the other applications share its machinery).
MODELS = [("simple_cnn", {}), ("resnet18", {}), ("vit_tiny", {"depth": 2}),
          ("mobilenet_v2", {})]


# Each backend saves; the next one in the ring loads (torch -> jax -> tensorflow -> torch).
LOADER_OF = {"torch": "jax", "jax": "tensorflow", "tensorflow": "torch"}


@pytest.mark.cross
def test_saved_model_loads_on_another_backend_without_portaclass(tmp_path):
    folders = {b: tmp_path / b for b in LOADER_OF}
    for folder in folders.values():
        folder.mkdir()
    on_each_backend(lambda b: run_python_json(SAVE.format(dir=str(folders[b]), models=MODELS), b))
    diffs = on_each_backend(
        lambda loader: run_python_json(
            LOAD.format(dir=str(folders[SAVER_OF[loader]]), models=MODELS), loader))
    for loader, per_model in diffs.items():
        assert sorted(per_model) == sorted(name for name, _ in MODELS)
        for name, diff in per_model.items():
            assert diff < 1e-4, f"{name}: saved on {SAVER_OF[loader]}, loaded on {loader}, max diff {diff}"


SAVER_OF = {loader: saver for saver, loader in LOADER_OF.items()}
