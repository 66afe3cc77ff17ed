"""Each export format loaded in its own runtime, as a deployment would load
it: ``open_runtime(path, fmt)`` returns a function from a float32 NHWC batch
to the model's output as NumPy. The frameworks are imported here only,
inside the functions (DESIGN.md rule 1)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from portaclass.errors import ModelFileError, PortaclassError, first_line
from portaclass.export.formats import ExportFormat, check_runtime


def open_runtime(path: Path, fmt: ExportFormat):
    """ModelFileError, one line, for a file its runtime refuses."""
    check_runtime(fmt)
    try:
        return _OPENERS[fmt.name](Path(path))
    except PortaclassError:
        raise
    except Exception as error:  # each runtime has its own exceptions
        raise ModelFileError(f"{path} cannot be loaded by {fmt.name}'s runtime: "
                             f"{first_line(error)}") from None


def _onnx(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _savedmodel(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: its variables die with it

    def run(x):
        return np.asarray(loaded.serve(tf.constant(x)))

    return run


def _torch(path: Path):
    import torch

    with _tensors_only(torch):
        module = torch.export.load(str(path)).module()

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).detach().cpu().numpy()

    return run


@contextlib.contextmanager
def _tensors_only(torch):
    """``torch.load`` with ``weights_only=True`` whatever its caller asks:
    ``torch.export.load`` unpickles some weights with ``weights_only=False``,
    which runs whatever code a hostile ``.pt2`` file holds."""
    real_load = torch.load

    def load(*args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = real_load


def _openvino(path: Path):
    import openvino

    # OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has
    # bf16 instructions (AVX512_BF16, AMX): off by up to ~5e-4 from the float32
    # model on such a machine. The file is float32; so is what we run.
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.outputs[0]
    return lambda x: np.asarray(compiled(x)[output])


def _litert(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.resize_tensor_input(input_index, x.shape)  # the batch is dynamic
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    return run


def _keras(path: Path):
    from portaclass import layout
    from portaclass._lazy import backend
    from portaclass.model_files import load_keras_file

    model = load_keras_file(path)
    return lambda x: backend.to_numpy(model.predict_on_batch(layout.to_model_layout(x)))


_OPENERS = {"onnx": _onnx, "savedmodel": _savedmodel, "torch": _torch, "openvino": _openvino,
            "litert": _litert, "keras": _keras}
