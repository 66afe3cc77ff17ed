"""Seconds per epoch of one training run in several variants, per backend:
what ``--deterministic`` costs, or what mixed precision gains. Each run is a
fresh interpreter, the variants interleaved (A B A B ...), median of the
rounds; the first epoch (which compiles on JAX) is left out.

    python benchmarks/train_variants.py --variants default,deterministic --rounds 3 --epochs 3
    python benchmarks/train_variants.py --variants float32,mixed_float16,mixed_bfloat16   # on a GPU

``--deterministic`` sets torch.use_deterministic_algorithms, TensorFlow's op
determinism and XLA's deterministic GPU ops, and reads data on one thread. A
precision a device can't run well falls back to float32 (saying so): the
table names the precision each run used, so a fallback can't pass for a
speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

from portaclass.backend_process import interleaved_rounds
from portaclass.config import BACKENDS

VARIANTS = {  # name -> TrainOptions fields
    "default": {},
    "deterministic": {"deterministic": True},
    "float32": {"precision": "float32"},
    "mixed_float16": {"precision": "mixed_float16"},
    "mixed_bfloat16": {"precision": "mixed_bfloat16"},
}


def measure(args) -> dict:
    """One run in this process: the median epoch time after the first, and
    the precision that ran."""
    from portaclass.run import Run
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import run_training

    out = Path(tempfile.mkdtemp(prefix="train-variant-")) / "run"
    result = run_training(TrainOptions(data=args.data, model=args.model, image_size=args.image_size,
                                       batch_size=args.batch_size, epochs=args.epochs, augment=args.augment,
                                       out=str(out), quiet=True, report=False,
                                       **VARIANTS[args.measure]),
                          log=lambda line: None)
    run = Run.open(result.run_dir)
    seconds = [float(row["epoch_seconds"]) for row in run.history()][1:]
    return {"epoch_seconds": statistics.median(seconds), "precision": run.options["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default,deterministic",
                        help=f"comma-separated, the first is the baseline: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--measure", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or args.epochs < 2:
        parser.error(f"unknown variants {unknown}" if unknown else "--epochs must be at least 2")
    script_args = ["--epochs", str(args.epochs), "--data", args.data, "--model", args.model,
                   "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                   "--augment", args.augment]
    backends = args.backends.split(",")
    jobs = {f"{backend} {variant}": (["--measure", variant], backend)
            for backend in backends for variant in variants}
    results = interleaved_rounds(__file__, script_args, jobs, args.rounds,
                                 report=lambda line: print(line, flush=True))
    print(f"\n{args.data} at {args.image_size} px, {args.model}, batch {args.batch_size}, augment "
          f"{args.augment}, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; "
          f"seconds per epoch (precision that ran), median of {args.rounds} rounds")
    print("| backend | " + " | ".join(variants) + " | " + " | ".join(f"{v} / {variants[0]}" for v in variants[1:])
          + " |\n|---|" + "---:|" * (2 * len(variants) - 1))
    for backend in backends:
        medians = {v: statistics.median(r["epoch_seconds"] for r in results[f"{backend} {v}"]) for v in variants}
        ran = {v: results[f"{backend} {v}"][0]["precision"] for v in variants}
        cells = [f"{medians[v]:.2f} ({ran[v]})" for v in variants]
        ratios = [f"{medians[v] / medians[variants[0]]:.2f}x" for v in variants[1:]]
        print(f"| {backend} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
