"""The model registry: each family registers a feature extractor and declares
the preprocessing it expects, which the data pipeline reads from here (timm's
``resolve_model_data_config`` idea). ``models.builder`` turns a registered
feature extractor into a classifier; nothing else builds models.

The family modules register on import; the registry imports them (by name,
as plugins) the first time it is asked for a model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

from portaclass import checks
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
    """A registered family member.

    ``features(input_shape, **options)`` returns a ``keras.Model`` from the
    image input to the last feature map (or token sequence), named
    ``constants.BACKBONE``; pretrained families' take ``weights`` (None or
    "imagenet"). ``head_dropout`` is the Dropout rate before the classifier
    layer when the caller does not choose one (0: no Dropout layer).
    """

    name: str
    features: Callable
    preprocessing: Preprocessing
    description: str = ""
    pretrained: str | None = None  # source of pretrained weights, if any
    head_dropout: float = 0.0


_REGISTRY: dict[str, ModelSpec] = {}
# Modules that register models when imported (one file per family).
FAMILY_MODULES = ("simple_cnn", "resnet", "vit", "applications")


def register_model(name: str, preprocessing: Preprocessing | None = None, *, description: str = "",
                   pretrained: str | None = None, head_dropout: float = 0.0):
    """Decorator over a family's feature extractor (see ``ModelSpec``):
    ``@register_model("resnet18", Preprocessing(...))``."""

    def decorate(features: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            features=features,
            preprocessing=preprocessing or Preprocessing(),
            description=description or (features.__doc__ or "").strip().split("\n")[0],
            pretrained=pretrained,
            head_dropout=head_dropout,
        )
        return features

    return decorate


def _register_families() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(f"portaclass.models.{module}")


def list_models(pretrained: bool | None = None) -> list[str]:
    """Registered model names; ``pretrained=True`` only those with weights."""
    _register_families()
    names = sorted(_REGISTRY)
    if pretrained is None:
        return names
    return [n for n in names if (_REGISTRY[n].pretrained is not None) == pretrained]


def get_spec(name: str, option: str = "model") -> ModelSpec:
    """The spec of a registered model; UsageError naming ``option`` and the
    available names otherwise."""
    _register_families()
    if name not in _REGISTRY:
        checks.choice(option, name, sorted(_REGISTRY))
    return _REGISTRY[name]


def check_weights(spec: ModelSpec, weights, input_shape) -> None:
    """UsageError for weights a model cannot take: any on a from-scratch
    family, imagenet on a non-RGB input."""
    if weights is None:
        return
    if spec.pretrained is None:
        raise UsageError.for_option("weights", f"given, but model {spec.name!r} has no pretrained "
                                    "weights; use weights=None")
    if weights == "imagenet" and input_shape is not None and input_shape[-1] != 3:
        raise UsageError.for_option("weights", f"imagenet for {spec.name} needs 3-channel input; "
                                    f"got input shape {tuple(input_shape)}")


def check_input_size(spec: ModelSpec, input_shape) -> None:
    low_h, low_w = spec.preprocessing.min_input_size
    if input_shape[0] < low_h or input_shape[1] < low_w:
        raise UsageError.for_option(
            "image_size", f"must be at least {low_h}x{low_w} for model {spec.name!r}; "
            f"got {tuple(input_shape)}")
