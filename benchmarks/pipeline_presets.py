"""portaclass' input pipeline per augmentation preset and backend: images/s
for one epoch over the photo-like JPEGs of ``data_pipeline.py`` (decode,
resize to 224, augment, normalise), read as ``model.fit`` reads it (Keras'
PyDatasetAdapter, worker threads). Each (backend, preset) runs in a fresh
interpreter, all of them interleaved round by round; the table gives the
median of the rounds and its ratio to ``light`` on the same backend.

    python benchmarks/pipeline_presets.py --count 500 --repeats 3

``--before SRC`` adds the same jobs run with another checkout's ``src``
first on ``sys.path`` (e.g. ``git archive <commit> src | tar -x -C /tmp/before``),
interleaved with these, for a before/after table measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# benchmarks/ is sys.path[0] when this script runs
from data_pipeline import BATCH_SIZE, IMAGE_SIZE, run_rounds, write_photos

PRESETS = ("light", "standard", "strong")
BACKENDS = ("tensorflow", "torch", "jax")


def measure(folder: Path, preset: str) -> float:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from portaclass.data import from_directory, make_pipeline

    dataset = from_directory(folder, val_split=0, test_split=0, cache_dir=folder.parent / "scan-cache")
    pipeline = make_pipeline(dataset.train, BATCH_SIZE, image_size=IMAGE_SIZE, augment=preset)
    adapter = PyDatasetAdapter(pipeline, shuffle=False)  # what model.fit uses
    start = time.perf_counter()
    seen = sum(len(y) for _, y in adapter.get_numpy_iterator())
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--presets", default=",".join(PRESETS), help="light is always measured")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.path.expanduser("~/.cache/portaclass/bench-photos")))
    parser.add_argument("--before", type=Path, help="another checkout's src folder to measure too")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # PRESET or PRESET@SRC
    args = parser.parse_args()
    folder = args.cache_dir / f"photos-{args.count}" / "images"
    if args.measure:
        preset, _, src = args.measure.partition("@")
        if src:
            sys.path.insert(0, src)
        print(json.dumps({"images_per_s": measure(folder, preset)}))
        return
    write_photos(folder, args.count)
    backends = args.backends.split(",")
    presets = ["light"] + [p for p in args.presets.split(",") if p != "light"]
    jobs = {f"{backend} {preset}": (preset, backend) for backend in backends for preset in presets}
    if args.before:
        for backend in backends:
            for preset in presets:
                jobs[f"before {backend} {preset}"] = (f"{preset}@{args.before.resolve()}", backend)
    results = run_rounds(__file__, args, jobs)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"\n{args.count} JPEGs -> {IMAGE_SIZE} px, batch {BATCH_SIZE}, median of {args.repeats} rounds; "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print("| preset | " + " | ".join(f"{b} images/s | vs light" for b in backends) + " |")
    print("|---|" + "---:|---:|" * len(backends))
    for preset in presets:
        cells = [f"{medians[f'{b} {preset}']:.1f} | {medians[f'{b} {preset}'] / medians[f'{b} light']:.2f}x"
                 for b in backends]
        print(f"| `{preset}` | " + " | ".join(cells) + " |")
    if args.before:
        print("\n| preset | " + " | ".join(f"{b} before | after | after / before" for b in backends) + " |")
        print("|---|" + "---:|---:|---:|" * len(backends))
        for preset in presets:
            cells = []
            for b in backends:
                before, after = medians[f"before {b} {preset}"], medians[f"{b} {preset}"]
                cells.append(f"{before:.1f} ({before / medians[f'before {b} light']:.2f}x) | "
                             f"{after:.1f} ({after / medians[f'{b} light']:.2f}x) | {after / before:.2f}x")
            print(f"| `{preset}` | " + " | ".join(cells) + " |")
    print("\nper round (images/s): " + "; ".join(
        f"{name} " + " / ".join(f"{r:.1f}" for r in rates) for name, rates in results.items()))


if __name__ == "__main__":
    main()
