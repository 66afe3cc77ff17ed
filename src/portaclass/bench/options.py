"""What ``portaclass bench`` is asked to measure, checked before any
subprocess starts: a bad value is one line naming the option, exit 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from portaclass import checks, config
from portaclass.errors import BackendError, UsageError

# Rows beside the Keras backends. The native PyTorch twins exist for the
# architectures bench/native_torch.py writes by hand; ONNX Runtime predicts
# with the model exported by portaclass export.
NATIVE_TORCH = "native-torch"
NATIVE_TORCH_CHANNELS_LAST = "native-torch-channels-last"
ONNXRUNTIME = "onnxruntime"
NATIVE_MODELS = ("resnet18",)


@dataclass
class BenchOptions:
    """``portaclass bench``'s settings.

    Args:
        backends: the Keras backends to measure, each in its own processes.
        model: a registry model, built with ``seed`` (identical initial
            weights on every backend and in the native PyTorch twin).
        image_size: square input size.
        batch_sizes: one row per backend and batch size.
        steps: timed training steps (and predict calls) per measurement,
            after the first (compiling) one; the median is reported.
        rounds: measurements per row, interleaved A B C A B C so drift of
            the machine hits every row alike; the median is reported.
        native: add the hand-written PyTorch rows (plain and channels_last
            memory format) where the model has a twin.
        onnx: add an ONNX Runtime predict row (the model exported to ONNX).
        real_data: a folder of class folders: feed the training steps from
            the real pipeline (decode + augment) instead of one synthetic
            batch, to see whether input or compute bounds a run.
        out: folder for bench.json and bench.png (default: bench-<model>-<size>).
        num_classes: classes of the synthetic task.
        seed: seeds the weights and the synthetic batch.
        device: "cpu" or "gpu" (default: the backend's choice).
        cache: record the result per machine for ``--backend auto``.
    """

    backends: tuple[str, ...] = config.BACKENDS
    model: str = "resnet18"
    image_size: int = 32
    batch_sizes: tuple[int, ...] = (32, 128)
    steps: int = 10
    rounds: int = 2
    native: bool = True
    onnx: bool = True
    real_data: str | None = None
    out: str | None = None
    num_classes: int = 10
    seed: int = 0
    device: str | None = None
    cache: bool = True

    def __post_init__(self):
        self.backends = tuple(self.backends)
        self.batch_sizes = tuple(self.batch_sizes)
        if not self.backends:
            raise UsageError.for_option("backends", "names no backend")
        for name in self.backends:
            checks.choice("backends", name, config.BACKENDS)
            if not config.is_installed(name):
                raise BackendError(f"backend {name!r} is not installed: pip install 'portaclass[{name}]'")
        if len(set(self.backends)) != len(self.backends):
            raise UsageError.for_option("backends", f"names a backend twice: {','.join(self.backends)}")
        if not self.batch_sizes:
            raise UsageError.for_option("batch_sizes", "names no batch size")
        for size in self.batch_sizes:
            checks.at_least("batch_sizes", size, 1)
        for option in ("image_size", "steps", "rounds", "num_classes"):
            checks.at_least(option, getattr(self, option), 1)
        checks.at_least("num_classes", self.num_classes, 2)
        checks.seed("seed", self.seed)
        if self.device is not None:
            checks.choice("device", self.device.split(":")[0], ("cpu", "gpu"))
        from portaclass.models import get_spec
        from portaclass.models.registry import check_input_size

        check_input_size(get_spec(self.model), (self.image_size, self.image_size, 3))
        if self.real_data is not None and not Path(self.real_data).expanduser().is_dir():
            raise UsageError.for_option("real_data", f"{self.real_data}: no such folder")

    @property
    def rows(self) -> list[str]:
        """Every row measured, Keras backends first."""
        rows = list(self.backends)
        if self.native and self.model in NATIVE_MODELS:
            rows += [NATIVE_TORCH, NATIVE_TORCH_CHANNELS_LAST]
        if self.onnx and self.real_data is None:
            rows.append(ONNXRUNTIME)
        return rows

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"bench-{self.model}-{self.image_size}").expanduser()

    def skipped_rows(self) -> list[str]:
        """Why a requested extra row is not measured, one line each."""
        lines = []
        if self.native and self.model not in NATIVE_MODELS:
            lines.append(f"no native PyTorch row: bench has a hand-written twin of "
                         f"{', '.join(NATIVE_MODELS)} only, not {self.model}")
        if self.onnx and self.real_data is not None:
            lines.append("no onnxruntime row with --real-data: it predicts only")
        return lines


def parse_list(option: str, text: str, convert=str) -> tuple:
    """``"a,b"`` -> ``(a, b)`` converted; a bad item names the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tuple(convert(item) for item in items)
    except ValueError:
        raise UsageError.for_option(option, f"must be a comma-separated list of numbers; received {text!r}") from None
