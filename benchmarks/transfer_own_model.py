"""Offline proof of transfer learning: pretrain on `shapes`, transfer to a
small slice of `digits`, and compare with training from scratch on the same
images for the same number of epochs.

    .venv/bin/python benchmarks/transfer_own_model.py --backend torch

Prints a Markdown table (median test accuracy over seeds) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--budget-epochs", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=10, help="digits training images per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for the pretraining run")
    return parser.parse_args()


def small_train_split(dataset, per_class: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = dataset.train.labels
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in np.unique(labels)])
    return dataset.train.subset(np.sort(keep))


def main() -> None:
    args = parse_args()
    import portaclass

    portaclass.use_backend(args.backend)
    from portaclass import layout
    from portaclass._lazy import keras
    from portaclass.data import load_dataset, make_pipeline
    from portaclass.models import Preprocessing, build_transfer_model, create_model, unfreeze
    from portaclass.train.fit import compile_classifier
    from portaclass.train.runner import TrainOptions, run_training

    out = Path(args.out or tempfile.mkdtemp(prefix="transfer-bench-")) / "pretrain-shapes"
    start = time.perf_counter()
    pretrain = run_training(TrainOptions(data="shapes", model="simple_cnn", image_size=32,
                                         epochs=args.pretrain_epochs, out=str(out),
                                         quiet=True), log=lambda line: None)
    print(f"pretrained on shapes: test accuracy {pretrain.metrics['accuracy']:.3f} "
          f"in {time.perf_counter() - start:.0f} s")

    digits = load_dataset("digits", 32, channels=3, val_split=0.0, test_split=0.3, seed=0)
    prep = Preprocessing()
    cf = layout.data_format() == layout.CHANNELS_FIRST

    def pipe(split, train, seed):
        return make_pipeline(split, 16, preprocessing=prep, image_size=32, channels=3, shuffle=train,
                             seed=seed, channels_first=cf)

    results: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        train = small_train_split(digits, args.per_class, seed)
        test = pipe(digits.test, False, seed)
        backbone = out / "model.keras"
        # name -> (model, base to unfreeze or None, base batchnorm mode)
        candidates = {
            "from scratch": (create_model("simple_cnn", 10, (32, 32, 3), seed=seed), None, None),
            "transfer, head only (base frozen)": (*build_transfer_model(backbone, 10, seed=seed), None),
            "transfer, all unfrozen, BatchNorm frozen": (*build_transfer_model(backbone, 10, seed=seed), "frozen"),
            "transfer, all unfrozen, BatchNorm adapts": (
                *build_transfer_model(backbone, 10, seed=seed, batchnorm="adapt"), "adapt"),
        }
        for name, (model, base, batchnorm) in candidates.items():
            if batchnorm:
                unfreeze(base, "all", batchnorm=batchnorm)
            compile_classifier(model, keras.optimizers.Adam(1e-3))
            model.fit(pipe(train, True, seed), epochs=args.budget_epochs, verbose=0)
            accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
            results.setdefault(name, []).append(float(accuracy))
            print(f"seed {seed} {name}: {accuracy:.3f}")

    print(f"\nbackend {args.backend}; digits: {args.per_class} training images per class, "
          f"{args.budget_epochs} epochs, test on {len(digits.test)} held-out images; "
          f"median of {args.seeds} seeds\n")
    print("| model | median test accuracy | per seed |\n| --- | --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
