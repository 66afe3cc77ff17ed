"""``portaclass serve`` as clients meet it: a real server process on a
loopback port, TensorFlow Serving's request and response shapes, multipart
uploads, dynamic batching seen in /metrics, bad input answered 4xx without
harm, SIGTERM with requests in flight, and the ONNX Runtime path."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from portaclass.export.verify import verification_images
from portaclass.inference import open_classifier
from tests.serve.conftest import ServerProcess, metric_values


@pytest.fixture(scope="module")
def server(served_run):
    process = ServerProcess(served_run, "--max-wait-ms", "100", "--max-body-mb", "1")
    yield process
    assert process.stop() == 0, process.output


@pytest.fixture(scope="module")
def reference(served_run):
    """Five images (not a power of two) and the Keras model's probabilities for them."""
    classifier = open_classifier(served_run)
    pixels = verification_images(classifier.input_shape, count=5, seed=11)
    return classifier, pixels, classifier.probabilities(pixels)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_status_and_metadata_answer_as_tf_serving_does(server, reference):
    classifier = reference[0]
    status = server.client.get(server.model_path()).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert server.client.get(server.model_path("/versions/1")).status_code == 200
    metadata = server.client.get(server.model_path("/metadata")).json()
    assert metadata["model_spec"]["name"] == server.name
    dims = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["image"]
    h, w, c = classifier.input_shape
    assert [int(d["size"]) for d in dims["tensor_shape"]["dim"]] == [-1, h, w, c]
    described = metadata["metadata"]["portaclass"]
    assert described["class_names"] == classifier.class_names
    assert described["preprocessing"] == json.loads(json.dumps(classifier.preprocessing.to_dict()))
    assert server.client.get("/healthz").json()["status"] == "ok"


def test_predict_rows_equal_the_keras_models_probabilities(server, reference):
    _, pixels, expected = reference
    response = server.client.post(server.model_path(":predict"), json={"instances": pixels.tolist()})
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"])
    assert predictions.shape == expected.shape
    np.testing.assert_allclose(predictions, expected, atol=1e-5)


def test_b64_images_columnar_inputs_and_versioned_urls_give_the_same_rows(server, reference):
    _, pixels, expected = reference
    b64 = [{"b64": base64.b64encode(_png(image)).decode()} for image in pixels[:2]]
    rows = server.client.post(server.model_path(":predict"), json={"instances": b64}).json()["predictions"]
    np.testing.assert_allclose(rows, expected[:2], atol=1e-5)
    named = [{"image": image.tolist()} for image in pixels[:2]]
    rows = server.client.post(server.model_path("/versions/1:predict"),
                              json={"instances": named}).json()["predictions"]
    np.testing.assert_allclose(rows, expected[:2], atol=1e-5)
    columnar = server.client.post(server.model_path(":predict"), json={"inputs": pixels[:2].tolist()}).json()
    np.testing.assert_allclose(columnar["outputs"], expected[:2], atol=1e-5)


def test_classify_answers_class_names_best_first(server, reference):
    classifier, pixels, expected = reference
    response = server.client.post(server.model_path(":classify") + "?top_k=2",
                                  json={"examples": pixels[:3].tolist()})
    assert response.status_code == 200, response.text
    for result, row in zip(response.json()["results"], expected[:3]):
        assert len(result) == 2
        assert result[0][0] == classifier.class_names[int(np.argmax(row))]
        assert result[0][1] == pytest.approx(float(row.max()), abs=1e-5)


