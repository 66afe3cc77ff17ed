"""Input-pipeline throughput: portaclass' PyDataset vs torch DataLoader vs
Keras' tf.data ``image_dataset_from_directory``, on the same photo-like JPEGs.

Each loader decodes, resizes to 252x252 and applies a light augmentation
(random 224x224 crop + random horizontal flip; portaclass' ``light`` preset)
for one epoch;
throughput is images/s. Every measurement runs in a fresh interpreter (the
Keras backend is fixed per process), loaders interleaved A B C A B C, and the
median of the repeats is reported.

    python benchmarks/data_pipeline.py --count 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

IMAGE_SIZE = 224
DECODE_SIZE = 252  # portaclass' light preset decodes 12.5% larger, then random-crops
BATCH_SIZE = 32
LOADERS = {  # name -> Keras backend its process runs under
    "portaclass (torch backend)": ("portaclass", "torch"),
    "torch DataLoader (PIL)": ("torch", "torch"),
    "tf.data image_dataset_from_directory": ("tfdata", "tensorflow"),
}


def write_photos(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` photo-like JPEGs, 500-2000 px per side, in two class folders:
    smooth colour fields plus blurred blobs and sensor-like noise, so they
    compress like photos (not like flat synthetic images)."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    for i in range(count):
        path = folder / f"class_{i % 2}" / f"photo_{i:05d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        width, height = (int(v) for v in rng.integers(500, 2001, 2))
        coarse = rng.integers(0, 255, (6, 8, 3), np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        detail = Image.fromarray(rng.integers(0, 255, (height // 8, width // 8, 3), np.uint8))
        detail = detail.resize((width, height), Image.BILINEAR).filter(ImageFilter.GaussianBlur(2))
        image = Image.blend(image, detail, 0.35)
        noise = rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    return folder


def setup_portaclass(folder: Path):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from portaclass.data import from_directory, make_pipeline

    dataset = from_directory(folder, val_split=0, test_split=0, cache_dir=folder.parent / "scan-cache")
    pipeline = make_pipeline(dataset.train, BATCH_SIZE, image_size=IMAGE_SIZE, augment="light")
    # The adapter model.fit uses: worker threads, prefetch queue.
    adapter = PyDatasetAdapter(pipeline, shuffle=False)

    def epoch() -> int:
        seen = sum(len(y) for _, y in adapter.get_numpy_iterator())
        adapter.on_epoch_end()
        return seen

    return epoch


def setup_torch(folder: Path):
    import numpy as np
    import torch
    from PIL import Image

    paths = sorted(folder.rglob("*.jpg"))

    class Photos(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            # the usual hand-written PIL pipeline: decode, resize, random crop, flip
            image = Image.open(paths[i]).convert("RGB").resize((DECODE_SIZE, DECODE_SIZE), Image.BILINEAR)
            rng = np.random.default_rng(i)
            left, top = rng.integers(0, DECODE_SIZE - IMAGE_SIZE + 1, 2)
            image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            return torch.from_numpy(np.asarray(image, np.float32) / 255.0), int(paths[i].parent.name[-1])

    loader = torch.utils.data.DataLoader(Photos(), batch_size=BATCH_SIZE, shuffle=True, num_workers=2)
    return lambda: sum(len(y) for _, y in loader)


def setup_tfdata(folder: Path):
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        folder, image_size=(DECODE_SIZE, DECODE_SIZE), batch_size=BATCH_SIZE, verbose=False)
    augment = keras.Sequential([keras.layers.RandomCrop(IMAGE_SIZE, IMAGE_SIZE),
                                keras.layers.RandomFlip("horizontal")])
    dataset = dataset.map(lambda x, y: (augment(x, training=True) / 255.0, y),
                          num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return lambda: sum(int(y.shape[0]) for _, y in dataset)


def measure(loader: str, folder: Path) -> float:
    """One epoch in this process; images/s. Imports, folder indexing and
    pipeline construction happen before the clock starts, for every loader."""
    setup = {"portaclass": setup_portaclass, "torch": setup_torch, "tfdata": setup_tfdata}[loader]
    epoch = setup(folder)
    start = time.perf_counter()
    seen = epoch()
    return seen / (time.perf_counter() - start)


def run_rounds(script: str, args, jobs: dict[str, tuple[str, str]]) -> dict[str, list[float]]:
    """``args.repeats`` interleaved rounds over ``jobs`` (name -> (value of
    ``--measure``, Keras backend)); images/s per name, in round order."""
    from portaclass.backend_process import interleaved_rounds

    runs = {name: (["--measure", what], backend) for name, (what, backend) in jobs.items()}
    results = interleaved_rounds(script, ["--count", str(args.count), "--cache-dir", str(args.cache_dir)],
                                 runs, args.repeats, report=lambda line: print(line, flush=True))
    return {name: [r["images_per_s"] for r in rates] for name, rates in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="number of JPEGs to write and read")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of A B C measurements")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.path.expanduser("~/.cache/portaclass/bench-photos")))
    parser.add_argument("--measure", choices=["portaclass", "torch", "tfdata"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.cache_dir / f"photos-{args.count}" / "images"
    if args.measure:
        print(json.dumps({"images_per_s": measure(args.measure, folder)}))
        return
    write_photos(folder, args.count)
    results = run_rounds(__file__, args, LOADERS)
    print(f"\n{args.count} JPEGs 500-2000 px -> {DECODE_SIZE} -> random crop {IMAGE_SIZE} + flip, "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    baseline = statistics.median(results["tf.data image_dataset_from_directory"])
    for name, rates in results.items():
        median = statistics.median(rates)
        print(f"| {name} | {median:.1f} | {median / baseline:.2f}x |")


if __name__ == "__main__":
    main()
