"""Augmentation: the presets, RandAugment built from Keras' op layers, and
MixUp/CutMix soft labels that agree with the pixels they describe."""

from __future__ import annotations

import numpy as np
import pytest

from portaclass.data.augment import (
    RESIZED_CROP_AREA,
    Augmenter,
    augment_batch,
    mixes_labels,
    resized_crop_box,
)
from portaclass.data.mixing import BatchMixer, one_hot
from portaclass.data.randaugment import OPS, Equalize, RandAugment
from portaclass.errors import UsageError


def random_images(n=4, size=32, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, channels)).astype(np.uint8)


@pytest.mark.parametrize("preset", ["none", "light", "standard", "strong"])
def test_presets_keep_shape_and_range(preset):
    images = random_images()
    labels = np.array([0, 1, 2, 0])
    out, out_labels = Augmenter(preset, seed=0, num_classes=3)(images, labels)
    assert out.shape == images.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 255.0
    if preset == "none":
        assert np.array_equal(out, images)
    else:
        assert not np.allclose(out, images)
    if mixes_labels(preset):
        assert out_labels.shape == (4, 3)
        np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert np.array_equal(out_labels, labels)


def test_presets_that_crop_end_at_the_requested_size():
    augmenter = Augmenter("strong", seed=0, size_hw=(24, 24), num_classes=2)
    decode_size = augmenter.input_size((24, 24))
    assert decode_size[0] > 24
    out, _ = augmenter(random_images(size=decode_size[0]), np.array([0, 1, 0, 1]))
    assert out.shape == (4, 24, 24, 3)


def test_threads_never_share_a_set_of_layers_and_sets_are_reused():
    augmenter = Augmenter("strong", seed=0, num_classes=3)
    assert augmenter.layer_sets_built == 1
    first, second = augmenter._checkout(), augmenter._checkout()  # two calls at once
    assert first is not second and augmenter.layer_sets_built == 2
    augmenter._checkin(first)
    assert augmenter._checkout() is first  # an idle set is reused, not rebuilt
    augmenter._checkin(first)
    augmenter._checkin(second)
    for _ in range(5):
        augmenter(random_images(), np.arange(4) % 3)
    assert augmenter.layer_sets_built == 2


def test_concurrent_calls_from_worker_threads():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    augmenter = Augmenter("strong", seed=0, num_classes=3)
    images, labels = random_images(n=8), np.arange(8) % 3
    all_waiting = threading.Barrier(3, timeout=60)

    def augment(_):
        all_waiting.wait()
        out, soft = augmenter(images, labels)
        return out.shape, soft.shape

    with ThreadPoolExecutor(3) as pool:
        assert set(pool.map(augment, range(3))) == {((8, 32, 32, 3), (8, 3))}
    # every set went back to the pool, and no more were built than threads ran at once
    assert len(augmenter._idle) == augmenter.layer_sets_built <= 3


def test_resized_crop_boxes_lie_inside_the_image_with_the_promised_area():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, height, width = resized_crop_box(rng)
        assert 0 <= top and top + height <= 1 + 1e-9 and 0 <= left and left + width <= 1 + 1e-9
        # clipped to the image side when the aspect asks for more than fits
        assert height * width <= RESIZED_CROP_AREA[1] + 1e-9
        assert height * width >= RESIZED_CROP_AREA[0] * 0.75


def test_only_strong_draws_crops_and_they_repeat_per_seed_epoch_and_image():
    assert Augmenter("standard", seed=0).crop_box(0, 5) is None
    strong = Augmenter("strong", seed=0, num_classes=2)
    assert strong.crop_box(0, 5) == Augmenter("strong", seed=0, num_classes=2).crop_box(0, 5)
    assert strong.crop_box(0, 5) != strong.crop_box(1, 5)  # a new crop each epoch
    assert strong.crop_box(0, 5) != strong.crop_box(0, 6)