def test_multipart_upload_answers_top_k_per_file(server, reference):
    classifier, pixels, expected = reference
    files = [("file", ("first.png", _png(pixels[0]), "image/png")),
             ("file", ("second.png", _png(pixels[1]), "image/png"))]
    response = server.client.post(server.model_path(":upload") + "?top_k=3", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["first.png", "second.png"]
    for result, row in zip(results, expected):
        assert len(result["top_k"]) == 3
        assert result["top_k"][0]["class"] == classifier.class_names[int(np.argmax(row))]
        assert result["top_k"][0]["probability"] == pytest.approx(float(row.max()), abs=1e-5)


def test_concurrent_requests_share_model_calls(server, reference):
    _, pixels, expected = reference
    before = metric_values(server.client.get("/metrics").text, "portaclass_batch_requests_count")
    clients = 12
    # All twelve are received (headers and half a body each) before any body completes,
    # so the batcher knows they are coming however loaded the machine is.
    halves = [_half_sent_request(server.port, server.model_path(":predict"), pixels[i % len(pixels)])
              for i in range(clients)]
    _wait_until_in_flight(server, clients)
    for sock, rest in halves:
        sock.sendall(rest)
    answers = [_finish(sock, b"") for sock, _ in halves]
    for index, (status, body) in enumerate(answers):
        assert status == 200, body
        np.testing.assert_allclose(json.loads(body)["predictions"][0], expected[index % len(pixels)], atol=1e-5)
    after = metric_values(server.client.get("/metrics").text, "portaclass_batch_requests_count")
    assert after[""] - before.get("", 0.0) < clients  # some requests rode together in one model call


def _bomb_png() -> bytes:
    """A valid PNG header declaring 20000 x 20000 pixels: tiny on the wire."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = (20000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _bad_requests(pixels):
    good_png = _png(pixels[0])
    image = pixels[0].tolist()
    return {
        "not an image": ("upload", {"files": [("file", ("notes.txt", b"just text", "text/plain"))]},
                         400, "notes.txt"),
        "truncated JPEG": ("upload", {"files": [("file", ("cut.jpg", _jpeg(pixels[0])[:200], "image/jpeg"))]},
                           400, "cut.jpg"),
        "decompression bomb": ("upload", {"files": [("file", ("bomb.png", _bomb_png(), "image/png"))]},
                               400, "decompression bomb"),
        "no files": ("upload", {"data": {"field": "value"}}, 400, "multipart"),
        "wrong shape": ("predict", {"json": {"instances": [[row[:3] for row in image]]}}, 400, "shape"),
        "wrong dtype": ("predict", {"json": {"instances": [[[["a", "b", "c"]] * 4] * 4]}}, 400, "numbers"),
        "out of range": ("predict", {"json": {"instances": [np.full(pixels[0].shape, 256).tolist()]}},
                         400, "0-255"),
        "malformed JSON": ("predict", {"content": b'{"instances": [1, 2', "headers":
                                       {"content-type": "application/json"}}, 400, "malformed JSON"),
        "no instances": ("predict", {"json": {"images": [image]}}, 400, "instances"),
        "bad base64": ("predict", {"json": {"instances": [{"b64": "%%%"}]}}, 400, "base64"),
        "b64 of text": ("predict", {"json": {"instances": [{"b64": base64.b64encode(b"hello").decode()}]}},
                        400, "not a readable image"),
        "body over the limit": ("upload", {"files": [("file", ("big.png", good_png + b"\0" * 2**21,
                                                               "image/png"))]}, 413, "--max-body-mb"),
        "unknown model": ("other", {"json": {"instances": [image]}}, 404, "no model named"),
        "bad top_k": ("classify?top_k=zero", {"json": {"instances": [image]}}, 400, "top_k"),
    }


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((64, 64)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


BAD_REQUESTS = ["not an image", "truncated JPEG", "decompression bomb", "no files", "wrong shape",
                "wrong dtype", "out of range", "malformed JSON", "no instances", "bad base64", "b64 of text",
                "body over the limit", "unknown model", "bad top_k"]


@pytest.mark.one_backend  # the HTTP layer is the same on every backend
@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_input_gets_a_one_line_4xx_and_the_next_request_is_served(server, reference, case):
    _, pixels, expected = reference
    endpoint, request, status, words = _bad_requests(pixels)[case]
    path = server.model_path(f":{endpoint}") if endpoint != "other" else "/v1/models/other:predict"
    response = server.client.post(path, **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error and "\n" not in error
    good = server.client.post(server.model_path(":predict"), json={"instances": [pixels[0].tolist()]})
    assert good.status_code == 200
    np.testing.assert_allclose(good.json()["predictions"][0], expected[0], atol=1e-5)


@pytest.mark.one_backend
def test_errors_are_counted_in_metrics(server):
    def counts():
        text = server.client.get("/metrics").text
        return (metric_values(text, "portaclass_errors_total").get('{reason="bad_request"}', 0),
                metric_values(text, "portaclass_requests_total").get('{endpoint="predict",status="400"}', 0))

    before = counts()
    server.client.post(server.model_path(":predict"), content=b"{")
    assert counts() == (before[0] + 1, before[1] + 1)


@pytest.mark.one_backend
def test_sigterm_stops_accepting_answers_requests_in_flight_then_exits_0(served_run, reference):
    _, pixels, expected = reference
    process = ServerProcess(served_run)
    port = process.port
    try:
        # Three requests caught half-sent: headers and half of each body are in when SIGTERM lands.
        halves = [_half_sent_request(port, process.model_path(":predict"), pixels[i]) for i in range(3)]
        _wait_until_in_flight(process, 3)
        process.process.send_signal(signal.SIGTERM)
        _wait_until_refused(port)  # no new connections
        answers = [_finish(sock, rest) for sock, rest in halves]
        code = process.process.wait(60)
    finally:
        process.kill()
    assert code == 0, process.output
    for index, (status, body) in enumerate(answers):
        assert status == 200, body
        np.testing.assert_allclose(json.loads(body)["predictions"][0], expected[index], atol=1e-5)
    assert "Traceback" not in process.output


def _half_sent_request(port: int, path: str, image: np.ndarray):
    body = json.dumps({"instances": [image.tolist()]}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 f"content-length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    return sock, body[len(body) // 2:]


def _finish(sock: socket.socket, rest: bytes) -> tuple[int, str]:
    """Send the rest of a half-sent request; (status, body) of its answer."""
    with sock:
        sock.sendall(rest)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += _received(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += _received(sock)
    return int(head.split()[1]), body.decode()


def _received(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise AssertionError("the server closed the connection without answering")
    return chunk


def _wait_until_in_flight(process, count, timeout=60.0):
    """Until ``count`` requests are in flight on the server (the /metrics
    request asking counts itself too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process.client.get("/metrics").text
        if metric_values(text, "portaclass_requests_in_flight").get("", 0) >= count + 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} requests did not reach the server in {timeout} s")


def _wait_until_refused(port: int, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server still accepted connections {timeout} s after SIGTERM")


@pytest.mark.one_backend
def test_onnx_runtime_gives_the_keras_paths_top1(served_run, reference):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    _, pixels, expected = reference
    process = ServerProcess(served_run, "--runtime", "onnx")
    try:
        assert process.client.get("/healthz").json()["runtime"] == "onnxruntime"
        rows = np.array(process.client.post(process.model_path(":predict"),
                                            json={"instances": pixels.tolist()}).json()["predictions"])
    finally:
        assert process.stop() == 0, process.output
    assert (rows.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(rows, expected, atol=1e-4)


@pytest.mark.one_backend
def test_two_worker_processes_serve_the_same_model(served_run, reference):
    _, pixels, expected = reference
    process = ServerProcess(served_run, "--workers", "2")
    try:
        for _ in range(4):  # the kernel spreads connections over both workers
            with_new_connection = process.client.post(process.model_path(":predict"),
                                                      json={"instances": pixels[:2].tolist()},
                                                      headers={"connection": "close"})
            assert with_new_connection.status_code == 200, with_new_connection.text
            np.testing.assert_allclose(with_new_connection.json()["predictions"], expected[:2], atol=1e-5)
    finally:
        code = process.stop()
    assert code == 0, process.output


@pytest.mark.gpu
def test_a_model_served_on_the_gpu_answers_like_the_cpu(served_run, reference):
    _, pixels, expected = reference
    process = ServerProcess(served_run, "--device", "gpu")
    try:
        rows = process.client.post(process.model_path(":predict"), json={"instances": pixels.tolist()})
        assert rows.status_code == 200, rows.text
    finally:
        assert process.stop() == 0, process.output
    np.testing.assert_allclose(rows.json()["predictions"], expected, atol=1e-4)
