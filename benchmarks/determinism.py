"""What ``--deterministic`` costs: seconds per epoch of the same run with and
without it, per backend, each run in a fresh interpreter, the two variants
interleaved (A B A B ...), median of the rounds.

    python benchmarks/determinism.py --rounds 3 --epochs 3

``--deterministic`` sets torch.use_deterministic_algorithms, TensorFlow's op
determinism and XLA's deterministic GPU ops, and reads data on one thread.
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


def measure(args) -> dict:
    """One run in this process; the median epoch time (the first epoch,
    which compiles on JAX, left out)."""
    from portaclass.run import Run
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import run_training

    out = Path(tempfile.mkdtemp(prefix="determinism-")) / "run"
    result = run_training(TrainOptions(data="shapes", model=args.model, image_size=args.image_size,
                                       epochs=args.epochs, augment=args.augment, out=str(out), quiet=True,
                                       deterministic=args.measure == "deterministic"),
                          log=lambda line: None)
    seconds = [float(row["epoch_seconds"]) for row in Run.open(result.run_dir).history()][1:]
    return {"epoch_seconds": statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--measure", choices=["default", "deterministic"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    script_args = ["--epochs", str(args.epochs), "--model", args.model, "--image-size",
                   str(args.image_size), "--augment", args.augment]
    jobs = {f"{backend} {mode}": (["--measure", mode], backend)
            for backend in args.backends.split(",") for mode in ("default", "deterministic")}
    results = interleaved_rounds(__file__, script_args, jobs, args.rounds,
                                 report=lambda line: print(line, flush=True))
    print(f"\nshapes (2,000 images) at {args.image_size} px, {args.model}, augment {args.augment}, "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; "
          f"seconds per epoch, median of {args.rounds} rounds")
    print("| backend | default | --deterministic | cost |\n|---|---:|---:|---:|")
    for backend in args.backends.split(","):
        plain = statistics.median(r["epoch_seconds"] for r in results[f"{backend} default"])
        strict = statistics.median(r["epoch_seconds"] for r in results[f"{backend} deterministic"])
        print(f"| {backend} | {plain:.2f} | {strict:.2f} | {strict / plain:.2f}x |")


if __name__ == "__main__":
    main()
