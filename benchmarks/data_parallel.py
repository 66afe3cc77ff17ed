"""Epoch time of ``portaclass train`` on 1 device vs N, per backend, runs
interleaved (1, N, 1, N ...) in fresh processes (docs/benchmarks.md, "Data
parallel"). On a machine without GPUs, N virtual CPU devices
(``PORTACLASS_CPU_DEVICES``) share the same cores: the ratio is the engine's
overhead, not a speed-up.

    python benchmarks/data_parallel.py --backends jax,torch,tensorflow --devices 2 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(backend: str, devices: int, args, out: Path) -> dict:
    command = [sys.executable, "-m", "portaclass", "train", "--backend", backend, "--data", args.data,
               "--model", args.model, "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
               "--epochs", str(args.epochs), "--no-report", "--quiet", "--out", str(out)]
    if devices > 1:
        command += ["--devices", str(devices)]
    env = {**os.environ, "PORTACLASS_JAX_CACHE": "0"}
    if not args.gpu:
        env["PORTACLASS_CPU_DEVICES"] = str(args.devices)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{backend} on {devices}: {done.stderr[-2000:]}")
    with open(out / "history.csv") as handle:
        epochs = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    metrics = json.loads((out / "metrics.json").read_text())
    return {"backend": backend, "devices": devices, "epoch_s": statistics.median(epochs[1:] or epochs),
            "first_epoch_s": epochs[0], "seconds": metrics["seconds"], "accuracy": metrics["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="real devices: do not split the CPU")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for backend in args.backends.split(","):
                for devices in (1, args.devices):
                    row = one_run(backend, devices, args, Path(scratch) / f"{backend}-{devices}-{round_index}")
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    print(f"\n| backend | epoch s, 1 device | epoch s, {args.devices} devices | ratio | accuracy 1 / {args.devices} |")
    print("| --- | ---: | ---: | ---: | --- |")
    for backend in args.backends.split(","):
        one = [r for r in rows if r["backend"] == backend and r["devices"] == 1]
        many = [r for r in rows if r["backend"] == backend and r["devices"] == args.devices]
        a, b = statistics.median(r["epoch_s"] for r in one), statistics.median(r["epoch_s"] for r in many)
        print(f"| {backend} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {one[-1]['accuracy']:.3f} / {many[-1]['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
