"""Request bodies -> uint8 image batches, or a ``RequestError`` naming what
is wrong (the client gets it as a 4xx with a one-line JSON error).

Accepted, as TensorFlow Serving's REST API accepts them: ``{"instances":
[...]}`` (row format) or ``{"inputs": [...]}`` (columnar; ``examples`` for
``:classify``), each instance a nested list of pixels ``(H, W, C)`` at the
model's input size, ``{"b64": "..."}`` with encoded image file bytes (any
size: decoded and resized like a file), or either of those under a single
input name (``{"image": ...}``). Multipart uploads carry image files.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from portaclass.data.decode import DecodeError, decode_bytes

MAX_INSTANCES = 4096  # more per request than any batch; a body limit bounds bytes anyway


class RequestError(Exception):
    """A request the server cannot answer: ``status`` (4xx) and a one-line reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_json(body: bytes) -> dict:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(f"malformed JSON: {error}") from None
    if not isinstance(document, dict):
        raise RequestError("the body must be a JSON object such as {\"instances\": [...]}")
    return document


def instances_of(document: dict, keys: tuple[str, ...]) -> list:
    """The list of instances under the first of ``keys`` present."""
    for key in keys:
        if key in document:
            instances = document[key]
            if isinstance(instances, dict) and len(instances) == 1:  # columnar, one named input
                instances = next(iter(instances.values()))
            if not isinstance(instances, list) or not instances:
                raise RequestError(f'"{key}" must be a non-empty list of images')
            if len(instances) > MAX_INSTANCES:
                raise RequestError(f'"{key}" holds {len(instances)} images; at most {MAX_INSTANCES} per request')
            return instances
    raise RequestError(f"the body has no {' or '.join(repr(k) for k in keys)} list")


def pixels_of_instances(instances: list, input_shape: tuple[int, int, int], resize_mode: str) -> np.ndarray:
    """Instances -> uint8 (N, H, W, C); a RequestError names the instance at fault."""
    if all(isinstance(item, list) for item in instances):
        return _pixel_lists(instances, input_shape, "instances")  # the common case, at once
    return np.stack([_one_instance(item, index, input_shape, resize_mode)
                     for index, item in enumerate(instances)])


def pixels_of_file(data: bytes, name: str, input_shape: tuple[int, int, int], resize_mode: str) -> np.ndarray:
    """An uploaded image file -> uint8 (H, W, C) at the input size."""
    h, w, c = input_shape
    try:
        return decode_bytes(data, (h, w), c, resize_mode)
    except DecodeError as error:
        raise RequestError(f"{name}: {error}") from None


def _one_instance(item, index: int, input_shape, resize_mode: str) -> np.ndarray:
    if isinstance(item, dict) and "b64" not in item and len(item) == 1:
        item = next(iter(item.values()))  # {"image": ...}: one named input
    if isinstance(item, dict) and "b64" in item:
        return _b64_image(item["b64"], index, input_shape, resize_mode)
    if isinstance(item, list):
        return _pixel_lists([item], input_shape, f"instance {index}")[0]
    raise RequestError(f"instance {index} is a {type(item).__name__}: send a nested list of pixels "
                       "or {\"b64\": <base64 image bytes>}")


def _b64_image(text, index: int, input_shape, resize_mode: str) -> np.ndarray:
    if not isinstance(text, str):
        raise RequestError(f"instance {index}: b64 must be a string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"instance {index}: b64 is not valid base64") from None
    return pixels_of_file(data, f"instance {index}", input_shape, resize_mode)


def _pixel_lists(items: list, input_shape, what: str) -> np.ndarray:
    """Nested lists of pixel values -> uint8 (N, H, W, C), checked."""
    h, w, c = input_shape
    try:
        array = np.array(items)
    except (ValueError, TypeError):  # ragged lists
        raise RequestError(f"{what}: nested lists of different lengths; the model takes "
                           f"({h}, {w}, {c}) pixels per image") from None
    if array.dtype.kind not in "iuf":
        raise RequestError(f"{what}: pixels must be numbers (JSON integers or floats), "
                           f"got {_json_kind(array)}")
    if array.ndim == 3 and c == 1:  # greyscale sent as (H, W)
        array = array[..., None]
    if array.shape[1:] != (h, w, c):
        raise RequestError(f"{what}: shape {tuple(array.shape[1:])} per image; the model takes "
                           f"({h}, {w}, {c}) pixels, channels last (or send {{\"b64\": ...}} to have "
                           "an image file resized)")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise RequestError(f"{what}: pixel values must be finite numbers in 0-255")
    return np.rint(array).astype(np.uint8)



def _json_kind(array: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "O": "nulls, objects or mixed types"}.get(
        array.dtype.kind, str(array.dtype))
