"""portaclass' input pipeline per augmentation preset: images/s for one epoch
over the photo-like JPEGs of ``data_pipeline.py`` (decode, resize to 224,
augment, normalise), each preset in a fresh interpreter, presets interleaved,
median of the repeats.

    python benchmarks/pipeline_presets.py --count 500 --repeats 3 --backend torch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

# benchmarks/ is sys.path[0] when this script runs
from data_pipeline import BATCH_SIZE, IMAGE_SIZE, run_rounds, write_photos

PRESETS = ("light", "standard", "strong")


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
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.path.expanduser("~/.cache/portaclass/bench-photos")))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.cache_dir / f"photos-{args.count}" / "images"
    if args.measure:
        print(json.dumps({"images_per_s": measure(folder, args.measure)}))
        return
    write_photos(folder, args.count)
    presets = args.presets.split(",")
    results = run_rounds(__file__, args, {p: (p, args.backend) for p in presets})
    print(f"\n{args.count} JPEGs -> {IMAGE_SIZE} px, {args.backend} backend, {os.cpu_count()} CPU cores")
    for preset, rates in results.items():
        print(f"| {preset} | {statistics.median(rates):.1f} |")


if __name__ == "__main__":
    main()
