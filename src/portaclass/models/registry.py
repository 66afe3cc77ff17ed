"""The model registry: models register with a decorator and declare the
preprocessing they expect, which the data pipeline reads from here (timm's
``resolve_model_data_config`` idea)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from portaclass.errors import UsageError


@dataclass(frozen=True)
class Preprocessing:
    """How pixels in [0, 255] become model inputs: ``x * scale + offset``,
    then ``(x - mean) / std`` per channel when mean/std are given."""

    input_size: tuple[int, int] = (32, 32)
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable
    preprocessing: Preprocessing
    description: str = ""
    pretrained: str | None = None  # source of pretrained weights, if any
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    preprocessing: Preprocessing | None = None,
    description: str = "",
    pretrained: str | None = None,
):
    """Decorator: ``@register_model("resnet18", Preprocessing(...))`` over a
    builder ``fn(num_classes, input_shape, **options) -> keras.Model``."""

    def decorate(build: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            build=build,
            preprocessing=preprocessing or Preprocessing(),
            description=description or (build.__doc__ or "").strip().split("\n")[0],
            pretrained=pretrained,
        )
        return build

    return decorate


def _load_families() -> None:
    # Importing a family module registers its models.
    from portaclass.models import simple_cnn  # noqa: F401


def list_models() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_families()
    if name not in _REGISTRY:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int] | None = None,
    weights: str | None = None,
    seed: int | None = None,
    **options,
):
    """Build a registered model (channels_last ``input_shape``, default from
    the model's declared input size with 3 channels)."""
    from portaclass import config

    config.active_backend()  # fix the backend before keras is imported
    spec = get_spec(name)
    if num_classes < 2:
        raise UsageError(f"num_classes must be at least 2, got {num_classes}")
    if input_shape is None:
        input_shape = (*spec.preprocessing.input_size, 3)
    if len(input_shape) != 3:
        raise UsageError(f"input_shape must be (height, width, channels), got {input_shape}")
    if weights not in (None, "none") and spec.pretrained is None:
        raise UsageError(f"model {name!r} has no pretrained weights; use weights=None")
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    kwargs = dict(options)
    if spec.pretrained is not None:
        kwargs["weights"] = weights
    return spec.build(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
