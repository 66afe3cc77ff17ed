"""`portaclass serve`'s bad input at start: one line naming the problem,
exit 2, before the server listens."""

from __future__ import annotations

import gc
import socket

import pytest

from ..helpers import invoke_cli

pytestmark = pytest.mark.one_backend


def _fails_with(args, message):
    result = invoke_cli(["serve", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    return result


def test_a_port_in_use_is_named_before_the_model_loads(served_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _fails_with([str(served_run), "--port", str(port)], f"--port {port} on 127.0.0.1 is in use")


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_text("not a zip archive")
    _fails_with([str(fake), "--port", "0"], "model.keras")


def test_a_gpu_that_is_not_there_is_named(served_run, backend_name):
    from portaclass._lazy import backend

    if any(device.kind == "gpu" for device in backend.list_devices()):
        pytest.skip("this machine has a GPU")
    _fails_with([str(served_run), "--port", "0", "--device", "gpu"], "gpu")


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port must be 0-65535"),
    (["--max-batch", "0"], "--max-batch must be at least 1"),
    (["--max-wait-ms", "-1"], "--max-wait-ms must be at least 0"),
    (["--runtime", "tensorrt"], "--runtime must be one of keras, onnx"),
    (["--name", "a/b"], "--name must be letters"),
    (["--host", "no-such-host.invalid", "--port", "0"], "--host 'no-such-host.invalid' cannot be resolved"),
])
def test_bad_options_are_named(served_run, args, message):
    _fails_with([str(served_run), *args], message)


def test_a_missing_source_is_named(tmp_path):
    _fails_with([str(tmp_path / "nowhere"), "--port", "0"], "no such run folder or model file")


def test_an_exported_file_other_than_onnx_is_refused(tmp_path):
    exported = tmp_path / "model.tflite"
    exported.write_bytes(b"\0" * 16)
    _fails_with([str(exported), "--port", "0"], "serve takes a run folder, a .keras file or an .onnx file")


class _Announced(Exception):
    pass


def test_the_printed_address_already_accepts_connections(served_run):
    # A client (or a test) connects the moment the line appears; before the fix
    # the socket only listened once uvicorn had started, and CI was refused.
    from portaclass.serve.options import ServeOptions
    from portaclass.serve.server import serve

    def connect_when_announced(line):
        if " at http://" in line:
            port = int(line.split(" at http://127.0.0.1:")[1].split("/")[0])
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            raise _Announced

    try:
        with pytest.raises(_Announced):
            serve(ServeOptions(source=str(served_run), port=0), log=connect_when_announced)
    finally:
        gc.unfreeze()  # serve froze this test process's objects for its server's sake
