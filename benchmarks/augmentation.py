"""Augmentation cost per batch on each backend: portaclass' presets, its
RandAugment and MixUp/CutMix against ``keras.layers.RandAugment``,
``MixUp`` and ``CutMix``, on the same images.

One batch is 32 random 224x224 RGB images in 0..255 (252x252 for ``light``
and ``standard``, which move a 224 window over them). Each backend runs in a
fresh interpreter; every variant gets warm-up batches first (JAX compiles
each op per input shape), then the median seconds per batch is reported.
portaclass' rows run on one thread here; in the pipeline each worker thread
augments its own batch.

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
    from PIL import Image

    from portaclass.backend import to_numpy
    from portaclass.data.augment import Augmenter
    from portaclass.data.geometry import warp
    from portaclass.data.mixing import apply_mix, draw_mix, one_hot
    from portaclass.data.randaugment import RandAugment

    keras_randaugment = keras.layers.RandAugment(value_range=(0, 255), seed=0,
                                                 data_format="channels_last")
    # Keras' default "reflect" fill is another 20x slower on torch (see
    # docs/benchmarks.md); give it the fill our ops use, to compare designs.
    for name in ("random_shear", "random_translation", "random_rotation"):
        getattr(keras_randaugment, name).fill_mode = "constant"
    fmt = {"data_format": "channels_last"}
    keras_mixup = keras.layers.MixUp(alpha=0.2, seed=0, **fmt)
    keras_cutmix = keras.layers.CutMix(factor=1.0, seed=0, **fmt)
    randaugment = RandAugment(num_ops=2, magnitude=0.5)
    labels = np.arange(BATCH) % 10
    soft = one_hot(labels, 10)

    def ours_randaugment(x):
        rng = np.random.default_rng(0)
        for image in x.astype(np.uint8):
            ops = randaugment.draw(rng)
            pil = warp(Image.fromarray(image), randaugment.geometry(ops, (SIZE, SIZE)), (SIZE, SIZE))
            np.asarray(randaugment.tone(pil, ops))

    def mix_of(method):
        seed = 0
        while (mix := draw_mix(np.random.default_rng(seed), BATCH, (SIZE, SIZE))).method != method:
            seed += 1
        return mix

    mixes = {method: mix_of(method) for method in ("mixup", "cutmix")}
    table = {
        "keras.layers.RandAugment (2 ops per batch, constant fill)":
            (lambda x: to_numpy(keras_randaugment(x, training=True)), SIZE),
        "portaclass RandAugment (2 ops per image, Pillow)": (ours_randaugment, SIZE),
        "keras.layers.MixUp": (lambda x: to_numpy(keras_mixup({"images": x, "labels": soft})["images"]), SIZE),
        "portaclass MixUp (NumPy)": (lambda x: apply_mix(x, soft, mixes["mixup"]), SIZE),
        "keras.layers.CutMix": (lambda x: to_numpy(keras_cutmix({"images": x, "labels": soft})["images"]), SIZE),
        "portaclass CutMix (NumPy)": (lambda x: apply_mix(x, soft, mixes["cutmix"]), SIZE),
    }
    for preset in ("light", "standard", "strong"):
        augmenter = Augmenter(preset, seed=0, size_hw=(SIZE, SIZE), num_classes=10)
        side = augmenter.input_size((SIZE, SIZE))[0]
        name = f"preset {preset}" + (" (per-image part + MixUp/CutMix)" if preset == "strong" else "")
        table[name] = ((lambda a: lambda x: a(x, labels))(augmenter), side)
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
    names = list(results[backends[0]])
    for keras_name, ours_name in zip(names[0:6:2], names[1:6:2]):
        print(f"| {keras_name.split(' (')[0]} / portaclass | "
              + " | ".join(f"{results[b][keras_name] / results[b][ours_name]:.1f}x" for b in backends) + " |")


if __name__ == "__main__":
    main()
