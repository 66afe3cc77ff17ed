"""Quiet framework start-up: a torch or JAX run never imports TensorFlow
(saving included: Keras' serialization asks whether TensorFlow is
available), a torch or TensorFlow run never imports JAX (Keras 3.15 imports
it when it is installed). That the terminal shows only portaclass' lines is
checked on the quickstart (tests/train/test_quickstart.py)."""

from __future__ import annotations

import json

from tests.helpers import run_python


def test_a_run_imports_no_framework_but_its_own(backend_name, tiny_images, tmp_path):
    """Every step of a `portaclass train` run: image files decoded and
    augmented (``strong``: RandAugment, MixUp/CutMix), training, checkpoints,
    the saved model, loading it back. Nor does the console script load what
    Keras imports for features portaclass never uses (scikit-learn and
    SciPy through keras.wrappers), nor matplotlib (the report at the end of
    the run draws its figures as SVG), nor, on torch, TorchDynamo
    (``torch.compile``'s tracer, which Keras imports for a decorator)."""
    run_dir = tmp_path / "run"
    result = run_python(
        f"""
        import json, sys
        from portaclass.cli import main
        code = main(["train", "--data", {str(tiny_images)!r}, "--image-size", "16", "--epochs", "1",
                     "--batch-size", "8", "--augment", "strong", "--out", {str(run_dir)!r}, "--quiet"])
        import keras
        keras.saving.load_model({str(run_dir / "model.keras")!r})
        import pathlib
        assert pathlib.Path({str(run_dir / "report.html")!r}).is_file()
        print(json.dumps([code, sorted(m for m in ("tensorflow", "torch", "jax", "sklearn", "matplotlib", "torch._dynamo")
                                   if m in sys.modules)]))
        """,
        backend_name,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [0, [backend_name]]
