"""Grad-CAM (Selvaraju et al., 2017): where in an image a classifier found
the evidence for a class, on every backend; ``portaclass explain`` and the
run report's overlays.

The heatmap of class ``c`` over a feature map ``A`` (``K`` channels) is
``ReLU(sum_k alpha_k A_k)``, ``alpha_k`` the spatial mean of
``d score_c / d A_k``, with ``score_c`` the class's logit. The gradient is
taken with ``backend.value_and_grad`` (tf.GradientTape, torch.autograd or
jax.value_and_grad underneath) on the model split at ``A``
(``report.feature_map``), so ``A`` itself is the variable.

Heatmaps leave as NumPy in channels_last terms whatever the model's layout,
and are drawn over the image in the classic "jet" colours (computed here:
importing matplotlib for one colormap cost every run's report 0.25 s; any
other matplotlib colormap by name), one PNG per image written with Pillow.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from portaclass import checks, layout
from portaclass._lazy import backend, keras
from portaclass.data.inputs import as_image_list, expand_paths, iter_inputs
from portaclass.data.normalize import normalize
from portaclass.errors import UsageError
from portaclass.inference import Classifier, open_classifier, stack_pixels
from portaclass.report import grid
from portaclass.report.feature_map import (
    ends_in_softmax,
    feature_data_format,
    find_target_layer,
    split_at,
)

# An overlay is drawn at least this large (shorter side, pixels): a 32-px
# model's heatmap over a 32-px image is too small to see.
DISPLAY_SIDE = 224
HEATMAP_ALPHA = 0.45  # weight of the colours over the image
COLORMAP = "jet"
BATCH_SIZE = 8
CLASSES_LISTED = 10  # in the error for a class the model does not know


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM of a batch: ``heatmaps`` ``(N, h, w)`` float32 in [0, 1] at
    the feature map's resolution (each image's maximum is 1, or all zero
    when nothing speaks for the class), the ``class_indices`` explained,
    the model's ``probabilities`` ``(N, classes)`` (its outputs, when
    they are not a softmax's), the ``channel_weights``
    ``alpha`` ``(N, K)`` and the ``layer`` used (``backbone/out_relu`` for
    a layer inside a nested model)."""

    heatmaps: np.ndarray
    class_indices: np.ndarray
    probabilities: np.ndarray
    channel_weights: np.ndarray
    layer: str


def gradcam(model, images, *, class_index=None, layer: str | None = None) -> GradCam:
    """Grad-CAM heatmaps of a classifier for a batch of images.

    Args:
        model: a functional ``keras.Model`` with one image input, ending in
            a softmax Dense layer (as portaclass builds them) or in scores.
        images: the model-ready batch: preprocessed, in the model's layout
            (NCHW when it was built channels_first).
        class_index: the class to explain, an int or one per image; default
            each image's predicted class.
        layer: the name of a layer with a 4-D output, searched in nested
            sub-models too; default the feature map the head pools.

    Returns:
        A ``GradCam``.
    """
    if len(model.inputs) != 1:
        raise UsageError(f"Grad-CAM needs a model with one image input; {model.name} has "
                         f"{len(model.inputs)}")
    path = find_target_layer(model, layer)
    to_features, to_scores = split_at(model, path)
    x = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
    maps = np.asarray(backend.to_numpy(to_features(x)), np.float32)
    scores = np.asarray(backend.to_numpy(to_scores(x, keras.ops.convert_to_tensor(maps))), np.float32)
    probabilities = _softmax(scores) if ends_in_softmax(model) else scores
    classes = _classes(class_index, probabilities)
    chosen = keras.ops.convert_to_tensor(np.eye(probabilities.shape[1], dtype=np.float32)[classes])

    def class_score(feature_map):  # the chosen classes' logits, summed over the batch:
        # images are independent (inference mode), so each gets its own gradient
        return keras.ops.sum(keras.ops.cast(to_scores(x, feature_map), "float32") * chosen)

    _, grads = backend.value_and_grad(class_score, maps)
    if feature_data_format(model) == layout.CHANNELS_FIRST:
        maps, grads = layout.to_channels_last(maps), layout.to_channels_last(grads)
    weights = grads.mean(axis=(1, 2))  # (N, K)
    heatmaps = np.maximum(np.einsum("nhwk,nk->nhw", maps, weights), 0.0)
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    heatmaps = np.where(peaks > 0, heatmaps / np.where(peaks > 0, peaks, 1.0), 0.0)
    return GradCam(heatmaps.astype(np.float32), classes, probabilities, weights.astype(np.float32),
                   "/".join(path))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _classes(class_index, probabilities: np.ndarray) -> np.ndarray:
    count, num_classes = probabilities.shape
    if class_index is None:
        return probabilities.argmax(axis=1)
    classes = np.broadcast_to(np.asarray(class_index), (count,)).astype(np.int64)
    if np.any((classes < 0) | (classes >= num_classes)):
        raise UsageError.for_option("class_index", f"must be in [0, {num_classes}); "
                                    f"received {class_index!r}")
    return classes


