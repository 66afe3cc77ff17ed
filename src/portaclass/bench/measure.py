"""One bench measurement, in the fresh interpreter ``bench.runner`` starts
for it: ``python -m portaclass.bench.measure '<job JSON>'`` prints one JSON
line (timm's benchmark.py idea: a runner returning a flat dict).

A job is one row (a Keras backend, a native PyTorch variant, ONNX Runtime,
or ``prepare``, which writes the files the other rows start from) at one
batch size. Every row trains on the same synthetic batch (or the same image
folder) from the same initial weights:

* Keras rows build the registry model with the seed (bit-identical weights
  on every backend, tests/models/test_init.py), compile it as ``portaclass
  train`` does (train.fit.compile_classifier: loss + accuracy metric) with
  SGD and momentum, and call ``train_on_batch`` / ``predict_on_batch``.
* native rows load the same weights into bench/native_torch.py's twin and
  run the plain loop (zero_grad, forward, cross-entropy, backward, step).
* onnxruntime predicts with the model ``portaclass export`` wrote.

The first step is timed on its own (``compile_s``: tracing, XLA or
oneDNN's first-call set-up); ``step_time_s`` is the median of the next
``steps``. Each timed call ends with its result on the host, so nothing
asynchronous is left running when the clock stops.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from portaclass.bench.options import NATIVE_TORCH, NATIVE_TORCH_CHANNELS_LAST, ONNXRUNTIME

LEARNING_RATE = 0.01
MOMENTUM = 0.9


def synthetic_batch(job: dict) -> tuple[np.ndarray, np.ndarray]:
    """The batch every row trains on: NHWC float32 in [0, 1) and labels."""
    rng = np.random.default_rng(job["seed"])
    size, batch = job["image_size"], job["batch_size"]
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, job["num_classes"], batch).astype(np.int64)
    return x, y


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def summary(first_step: float, steps: list[float], batch: int, first_predict: float | None,
            predicts: list[float], peak_bytes: int, **extra) -> dict:
    """The flat row bench.json records."""
    step = statistics.median(steps) if steps else None
    predict = statistics.median(predicts) if predicts else None
    return {"compile_s": first_step, "step_time_s": step,
            "images_per_s": batch / step if step else None,
            "predict_compile_s": first_predict, "predict_time_s": predict,
            "predict_images_per_s": batch / predict if predict else None,
            "peak_memory_bytes": peak_bytes, **extra}


def process_peak_rss() -> int:
    """For the rows without keras: ``backend.peak_memory`` would import it
    (``portaclass.backend`` picks a Keras backend on import)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# -- Keras rows -----------------------------------------------------------------------


class BatchClock:
    """Times ``fit`` batch by batch: the first batch from the start of
    training (compiling included), then the gaps between batch ends, which
    include waiting for the input pipeline."""

    def __init__(self):
        self.start = None
        self.ends: list[float] = []

    def callback(self):
        import keras

        clock = self

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                clock.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                clock.ends.append(time.perf_counter())

        return Clock()

    def first_and_steps(self) -> tuple[float, list[float]]:
        return self.ends[0] - self.start, list(np.diff(self.ends))


def measure_keras(job: dict) -> dict:
    import keras

    from portaclass import backend
    from portaclass.layout import data_format, to_model_layout
    from portaclass.models import create_model
    from portaclass.models.flops import count_flops
    from portaclass.train.fit import compile_classifier
    from portaclass.train.optim import make_optimizer

    size, batch, steps = job["image_size"], job["batch_size"], job["steps"]
    scope = backend.on_device(job["device"]) if job.get("device") else contextlib.nullcontext()
    with scope:
        model = create_model(job["model"], job["num_classes"], (size, size, 3), seed=job["seed"])
        compile_classifier(model, make_optimizer("sgd", LEARNING_RATE, momentum=MOMENTUM))
        x, y = synthetic_batch(job)
        x = keras.ops.convert_to_tensor(to_model_layout(x))
        y = keras.ops.convert_to_tensor(y)
        if job.get("real_data"):
            first, step_times = _fit_real_data(model, job, data_format())
        else:
            first = timed(lambda: model.train_on_batch(x, y))  # returns NumPy: the step is done
            step_times = [timed(lambda: model.train_on_batch(x, y)) for _ in range(steps)]
        first_predict = timed(lambda: model.predict_on_batch(x))
        predicts = [timed(lambda: model.predict_on_batch(x)) for _ in range(steps)]
        device = job.get("device") or ("gpu" if backend.has_gpu() else "cpu")
        return summary(first, step_times, batch, first_predict, predicts, backend.peak_memory(device),
                       device=device, data_format=data_format(), forward_macs=count_flops(model))


