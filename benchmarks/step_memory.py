"""Milliseconds per training step and peak RSS of a Keras ResNet-18 on the
CPU under glibc malloc settings, each in a fresh process, interleaved: what a
fixed mmap threshold buys in memory and costs in time (docs/benchmarks.md,
"Lean runs").

    python benchmarks/step_memory.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

SETTINGS = {
    "default": {},
    "mmap 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "mmap 4 MiB": {"MALLOC_MMAP_THRESHOLD_": "4194304"},
}

CHILD = """
import time, numpy as np, keras
from portaclass.models import create_model
model = create_model("resnet18", 2, ({size}, {size}, 3), seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).random(({batch}, {size}, {size}, 3), dtype=np.float32)
y = np.arange({batch}) % 2
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range({steps}):
    model.train_on_batch(x, y)
ms = 1000 * (time.perf_counter() - start) / {steps}
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(ms, peak_kb / 1e6)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    code = CHILD.format(size=args.image_size, batch=args.batch_size, steps=args.steps)
    results = {name: [] for name in SETTINGS}
    for round_index in range(args.rounds):
        for name, extra in SETTINGS.items():
            env = dict(os.environ, KERAS_BACKEND="torch", **extra)
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            ms, peak = map(float, done.stdout.split()[-2:])
            results[name].append((ms, peak))
            print(f"round {round_index + 1}: {name}: {ms:.0f} ms/step, peak {peak:.2f} GB", flush=True)
    print("\n| glibc setting | ms/step per round | peak RSS GB per round |\n| --- | --- | --- |")
    for name, rows in results.items():
        print(f"| {name} | {', '.join(f'{ms:.0f}' for ms, _ in rows)} | "
              f"{', '.join(f'{peak:.2f}' for _, peak in rows)} |")


if __name__ == "__main__":
    main()
