"""Milliseconds per training step of one registry model in each precision, on
one backend, with the batch already on the device: the arithmetic alone, no
data pipeline. What ``--precision`` can gain where the input keeps up
(``train_variants.py`` measures whole runs, input included).

    KERAS_BACKEND=jax python benchmarks/train_step.py --model resnet50 --image-size 224 --batch-size 128

The model is built and compiled the way ``portaclass train`` does (the
registry's builder, Adam; Keras wraps it in a LossScaleOptimizer under
mixed_float16); each precision gets a fresh model, three warm-up steps
(JAX compiles there), then ``--steps`` timed steps, each synchronised by
reading its loss back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def step_times(model_name: str, precision: str, size: int, batch: int, steps: int) -> dict:
    import keras
    import numpy as np

    from portaclass import backend
    from portaclass.models import create_model
    from portaclass.train.precision import dtype_policy

    rng = np.random.default_rng(0)
    with dtype_policy(precision):
        model = create_model(model_name, 10, (size, size, 3), seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        x = keras.ops.convert_to_tensor(rng.random((batch, size, size, 3), dtype=np.float32))
        y = keras.ops.convert_to_tensor(rng.integers(0, 10, batch))
        for _ in range(3):
            model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            loss = model.train_on_batch(x, y)
            float(np.asarray(backend.to_numpy(loss)))  # the step has finished
            times.append(time.perf_counter() - start)
    return {"precision": precision, "ms_per_step": 1000 * statistics.median(times),
            "head_dtype": model.get_layer("predictions").compute_dtype}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precisions", default="float32,mixed_float16,mixed_bfloat16")
    args = parser.parse_args()
    from portaclass import backend

    device = next((d for d in backend.list_devices() if d.kind == "gpu"), backend.list_devices()[0])
    rows = [step_times(args.model, p, args.image_size, args.batch_size, args.steps)
            for p in args.precisions.split(",")]
    base = rows[0]["ms_per_step"]
    print(json.dumps(rows))
    print(f"\n{args.model} at {args.image_size} px, batch {args.batch_size}, {backend.NAME} on {device.name}; "
          f"median ms per step of {args.steps}")
    print("| backend | precision | ms/step | images/s | speed-up |\n| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        ms = row["ms_per_step"]
        print(f"| {backend.NAME} | {row['precision']} | {ms:.1f} | {1000 * args.batch_size / ms:.0f} | "
              f"{base / ms:.2f}x |")


if __name__ == "__main__":
    main()
