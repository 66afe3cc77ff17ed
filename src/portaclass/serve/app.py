"""The HTTP application: TensorFlow Serving's REST API, multipart uploads,
health and Prometheus metrics, over one ``ServedModel`` and its batcher.

Every error a client can cause is a 4xx with ``{"error": "<one line>"}`` (TF
Serving's error shape) and leaves the server as it was; only a fault of the
server itself is a 500 (uvicorn logs its traceback).
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from portaclass.errors import first_line
from portaclass.predict import top_classes
from portaclass.serve.batcher import DynamicBatcher
from portaclass.serve.metrics import ServerMetrics
from portaclass.serve.options import ServeOptions
from portaclass.serve.requests import (
    MAX_INSTANCES,
    RequestError,
    instances_of,
    parse_json,
    pixels_of_file,
    pixels_of_instances,
)
from portaclass.serve.served_model import ServedModel

INLINE_BODY_BYTES = 64 * 1024
VERSION = "1"  # one model, one version: TF Serving's URLs may name it
ENDPOINT_PATTERN = re.compile(r":(predict|classify|upload)$|/(metadata)$|^/(healthz|metrics)$|^/v1/models/[^/:]+$")


def create_app(served: ServedModel, options: ServeOptions) -> FastAPI:
    """The application serving ``served`` under ``options.model_name``; the
    batcher starts and stops with the application's lifespan."""
    name = options.model_name
    metrics = ServerMetrics()
    coming = [0]  # model requests received and not yet answered (read by the batcher's thread)
    batcher = DynamicBatcher(served.probabilities, max_batch=options.max_batch,
                             max_wait_s=options.max_wait_ms / 1000, on_batch=metrics.record_batch,
                             coming=lambda: coming[0])

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)  # answers what is queued first
        served.close()

    app = FastAPI(title=f"portaclass serve: {name}", lifespan=lifespan)
    _add_error_handlers(app, metrics)
    app.add_middleware(BodyLimitAndMetrics, max_bytes=options.max_body_bytes, metrics=metrics)

    def check_model(model: str, version: str = VERSION) -> None:
        if model != name:
            raise RequestError(f'no model named "{model}" here (this server serves "{name}")', 404)
        if version != VERSION:
            raise RequestError(f'model "{name}" has version {VERSION} only, not "{version}"', 404)

    def top_k_of(request: Request) -> int:
        text = request.query_params.get("top_k")
        if text is None:
            return min(options.top_k, len(served.class_names))
        if not text.isdigit() or int(text) < 1:
            raise RequestError(f"top_k must be a whole number of at least 1, got {text!r}")
        return min(int(text), len(served.class_names))

    @asynccontextmanager
    async def for_the_model():
        coming[0] += 1
        try:
            yield
        finally:
            coming[0] -= 1

    async def scored(request: Request, keys: tuple[str, ...]) -> tuple[np.ndarray, str]:
        async with for_the_model():
            body = await request.body()
            pixels, key = await off_the_loop(len(body), lambda: parsed(body, keys))
            return await batcher.run(pixels), key

    def parsed(body: bytes, keys: tuple[str, ...]) -> tuple[np.ndarray, str]:
        document = parse_json(body)
        key = next((k for k in keys if k in document), keys[0])
        return pixels_of_instances(instances_of(document, keys), served.input_shape, served.resize), key

    @app.get("/v1/models/{model}")
    @app.get("/v1/models/{model}/versions/{version}")
    async def model_status(model: str, version: str = VERSION):
        check_model(model, version)
        return {"model_version_status": [{"version": VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @app.get("/v1/models/{model}/metadata")
    @app.get("/v1/models/{model}/versions/{version}/metadata")
    async def model_metadata(model: str, version: str = VERSION):
        check_model(model, version)
        return {"model_spec": {"name": name, "signature_name": "", "version": VERSION},
                "metadata": {"signature_def": _signature_def(served), "portaclass": served.metadata()}}

    @app.post("/v1/models/{model}:predict")
    @app.post("/v1/models/{model}/versions/{version}:predict")
    async def predict(model: str, request: Request, version: str = VERSION):
        check_model(model, version)
        rows, key = await scored(request, ("instances", "inputs"))
        # TF Serving answers the row format with "predictions", the columnar one with "outputs".
        return {"outputs" if key == "inputs" else "predictions": rows.tolist()}

    @app.post("/v1/models/{model}:classify")
    @app.post("/v1/models/{model}/versions/{version}:classify")
    async def classify(model: str, request: Request, version: str = VERSION):
        check_model(model, version)
        k = top_k_of(request)
        rows, _ = await scored(request, ("examples", "instances"))
        return {"results": [[list(pair) for pair in top_classes(row, served.class_names, k)] for row in rows]}

    @app.post("/v1/models/{model}:upload")
    async def upload(model: str, request: Request):
        check_model(model)
        k = top_k_of(request)
        async with for_the_model():
            async with request.form(max_files=MAX_INSTANCES, max_fields=MAX_INSTANCES) as form:
                files = [(field, item) for field, item in form.multi_items() if isinstance(item, UploadFile)]
                if not files:
                    raise RequestError("no image files in the request: send them as multipart/form-data "
                                       "(curl -F file=@photo.jpg)")
                names = [item.filename or field for field, item in files]
                contents = [await item.read() for _, item in files]
            pixels = await asyncio.to_thread(  # decoding: always off the loop
                lambda: np.stack([pixels_of_file(data, file_name, served.input_shape, served.resize)
                                  for data, file_name in zip(contents, names)]))
            rows = await batcher.run(pixels)
        return {"results": [{"file": file_name,
                             "top_k": [{"class": c, "probability": p} for c, p in top_classes(row, served.class_names, k)]}
                            for file_name, row in zip(names, rows)]}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": name, "runtime": served.runtime}

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(metrics.exposition(), media_type=metrics.content_type)

    return app


async def off_the_loop(size: int, work):
    """``work()``: on the event loop for a small body (parsing it costs less
    than a thread hand-off), on a thread for a large one (the loop keeps
    answering others meanwhile)."""
    return work() if size <= INLINE_BODY_BYTES else await asyncio.to_thread(work)


def _signature_def(served: ServedModel) -> dict:
    """The metadata's signature in TF Serving's shape (what its clients read)."""
    def tensor(tensor_name, dims):
        return {"dtype": "DT_FLOAT", "name": tensor_name,
                "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}}

    h, w, c = served.input_shape
    return {"signature_def": {"serving_default": {
        "inputs": {"image": tensor("image", [-1, h, w, c])},
        "outputs": {"probabilities": tensor("probabilities", [-1, len(served.class_names)])},
        "method_name": "tensorflow/serving/predict"}}}


def _add_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    def error(status: int, message: str, reason: str) -> JSONResponse:
        metrics.record_error(reason)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def request_error(_request, exc: RequestError):
        return error(exc.status, str(exc), "too_large" if exc.status == 413 else "bad_request")

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return error(exc.status_code, first_line(exc.detail) if exc.detail else "error", "http")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return error(400, first_line(problems or "invalid request"), "bad_request")

    @app.exception_handler(Exception)
    async def server_fault(_request, exc: Exception):  # Starlette re-raises it: uvicorn logs the traceback
        return error(500, f"internal error: {first_line(exc)}", "internal")


class BodyTooLarge(RequestError):
    def __init__(self, limit: int):
        super().__init__(f"request body over the server's limit of {limit / 2**20:g} MB (--max-body-mb)", 413)


class BodyLimitAndMetrics:
    """ASGI middleware: refuses bodies over ``max_bytes`` (by Content-Length
    at once, else while reading) and records each request's endpoint,
    status and latency."""

    def __init__(self, app, *, max_bytes: int, metrics: ServerMetrics):
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, received = time.perf_counter(), [500], [0]
        endpoint = _endpoint_label(scope["path"])

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        async def receive_counting():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        self.metrics.in_flight.inc()
        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                self.metrics.record_error("too_large")
                response = JSONResponse({"error": str(BodyTooLarge(self.max_bytes))}, status_code=413,
                                        headers={"connection": "close"})
                return await response(scope, receive, send_noting_status)
            await self.app(scope, receive_counting, send_noting_status)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.record_request(endpoint, status[0], time.perf_counter() - started)


def _endpoint_label(path: str) -> str:
    """A bounded label for metrics: the kind of endpoint, not the raw path."""
    match = ENDPOINT_PATTERN.search(path)
    if not match:
        return "other"
    return next((group for group in match.groups() if group), "status")
