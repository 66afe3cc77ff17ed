"""Quiet framework start-up: a torch or JAX run never imports TensorFlow
(saving included: Keras' serialization asks whether TensorFlow is
available), a torch or TensorFlow run never imports JAX (Keras 3.15 imports
it when it is installed). That the terminal shows only portaclass' lines is
checked on the quickstart (tests/train/test_quickstart.py)."""

from __future__ import annotations

import json

from tests.helpers import run_python


def test_a_run_imports_no_framework_but_its_own(backend_name, tiny_images, tmp_path):
    """Every step of a run: image files decoded and augmented (``strong``:
    RandAugment, MixUp/CutMix), training, checkpoints, the saved model."""
    result = run_python(
        f"""
        import json, sys
        import portaclass
        from portaclass.run import Run
        result = portaclass.train(data={str(tiny_images)!r}, image_size=16, epochs=1, batch_size=8,
                                  augment="strong", out={str(tmp_path / "run")!r}, quiet=True,
                                  log=lambda line: None)
        import keras
        keras.saving.load_model(Run.open(result.run_dir).model_path)  # loading too
        print(json.dumps(sorted(m for m in ("tensorflow", "torch", "jax") if m in sys.modules)))
        """,
        backend_name,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [backend_name]
