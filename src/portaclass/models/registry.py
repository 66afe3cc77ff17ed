"""The model registry: models register with a decorator and declare the
preprocessing they expect, which the data pipeline reads from here (timm's
``resolve_model_data_config`` idea)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from portaclass.errors import UsageError


@dataclass(frozen=True)
class Preprocessing:
    """How pixels in [0, 255] become model inputs: optionally reverse the
    channel order (``channel_order="bgr"``, Caffe-style models), then
    ``x * scale + offset``, then ``(x - mean) / std`` per channel when
    mean/std are given."""

    input_size: tuple[int, int] = (32, 32)
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"  # "bgr": flip RGB -> BGR before scaling
    min_input_size: tuple[int, int] = (8, 8)  # smallest size the model accepts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """The inverse of ``to_dict`` (JSON lists back to tuples; unknown keys,
        from a newer portaclass, ignored)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in data.items() if k in cls.__dataclass_fields__})


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
    tags: tuple[str, ...] = (),
):
    """Decorator: ``@register_model("resnet18", Preprocessing(...))`` over a
    builder ``fn(num_classes, input_shape, **options) -> keras.Model``.
    Builders of pretrained families also take ``weights``."""

    def decorate(build: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            build=build,
            preprocessing=preprocessing or Preprocessing(),
            description=description or (build.__doc__ or "").strip().split("\n")[0],
            pretrained=pretrained,
            tags=tuple(tags),
        )
        return build

    return decorate


def _load_families() -> None:
    # Importing a family module registers its models.
    from portaclass.models import applications, resnet, simple_cnn, vit  # noqa: F401


def list_models(pretrained: bool | None = None) -> list[str]:
    """Registered model names; ``pretrained=True`` only those with weights."""
    _load_families()
    names = sorted(_REGISTRY)
    if pretrained is None:
        return names
    return [n for n in names if (_REGISTRY[n].pretrained is not None) == pretrained]


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
    """Build a registered model.

    ``input_shape`` is channels_last (H, W, C), default the model's declared
    input size with 3 channels. ``weights``: None (random init), "imagenet"
    (Keras' download + cache) or a path to a ``.h5``/``.weights.h5``/``.keras``
    file, for models with a pretrained source. With ``seed``, the initial
    weights are drawn by NumPy (``models.init``), so they are identical on
    every backend; pretrained weights are kept as loaded.
    """
    from portaclass import config
    from portaclass.layout import check_image_shape

    config.active_backend()  # fix the backend before keras is imported
    spec = get_spec(name)
    if num_classes < 2:
        raise UsageError(f"num_classes must be at least 2, got {num_classes}")
    if input_shape is None:
        input_shape = (*spec.preprocessing.input_size, 3)
    check_image_shape(input_shape)
    low_h, low_w = spec.preprocessing.min_input_size
    if input_shape[0] < low_h or input_shape[1] < low_w:
        raise UsageError(
            f"model {name!r} needs inputs of at least {low_h}x{low_w}, got {tuple(input_shape)}"
        )
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if weights is not None and spec.pretrained is None:
        raise UsageError(f"model {name!r} has no pretrained weights; use weights=None")
    if seed is not None:
        from portaclass import backend

        backend.seed_everything(seed)
    kwargs = dict(options)
    if spec.pretrained is not None:
        kwargs["weights"] = weights
    model = spec.build(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
    if seed is not None:
        from portaclass.models.init import initialize_weights

        # Loaded weights live in the nested "backbone"; only the head is drawn.
        skip = ("backbone",) if weights is not None else ()
        initialize_weights(model, seed, skip_layers=skip)
    return model
