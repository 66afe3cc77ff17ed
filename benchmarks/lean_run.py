"""Lean runs: time outside the epochs and peak memory of a `portaclass train`
run against the plain PyTorch script (issue 8, item 10).

Both train ResNet-18 at 96 px, batch 32, Adam 1e-3, on the same pre-split
folder of photo-like JPEGs (train/ + val/, the size of the ants/bees photos of
PyTorch's transfer-learning tutorial: 244 + 153 images), validating every
epoch, on the torch backend:

* portaclass: `python -m portaclass train --data DIR --model resnet18
  --image-size 96 --epochs E --batch-size 32 --backend torch --quiet`, a real
  CLI process; time inside the epochs = the sum of history.csv's
  `epoch_seconds` (training + validation). Also with `--no-report`: the
  report.html every run writes by default is work the plain script does not do.
* plain PyTorch: `python -m portaclass.bench.native_torch` (the same
  ResNet-18 by hand, a DataLoader over Pillow-decoded JPEGs, a checkpoint of
  weights + optimizer after every epoch, the final weights saved); its own
  per-epoch timer, validation included.

Each run is a fresh interpreter started by a small wrapper (this script with
`--measure`) that times the whole process and reads its peak RSS from
`getrusage(RUSAGE_CHILDREN)`: the largest single process of the run's tree
(DataLoader workers included), as /usr/bin/time reports it. Runs alternate
A B A B; medians over the rounds. The time outside the epochs is per run
(start-up, data scan, model build, saves, exit), so a few epochs measure it
as well as the recipe's 15: the default is 3 epochs, 3 rounds (about 6
minutes on 2 cores).

    python benchmarks/lean_run.py                       # quick: 3 epochs, 3 rounds
    python benchmarks/lean_run.py --epochs 15 --rounds 3   # the issue's recipe
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

# table name -> --measure value. The report (report.html: a held-out evaluation,
# Grad-CAM, figures) is work the plain script does not do: measured both ways.
JOBS = {"portaclass": "portaclass", "portaclass --no-report": "portaclass-no-report",
        "plain PyTorch": "native"}
COLUMNS = (  # result key, table header, format
    ("wall_s", "wall s", "{:.1f}"),
    ("inside_epochs_s", "inside epochs s", "{:.1f}"),
    ("outside_epochs_s", "outside epochs s", "{:.1f}"),
    ("peak_rss_gb", "peak RSS GB", "{:.2f}"),
    ("run_folder_mb", "run folder MB", "{:.0f}"),
    ("val_accuracy", "val accuracy", "{:.3f}"),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the issue's recipe: 15)")
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds; medians are reported")
    parser.add_argument("--train-images", type=int, default=244)
    parser.add_argument("--val-images", type=int, default=153)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--augment", choices=("none", "light"), default="none",
                        help="training augmentation, the same on both sides")
    parser.add_argument("--scan-cache", choices=("cold", "warm"), default="cold",
                        help="portaclass' bad-file pre-pass: an empty cache every run (a first run "
                             "on new data), or the cache of earlier runs")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.path.expanduser("~/.cache/portaclass/bench-lean")),
                        help="where the photos and the runs' folders go")
    parser.add_argument("--measure", choices=sorted(JOBS.values()), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def photos_folder(args) -> Path:
    """train/ and val/ folders of photo-like JPEGs (500-2000 px, two classes),
    written once and reused."""
    from data_pipeline import write_photos

    root = args.cache_dir / f"photos-{args.train_images}-{args.val_images}"
    write_photos(root / "train", args.train_images, seed=0)
    write_photos(root / "val", args.val_images, seed=1)
    return root


def child_command(what: str, args, data: Path, out: Path) -> list[str]:
    common = ["--data", str(data), "--image-size", str(args.image_size), "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--augment", args.augment, "--out", str(out)]
    if what.startswith("portaclass"):
        return [sys.executable, "-m", "portaclass", "train", "--model", "resnet18", *common,
                "--backend", "torch", "--quiet", *(["--no-report"] if what.endswith("no-report") else [])]
    return [sys.executable, "-m", "portaclass.bench.native_torch", *common, "--quiet"]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_child(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    """(result, wall seconds, peak RSS bytes) of one child process tree.
    Call once per wrapper process: RUSAGE_CHILDREN covers every child waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if before >= peak_kb and before:
        raise RuntimeError("RUSAGE_CHILDREN was already past this run's peak: measure in a fresh process")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result, wall, peak_kb * 1024  # ru_maxrss is in KiB on Linux


