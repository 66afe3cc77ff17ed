"""Milliseconds per training step and peak RSS of a Keras ResNet-18 on the
CPU under glibc malloc settings, each in a fresh process, interleaved: what a
fixed mmap threshold buys in memory and costs in time (docs/benchmarks.md,
"Lean runs").

    python benchmarks/step_memory.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from portaclass.backend_process import interleaved_rounds

SETTINGS = {
    "default": {},
    "mmap 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "mmap 4 MiB": {"MALLOC_MMAP_THRESHOLD_": "4194304"},
}


def measure(args) -> dict:
    """Three warm-up steps, then ``--steps`` timed ones; the process's peak RSS after."""
    import keras
    import numpy as np

    from portaclass.models import create_model

    size, batch = args.image_size, args.batch_size
    model = create_model("resnet18", 2, (size, size, 3), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
    y = np.arange(batch) % 2
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    ms = 1000 * (time.perf_counter() - start) / args.steps
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {"ms_per_step": ms, "peak_gb": peak_kb / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    script_args = ["--steps", str(args.steps), "--image-size", str(args.image_size),
                   "--batch-size", str(args.batch_size)]
    jobs = {name: (["--measure"], "torch", env) for name, env in SETTINGS.items()}
    results = interleaved_rounds(__file__, script_args, jobs, args.rounds)
    print("\n| glibc setting | ms/step per round | peak RSS GB per round | median ms/step |\n| --- | --- | --- | ---: |")
    for name, rows in results.items():
        steps = [row["ms_per_step"] for row in rows]
        peaks = [row["peak_gb"] for row in rows]
        print(f"| {name} | {', '.join(f'{ms:.0f}' for ms in steps)} | "
              f"{', '.join(f'{gb:.2f}' for gb in peaks)} | {statistics.median(steps):.0f} |")


if __name__ == "__main__":
    main()
