"""What ``portaclass serve`` is asked to do, checked before any framework
loads: a bad value is one line naming the option, exit 2, and no port bound."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from portaclass.checks import at_least, choice, positive
from portaclass.errors import UsageError

RUNTIMES = ("keras", "onnx")
# TF Serving puts the name in URLs: keep it to what a URL path holds as is.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ServeOptions:
    """``portaclass serve``'s settings.

    Args:
        source: a run folder, a ``.keras`` file, or an exported ``.onnx`` file.
        host, port: where to listen (port 0: any free port, printed at start).
        runtime: "keras" (the chosen backend) or "onnx" (ONNX Runtime; a run
            or ``.keras`` file is exported to ONNX first, and checked).
        device: "cpu", "gpu" or "gpu:N" (default: the backend's choice).
        max_batch: the most images run through the model at once.
        max_wait_ms: how long the first request of a batch waits for others.
        workers: server processes, each with its own copy of the model.
        name: the model's name in the URLs (default: the run folder's name,
            else the file's stem).
        max_body_mb: the largest request body accepted.
        top_k: classes per image that ``:classify`` and ``:upload`` answer
            when the request does not say.
        unsafe: load model files that run code (see ``model_files``).
    """

    source: str
    host: str = "127.0.0.1"
    port: int = 8501
    runtime: str = "keras"
    device: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    workers: int = 1
    name: str | None = None
    max_body_mb: float = 20.0
    top_k: int = 5
    unsafe: bool = False

    def __post_init__(self):
        choice("runtime", self.runtime, RUNTIMES)
        if not 0 <= self.port <= 65535:
            raise UsageError.for_option("port", f"must be 0-65535 (0: any free port), got {self.port}")
        for option, low in (("max_batch", 1), ("workers", 1), ("top_k", 1), ("max_wait_ms", 0)):
            at_least(option, getattr(self, option), low)
        positive("max_body_mb", self.max_body_mb)
        if self.name is not None and not NAME_PATTERN.match(self.name):
            raise UsageError.for_option("name", f"must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if not Path(self.source).expanduser().exists():
            raise UsageError(f"{self.source}: no such run folder or model file")

    @property
    def model_name(self) -> str:
        """The name in the URLs: ``name``, else the run folder's or the file's."""
        if self.name:
            return self.name
        path = Path(self.source).expanduser().resolve()
        if path.is_dir():
            stem = path.name
        elif path.parent.name == "checkpoints" or path.name == "model.keras":
            stem = (path.parent.parent if path.parent.name == "checkpoints" else path.parent).name
        else:
            stem = path.stem
        cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-")
        return cleaned[:128] or "model"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    def to_dict(self) -> dict:
        return asdict(self)
