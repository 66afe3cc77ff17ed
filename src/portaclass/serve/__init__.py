"""``portaclass serve``: a trained model over HTTP with TensorFlow Serving's
REST API, multipart uploads, dynamic batching and Prometheus metrics, on any
backend or on ONNX Runtime (docs/serve.md).

Modules: ``options`` (settings, checked before a framework loads),
``served_model`` (loading and warm-up), ``requests`` (bodies -> images),
``batcher`` (dynamic batching), ``metrics``, ``app`` (FastAPI routes),
``server`` (binding, uvicorn, signals).
"""

from portaclass.serve.options import ServeOptions
from portaclass.serve.server import serve

__all__ = ["ServeOptions", "serve"]
