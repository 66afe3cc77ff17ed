"""The first end-to-end slice: a small CNN on scikit-learn's digits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUICKSTART_SEED = 0  # fixes the split, so every backend is scored on the same images
IMAGE_SIZE = 32


@dataclass
class QuickstartResult:
    run_dir: Path
    backend: str
    accuracy: float
    seconds: float


def run_quickstart(
    out: str | None = None,
    epochs: int = 12,
    batch_size: int = 32,
    seed: int = QUICKSTART_SEED,
    quiet: bool = False,
) -> QuickstartResult:
    """Train ``simple_cnn`` on digits upscaled to 32x32 (seeded stratified
    80/20 split) and score it on the held-out 20%."""
    from portaclass.errors import UsageError

    if epochs < 1:  # checked before keras and the framework load
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    from portaclass import backend
    from portaclass.data.builtin import load_digits
    from portaclass.data.normalize import normalize
    from portaclass.data.split import split_stratified
    from portaclass.layout import to_model_layout
    from portaclass.models import create_model, get_spec
    from portaclass.train.fit import compile_classifier, fit_classifier
    from portaclass.train.run_dir import create_run_dir, environment_info, write_json

    start = time.perf_counter()
    run_dir = create_run_dir(out, "quickstart")
    backend.seed_everything(seed)
    images, labels, class_names = load_digits(IMAGE_SIZE)
    parts = split_stratified(labels, {"train": 0.0, "test": 0.2}, seed=QUICKSTART_SEED)
    prep = get_spec("simple_cnn").preprocessing
    x = to_model_layout(normalize(images, prep))
    x_train, y_train = x[parts["train"]], labels[parts["train"]]
    x_test, y_test = x[parts["test"]], labels[parts["test"]]

    config = {
        "command": "quickstart",
        "dataset": "digits",
        "model": "simple_cnn",
        "image_size": IMAGE_SIZE,
        "channels": 1,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "split": {"train": len(x_train), "test": len(x_test), "seed": QUICKSTART_SEED},
        "class_names": class_names,
        "preprocessing": prep.to_dict(),
    }
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "env.json", environment_info())

    model = create_model("simple_cnn", len(class_names), (IMAGE_SIZE, IMAGE_SIZE, 1), seed=seed)
    steps = epochs * -(-len(x_train) // batch_size)
    compile_classifier(model, learning_rate=2e-3, decay_steps=steps)
    fit_classifier(model, (x_train, y_train), (x_test, y_test), run_dir, epochs, batch_size, quiet)
    model.save(run_dir / "model.keras")

    probabilities = backend.to_numpy(model.predict(x_test, batch_size=256, verbose=0))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    seconds = time.perf_counter() - start
    write_json(
        run_dir / "metrics.json",
        {"accuracy": accuracy, "backend": backend.NAME, "test_images": int(len(y_test)),
         "seconds": round(seconds, 2)},
    )
    return QuickstartResult(run_dir, backend.NAME, accuracy, seconds)