def measure(what: str, args) -> dict:
    """One run of ``what`` in a child process: the figures of one table row."""
    data = photos_folder(args)
    scratch = Path(tempfile.mkdtemp(prefix=f"lean-{what}-", dir=args.cache_dir))
    out = scratch / "run"
    env = dict(os.environ)
    if args.scan_cache == "cold":
        env["PORTACLASS_CACHE_DIR"] = str(scratch / "scan-cache")
    try:
        result, wall, peak = run_child(child_command(what, args, data, out), env)
        if what.startswith("portaclass"):
            with (out / "history.csv").open(newline="") as f:
                inside = sum(float(row["epoch_seconds"]) for row in csv.DictReader(f))
            accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
        else:
            report = json.loads(result.stdout.strip().splitlines()[-1])
            inside, accuracy = report["inside_epochs_s"], report["val_accuracy"]
        size = folder_bytes(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"wall_s": round(wall, 2), "inside_epochs_s": round(inside, 2),
            "outside_epochs_s": round(wall - inside, 2), "peak_rss_gb": round(peak / 1e9, 3),
            "run_folder_mb": round(size / 1e6, 1), "val_accuracy": round(float(accuracy), 4)}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {model}, no GPU" if model else f"{os.cpu_count()} vCPU"


def versions() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    return (f"Python {platform.python_version()}, keras {version('keras')}, torch {version('torch')}, "
            f"jax {version('jax')}, tensorflow {version('tensorflow') if version('tensorflow') != '-' else version('tensorflow-cpu')}")


def markdown_table(results: dict[str, list[dict]]) -> str:
    medians = {name: {key: statistics.median(r[key] for r in runs) for key, _, _ in COLUMNS}
               for name, runs in results.items()}
    lines = ["| | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
             "| --- |" + " ---: |" * len(COLUMNS)]
    for name, row in medians.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |")
    base = medians.get("plain PyTorch")
    for name, ours in medians.items():
        if base and name != "plain PyTorch":
            ratios = [f"{ours[key] / base[key]:.2f}x" if base[key] else "-" for key, _, _ in COLUMNS]
            lines.append(f"| {name} / plain | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    from portaclass.backend_process import run_script_json

    photos_folder(args)  # written once, before any clock starts
    script_args = ["--epochs", str(args.epochs), "--train-images", str(args.train_images),
                   "--val-images", str(args.val_images), "--image-size", str(args.image_size),
                   "--batch-size", str(args.batch_size), "--augment", args.augment,
                   "--scan-cache", args.scan_cache, "--cache-dir", str(args.cache_dir)]
    results: dict[str, list[dict]] = {name: [] for name in JOBS}
    for round_number in range(1, args.rounds + 1):
        for name, what in JOBS.items():  # A B A B: drift hits both alike
            figures = run_script_json([__file__, *script_args, "--measure", what], "torch",
                                      TF_CPP_MIN_LOG_LEVEL="3")
            results[name].append(figures)
            print(json.dumps({"run": name, "round": round_number, "epochs": args.epochs, **figures}),
                  flush=True)
    print(f"\nResNet-18, {args.image_size} px, batch {args.batch_size}, {args.epochs} epochs, augment "
          f"{args.augment}, {args.train_images} train + {args.val_images} val JPEGs (500-2000 px), torch "
          f"backend, scan cache {args.scan_cache}; median of {args.rounds} rounds (A B interleaved).")
    print(f"{machine()}; {versions()}.\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