def test_strong_pipeline_on_arrays_crops_and_keeps_the_shape():
    from portaclass.data import from_arrays, make_pipeline

    x = random_images(n=12, size=20)
    dataset = from_arrays(x, np.arange(12) % 3, ["a", "b", "c"], val_split=0, test_split=0)
    batch, labels = make_pipeline(dataset.train, 6, image_size=16, augment="strong", seed=2)[0]
    assert batch.shape == (6, 16, 16, 3) and labels.shape == (6, 3)


def test_mixing_preset_without_class_count_is_a_clear_error():
    with pytest.raises(UsageError, match="number of classes"):
        Augmenter("strong", seed=0)(random_images(), np.array([0, 1, 0, 1]))
    # the per-image part needs no labels
    assert augment_batch(random_images(), "strong").shape == (4, 32, 32, 3)


def test_randaugment_draws_ops_per_image_from_all_fourteen():
    augment = RandAugment(num_ops=2, seed=3)
    seen = set()
    for _ in range(4):
        out = augment(random_images(n=16).astype(np.float32))
        assert out.shape == (16, 32, 32, 3) and 0 <= out.min() and out.max() <= 255
        assert augment.last_ops.shape == (2, 16)
        assert len(set(augment.last_ops[0])) > 1  # not one op for the whole batch
        seen.update(augment.last_ops.ravel().tolist())
    assert len(seen) >= 12 and max(seen) < len(OPS)


def test_randaugment_leaves_colour_ops_out_of_grayscale():
    augment = RandAugment(seed=0)
    for _ in range(6):
        out = augment(random_images(n=16, channels=1).astype(np.float32))
        assert out.shape == (16, 32, 32, 1)
        assert OPS.index("color") not in augment.last_ops


@pytest.mark.parametrize("name", [op for op in OPS if op != "identity"])
def test_every_randaugment_op_runs_on_this_backend(name):
    layer = RandAugment(magnitude=1.0, seed=1).layers[name]
    images = random_images(n=3).astype(np.float32)
    from portaclass.backend import to_numpy

    out = np.asarray(to_numpy(layer(images, training=True)))
    assert out.shape == images.shape and np.isfinite(out).all()
    assert not np.allclose(out, images), f"{name} changed nothing at full magnitude"


def test_randaugment_magnitude_is_checked():
    with pytest.raises(ValueError, match="magnitude"):
        RandAugment(magnitude=1.5)


def test_equalize_works_per_image_and_spreads_a_dull_image():
    rng = np.random.default_rng(0)
    dull = rng.integers(100, 140, (1, 16, 16, 3)).astype(np.float32)
    bright = rng.integers(0, 255, (1, 16, 16, 3)).astype(np.float32)
    flat = np.full((1, 16, 16, 3), 77.0, np.float32)
    together = Equalize()(np.concatenate([dull, bright, flat]))
    alone = np.concatenate([Equalize()(dull), Equalize()(bright), Equalize()(flat)])
    np.testing.assert_array_equal(together, alone)  # no histogram shared across the batch
    assert together[0].min() == 0 and together[0].max() == 255
    np.testing.assert_array_equal(together[2], flat[0])  # one level: nothing to spread


def test_mixed_labels_describe_the_mixed_pixels():
    """Each image is one flat grey level and its own class, so a mixed
    image's mean level must equal its label weights times the levels."""
    n = 8
    levels = np.linspace(10, 240, n).astype(np.float32)
    size = 64
    images = np.broadcast_to(levels[:, None, None, None], (n, size, size, 3)).copy()
    # Keras' CutMix weighs labels by the box's exact area while the pasted
    # patch is whole pixels: allow one row and one column of difference.
    tolerance = 2 * (levels.max() - levels.min()) / size
    mixer = BatchMixer(num_classes=n, seed=5)
    methods = set()
    for _ in range(12):
        out, soft = mixer(images, np.arange(n))
        methods.add(mixer.last_method)
        assert soft.shape == (n, n) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
        assert ((soft > 1e-6).sum(axis=1) <= 2).all()  # each image blends with at most one other
        np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), soft @ levels, atol=tolerance)
    assert methods == {"mixup", "cutmix"}


def test_one_hot_passes_soft_rows_through():
    assert one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    soft = np.array([[0.3, 0.7, 0.0]], np.float32)
    assert one_hot(soft, 3) is soft