# --- pictures -------------------------------------------------------------------------


def resize_heatmap(heatmap: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A heatmap ``(h, w)`` bilinearly resized to ``size_hw``, still in [0, 1]."""
    height, width = size_hw
    resized = Image.fromarray(np.asarray(heatmap, np.float32)).resize((width, height), Image.BILINEAR)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = HEATMAP_ALPHA,
            colormap: str = COLORMAP, min_side: int = 0) -> np.ndarray:
    """``image`` (uint8 ``(H, W, C)``, C 1 or 3) with ``heatmap`` resized to
    it, coloured with ``colormap`` (a matplotlib name) and blended in with weight
    ``alpha``: uint8 ``(H', W', 3)``, enlarged (bicubic) by a whole factor
    until its shorter side is at least ``min_side``."""
    image = np.asarray(image)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    height, width = rgb.shape[:2]
    factor = max(1, -(-min_side // min(height, width)))
    if factor > 1:
        rgb = np.asarray(Image.fromarray(rgb).resize((width * factor, height * factor), Image.BICUBIC))
    heat = resize_heatmap(heatmap, rgb.shape[:2])
    colours = colour_map(heat, colormap) * 255.0
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)



def colour_map(values: np.ndarray, name: str = COLORMAP) -> np.ndarray:
    """RGB in [0, 1] (shape + (3,)) for ``values`` in [0, 1]: "jet" as its
    piecewise-linear definition (blue, cyan, yellow, red), other names
    through matplotlib."""
    values = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    if name == "jet":
        centres = np.array([0.75, 0.5, 0.25], np.float32)  # where red, green and blue peak
        return np.clip(1.5 - np.abs(4.0 * (values[..., None] - centres)), 0.0, 1.0)
    from matplotlib import colormaps

    return colormaps[name](values)[..., :3]

# --- images in, pictures out ----------------------------------------------------------


@dataclass
class Explanation:
    """One image's result: the ``class_name`` explained and its
    ``probability``, the model's ``predicted`` class, and the PNG written
    (``path``); or ``error`` when the image could not be read."""

    name: str
    path: str | None = None
    class_name: str | None = None
    probability: float | None = None
    predicted: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def explain_images(model, images, *, out, class_name: str | None = None, layer: str | None = None,
                   device: str | None = None, batch_size: int = BATCH_SIZE,
                   progress=None) -> list[Explanation]:
    """Write a Grad-CAM overlay PNG per image into ``out``.

    Args:
        model: a run folder, a ``.keras`` file or a ``keras.Model``
            (``inference.open_classifier``: the model's own preprocessing
            and class names).
        images: image files, folders (searched recursively), Pillow images
            or NumPy arrays (channels_last), as ``predict`` takes them.
        out: the folder for the PNGs (``<file stem>_gradcam.png``), made
            when missing.
        class_name: the class to explain; default each image's predicted one.
        layer: the layer whose feature map to use (``find_target_layer``).
        device: "cpu", "gpu" or "gpu:N" (default: the backend's choice).
        batch_size: images per gradient pass.
        progress: called as ``progress(done, total)`` after each batch.

    Returns:
        One ``Explanation`` per image, in input order; an image that cannot
        be read is an ``error``, and the others go on.
    """
    checks.at_least("batch_size", batch_size, 1)
    items = expand_paths(as_image_list(images))
    classifier = open_classifier(model, device=device)
    index = class_index_of(classifier, class_name)
    find_target_layer(classifier.model, layer)  # a model without a feature map fails before any image
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = _png_names(items)
    results: list[Explanation] = []
    for batch, pictures, cams in _explained(classifier, items, index, layer, batch_size):
        for image, picture, cam in zip(batch, pictures, cams):
            if image.error:
                results.append(Explanation(image.name, error=image.error))
                continue
            explained, probability, predicted = cam
            path = out / names[len(results)]
            Image.fromarray(picture).save(path)
            results.append(Explanation(image.name, str(path), classifier.class_names[explained],
                                       probability, classifier.class_names[predicted]))
        if progress:
            progress(len(results), len(items))
    return results


def overlay_grid(classifier: Classifier, images: list, path, *, class_name: str | None = None,
                 layer: str | None = None, image_format: str = "PNG") -> Path:
    """The Grad-CAM overlays of ``images`` (paths or arrays) in one PNG
    (or ``image_format``) grid at ``path`` (or a file object), each titled
    with the class explained and its probability: the run report's section."""
    index = class_index_of(classifier, class_name)
    shown, titles = [], []
    for _, pictures, cams in _explained(classifier, list(images), index, layer, BATCH_SIZE):
        for picture, (explained, probability, _predicted) in zip(pictures, cams):
            if picture is not None:
                shown.append(picture)
                titles.append(f"{classifier.class_names[explained]} ({probability:.0%})")
    return grid.image_grid(shown, titles, path, title="Grad-CAM: where the evidence for "
                           "the predicted class is", image_format=image_format)


def class_index_of(classifier: Classifier, class_name: str | None) -> int | None:
    """The index of ``class_name`` in the model's classes (None for None);
    a UsageError naming it and the valid classes when the model has no such class."""
    if class_name is None:
        return None
    names = classifier.class_names
    if class_name not in names:
        shown = ", ".join(names[:CLASSES_LISTED]) + (f" ... ({len(names)} in all)"
                                                     if len(names) > CLASSES_LISTED else "")
        raise UsageError.for_option("class_name", f"{class_name!r} is not a class of this model; "
                                    f"its classes: {shown}")
    return names.index(class_name)


def _explained(classifier: Classifier, items: list, class_index, layer, batch_size):
    """Per batch of ``items``: the ``InputImage``s, an overlay per image
    (None for one that failed to load) and ``(explained class, its
    probability, predicted class)`` per image (None likewise)."""
    for batch in iter_inputs(items, classifier.size_hw, classifier.channels,
                             resize_mode=classifier.resize, batch_size=batch_size):
        pixels = stack_pixels(batch)
        pictures, cams = [None] * len(batch), [None] * len(batch)
        if len(pixels):
            result = _gradcam_of_pixels(classifier, pixels, class_index, layer, batch_size)
            good = [i for i, image in enumerate(batch) if image.pixels is not None]
            for row, i in enumerate(good):
                explained = int(result.class_indices[row])
                pictures[i] = overlay(pixels[row], result.heatmaps[row], min_side=DISPLAY_SIDE)
                cams[i] = (explained, float(result.probabilities[row, explained]),
                           int(result.probabilities[row].argmax()))
        yield batch, pictures, cams


def _gradcam_of_pixels(classifier: Classifier, pixels: np.ndarray, class_index, layer,
                       batch_size: int) -> GradCam:
    """``gradcam`` of uint8 images at the input size, preprocessed as the
    model was trained. JAX compiles each op per shape: a short last batch
    is padded to the batch size there rather than compiled again."""
    count = len(pixels)
    if backend.COMPILES_PER_SHAPE and count < batch_size:
        pixels = np.concatenate([pixels, np.repeat(pixels[-1:], batch_size - count, axis=0)])
    x = layout.to_model_layout(normalize(pixels, classifier.preprocessing).astype(np.float32))
    with backend.on_device(classifier.device) if classifier.device else contextlib.nullcontext():
        result = gradcam(classifier.model, x, class_index=class_index, layer=layer)
    return GradCam(result.heatmaps[:count], result.class_indices[:count],
                   result.probabilities[:count], result.channel_weights[:count], result.layer)


def _png_names(items: list) -> list[str]:
    """``<stem>_gradcam.png`` per item (``image<N>_gradcam.png`` for one in
    memory), numbered where two files share a stem."""
    names: list[str] = []
    for i, item in enumerate(items):
        stem = Path(item).stem if isinstance(item, (str, os.PathLike)) else f"image{i}"
        name, copy = f"{stem}_gradcam.png", 1
        while name in names:
            copy += 1
            name = f"{stem}-{copy}_gradcam.png"
        names.append(name)
    return names