def _fit_real_data(model, job: dict, fmt: str) -> tuple[float, list[float]]:
    """``steps`` + 1 batches of ``model.fit`` on the folder through
    portaclass' pipeline (decode, the light augmentation, normalise)."""
    from portaclass.data.loading import load_dataset
    from portaclass.data.pipeline import make_pipeline
    from portaclass.models import get_spec

    size = job["image_size"]
    dataset = load_dataset(job["real_data"], size, val_split=0.0, test_split=0.0, seed=job["seed"])
    pipeline = make_pipeline(dataset.train, job["batch_size"], preprocessing=get_spec(job["model"]).preprocessing,
                             image_size=size, augment="light", seed=job["seed"],
                             channels_first=fmt == "channels_first")
    wanted = job["steps"] + 1
    clock = BatchClock()
    model.fit(pipeline, epochs=math.ceil(wanted / len(pipeline)), verbose=0, callbacks=[clock.callback()])
    first, gaps = clock.first_and_steps()
    per_epoch = len(pipeline)  # a gap across an epoch's end also times on_epoch_end: left out
    return first, [gap for index, gap in enumerate(gaps, start=1) if index % per_epoch][:job["steps"]]


# -- native PyTorch rows ------------------------------------------------------------------


def measure_native(job: dict) -> dict:
    import torch

    from portaclass.bench import native_torch

    channels_last = job["row"] == NATIVE_TORCH_CHANNELS_LAST
    cuda = torch.cuda.is_available() and (job.get("device") or "gpu").startswith("gpu")
    device = torch.device("cuda" if cuda else "cpu")
    size, batch, steps = job["image_size"], job["batch_size"], job["steps"]
    model = native_torch.build_resnet18(job["num_classes"], size)
    model.load_state_dict(torch.load(job["native_weights"], weights_only=True))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    x, y = synthetic_batch(job)
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.from_numpy(y).to(device)

    def step(images, labels):
        model.train()
        native_torch.train_step(model, images, labels, optimizer)

    if job.get("real_data"):
        first, step_times = _native_real_data(job, step, device, memory_format)
    else:
        first = timed(lambda: step(x, y))
        step_times = [timed(lambda: step(x, y)) for _ in range(steps)]

    def predict():
        model.eval()
        with torch.inference_mode():
            model(x).cpu()

    first_predict = timed(predict)
    predicts = [timed(predict) for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated() if cuda else process_peak_rss()
    return summary(first, step_times, batch, first_predict, predicts, peak,
                   device="gpu" if cuda else "cpu",
                   data_format="channels_last" if channels_last else "channels_first")


def _native_real_data(job: dict, step, device, memory_format) -> tuple[float, list[float]]:
    """The plain script's loader (bench/native_torch.py) over the folder."""
    from portaclass.bench import native_torch

    root = Path(job["real_data"]).expanduser()
    root = root / "train" if (root / "train").is_dir() else root
    paths, labels, _ = native_torch.image_folder(root)
    loader = native_torch.make_loader(paths, labels, image_size=job["image_size"],
                                      batch_size=job["batch_size"], augment="light", shuffle=True,
                                      seed=job["seed"])
    ends, start = [], time.perf_counter()
    while len(ends) <= job["steps"]:
        for images, labels in loader:
            step(images.to(device).contiguous(memory_format=memory_format), labels.to(device))
            ends.append(time.perf_counter())
            if len(ends) > job["steps"]:
                break
    return ends[0] - start, list(np.diff(ends))


# -- ONNX Runtime --------------------------------------------------------------------


def measure_onnxruntime(job: dict) -> dict:
    from portaclass.export.exported import load_exported

    model = load_exported(job["onnx_file"])
    x, _ = synthetic_batch(job)
    first_predict = timed(lambda: model.predict_on_batch(x))
    predicts = [timed(lambda: model.predict_on_batch(x)) for _ in range(job["steps"])]
    return summary(None, [], job["batch_size"], first_predict, predicts, process_peak_rss(),
                   device="cpu", data_format="channels_last")


# -- the files the rows start from ----------------------------------------------------------


def prepare(job: dict) -> dict:
    """The model once, under the torch backend where native rows need its
    weights: a ``.keras`` file (exported to ONNX for the onnxruntime row) and
    the native twin's ``state_dict`` with the very same numbers."""
    from portaclass.models import create_model

    folder = Path(job["folder"])
    size = job["image_size"]
    model = create_model(job["model"], job["num_classes"], (size, size, 3), seed=job["seed"])
    written = {}
    if job.get("native"):
        import torch

        from portaclass.bench import native_torch

        twin = native_torch.build_resnet18(job["num_classes"], size)
        native_torch.copy_keras_weights(twin, model)
        written["native_weights"] = str(folder / "native_init.pt")
        torch.save(twin.state_dict(), written["native_weights"])
    if job.get("onnx"):
        from portaclass.export import export_model

        model.save(folder / "model.keras")
        result = export_model(folder / "model.keras", "onnx", folder / "model.onnx", overwrite=True)
        written["onnx_file"] = str(result.path)
    return written


def check_device(job: dict) -> dict:
    """Fails, naming what is there, when the backend cannot see the device."""
    from portaclass import backend

    with backend.on_device(job["device"]):
        return {"device": job["device"]}


MEASURES = {NATIVE_TORCH: measure_native, NATIVE_TORCH_CHANNELS_LAST: measure_native,
            ONNXRUNTIME: measure_onnxruntime, "prepare": prepare, "check_device": check_device}


def main(argv: list[str]) -> None:
    job = json.loads(argv[0])
    measure = MEASURES.get(job["row"], measure_keras)
    print(json.dumps(measure(job)))


if __name__ == "__main__":
    main(sys.argv[1:])
