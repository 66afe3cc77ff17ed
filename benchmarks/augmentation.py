"""Augmentation cost per batch on each backend: portaclass' presets and its
RandAugment against ``keras.layers.RandAugment``, on the same images.

One batch is 32 random 224x224 RGB images in 0..255 (252x252 for the presets,
which random-crop to 224). Each backend runs in a fresh interpreter; every
variant gets warm-up batches first (JAX compiles each op per input shape),
then the median seconds per batch is reported.

    python benchmarks/augmentation.py --batches 10 --warmup 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from portaclass.backend_process import run_script_json

BATCH = 32
SIZE = 224
BACKENDS = ("tensorflow", "torch", "jax")


def variants():
    """name -> (callable on one batch, input side)."""
    import keras
    import numpy as np

    from portaclass.backend import to_numpy
    from portaclass.data.augment import Augmenter
    from portaclass.data.randaugment import RandAugment

    keras_randaugment = keras.layers.RandAugment(value_range=(0, 255), seed=0,
                                                 data_format="channels_last")
    # Keras' default "reflect" fill is another 20x slower on torch (see
    # docs/benchmarks.md); give it the fill our ops use, to compare designs.
    for name in ("random_shear", "random_translation", "random_rotation"):
        getattr(keras_randaugment, name).fill_mode = "constant"
    ours = RandAugment(num_ops=2, magnitude=0.5, seed=0)
    labels = np.arange(BATCH) % 10
    presets = {p: Augmenter(p, seed=0, size_hw=(SIZE, SIZE), num_classes=10)
               for p in ("light", "standard", "strong")}
    decode = presets["light"].input_size((SIZE, SIZE))[0]
    table = {
        "keras.layers.RandAugment (2 ops, constant fill)":
            (lambda x: to_numpy(keras_randaugment(x, training=True)), SIZE),
        "portaclass RandAugment (2 ops, magnitude 0.5)": (ours, SIZE),
    }
    for preset, augmenter in presets.items():
        table[f"preset {preset}"] = ((lambda a: lambda x: a(x, labels))(augmenter), decode)
    return table


def measure(batches: int, warmup: int) -> dict[str, float]:
    import numpy as np

    rng = np.random.default_rng(0)
    results = {}
    for name, (run, side) in variants().items():
        images = [rng.integers(0, 255, (BATCH, side, side, 3)).astype(np.float32) for _ in range(4)]
        for i in range(warmup):
            run(images[i % 4])
        times = []
        for i in range(batches):
            start = time.perf_counter()
            run(images[i % 4])
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="timed batches per variant")
    parser.add_argument("--warmup", type=int, default=8, help="untimed batches first")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.batches, args.warmup)))
        return
    backends = args.backends.split(",")
    results = {}
    for backend in backends:
        results[backend] = run_script_json(
            [__file__, "--measure", "--batches", str(args.batches), "--warmup", str(args.warmup)],
            backend, TF_CPP_MIN_LOG_LEVEL="3")
        print(f"{backend}: done", flush=True)
    print(f"\nseconds per batch of {BATCH} ({SIZE} px), median of {args.batches}; "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print("| variant | " + " | ".join(backends) + " |")
    print("|---|" + "---:|" * len(backends))
    for name in results[backends[0]]:
        print(f"| {name} | " + " | ".join(f"{results[b][name]:.3f}" for b in backends) + " |")
    keras_name, ours_name = list(results[backends[0]])[:2]
    print("| Keras / portaclass RandAugment | "
          + " | ".join(f"{results[b][keras_name] / results[b][ours_name]:.1f}x" for b in backends) + " |")


if __name__ == "__main__":
    main()
