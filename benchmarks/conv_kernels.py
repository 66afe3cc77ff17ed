"""What bounds a backend's training step: the convolutions of portaclass'
resnet18 alone (forward + both gradients, no BatchNorm, no optimizer, no
Keras), written directly in each framework, against the whole Keras step
``portaclass bench`` measures. When a framework's bare convolutions already
take most of its step, its kernels bound it and no portaclass setting can
close the gap (docs/benchmarks.md, "Where each backend loses time").

    python benchmarks/conv_kernels.py --batch-size 32 --image-size 32 --rounds 2

Each framework runs in a fresh interpreter, rounds interleaved; the
convolutions are the resnet18 CIFAR-stem ones (3x3, stride 1 or 2, 1x1
shortcuts), each timed as one compiled/jitted function over all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from portaclass.backend_process import interleaved_rounds


def resnet18_convs(size: int) -> list[tuple[int, int, int, int, int]]:
    """(input size, in channels, out channels, kernel, stride) of every conv."""
    convs = [(size, 3, 64, 3, 1)]
    cin, spatial = 64, size
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            convs.append((spatial, cin, cout, 3, stride))
            out_spatial = -(-spatial // stride)
            convs.append((out_spatial, cout, cout, 3, 1))
            if stride != 1 or cin != cout:
                convs.append((spatial, cin, cout, 1, stride))
            cin, spatial = cout, out_spatial
    return convs


def _time(run, steps: int) -> dict:
    first = time.perf_counter()
    run()
    first = time.perf_counter() - first
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"first_s": first, "convs_s": statistics.median(times)}


def measure_jax(convs, batch: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    xs = [jnp.asarray(rng.random((batch, s, s, cin), dtype=np.float32)) for s, cin, _, _, _ in convs]
    ws = [jnp.asarray(rng.random((k, k, cin, cout), dtype=np.float32)) for _, cin, cout, k, _ in convs]

    def loss(ws, xs):
        total = 0.0
        for x, w, (*_, stride) in zip(xs, ws, convs):
            y = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            total = total + jnp.sum(y)
        return total

    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return _time(lambda: jax.block_until_ready(step(ws, xs)), steps)


def measure_torch(convs, batch: int, steps: int, channels_last: bool = False) -> dict:
    import torch

    rng = np.random.default_rng(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xs = [torch.tensor(rng.random((batch, cin, s, s), dtype=np.float32)).contiguous(memory_format=fmt)
          .requires_grad_() for s, cin, _, _, _ in convs]
    ws = [torch.tensor(rng.random((cout, cin, k, k), dtype=np.float32)).contiguous(memory_format=fmt)
          .requires_grad_() for _, cin, cout, k, _ in convs]

    def run():
        total = sum(torch.nn.functional.conv2d(x, w, stride=stride, padding=k // 2).sum()
                    for x, w, (_, _, _, k, stride) in zip(xs, ws, convs))
        total.backward()

    return _time(run, steps)


def measure_tensorflow(convs, batch: int, steps: int) -> dict:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    xs = [tf.constant(rng.random((batch, s, s, cin), dtype=np.float32)) for s, cin, _, _, _ in convs]
    ws = [tf.Variable(rng.random((k, k, cin, cout), dtype=np.float32)) for _, cin, cout, k, _ in convs]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xs)
            total = tf.add_n([tf.reduce_sum(tf.nn.conv2d(x, w, stride, "SAME"))
                              for x, w, (_, _, _, _, stride) in zip(xs, ws, convs)])
        return tape.gradient(total, [*xs, *ws])

    return _time(lambda: [g.numpy() for g in step()], steps)


MEASURES = {"jax": measure_jax, "torch": measure_torch, "tensorflow": measure_tensorflow,
            "torch-channels-last": lambda c, b, s: measure_torch(c, b, s, channels_last=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    convs = resnet18_convs(args.image_size)
    if args.measure:
        print(json.dumps(MEASURES[args.measure](convs, args.batch_size, args.steps)))
        return
    script_args = ["--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
                   "--steps", str(args.steps)]
    jobs = {name: (["--measure", name], "torch" if name.startswith("torch") else name) for name in MEASURES}
    results = interleaved_rounds(__file__, script_args, jobs, args.rounds, report=lambda line: print(line, file=sys.stderr))
    macs = sum(batch_macs(c, args.batch_size) for c in convs)
    print(f"\nresnet18's {len(convs)} convolutions, forward + gradients, batch {args.batch_size} at "
          f"{args.image_size} px ({3 * 2 * macs / 1e9:.1f} GFLOP); median of {args.steps} calls x {args.rounds} rounds")
    print("| framework | convolutions s | GFLOP/s |\n| --- | ---: | ---: |")
    for name, rows in results.items():
        seconds = statistics.median(r["convs_s"] for r in rows)
        print(f"| {name} | {seconds:.3f} | {3 * 2 * macs / seconds / 1e9:.0f} |")


def batch_macs(conv, batch: int) -> int:
    size, cin, cout, k, stride = conv
    out = -(-size // stride)
    return batch * out * out * cin * cout * k * k


if __name__ == "__main__":
    main()
