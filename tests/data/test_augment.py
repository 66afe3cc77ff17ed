"""Augmentation: every draw per image and from (seed, epoch, index), geometry
checked on images whose pixels encode their own coordinates, RandAugment's
ops, and MixUp/CutMix soft labels that agree with the pixels they describe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from portaclass.data.augment import (
    RESIZED_CROP_AREA,
    STANDARD_DEGREES,
    Augmenter,
    augment_batch,
    mixes_labels,
    resized_crop_box,
)
from portaclass.data.decode import fit_region
from portaclass.data.mixing import draw_mix, mix_batch, one_hot
from portaclass.data.randaugment import GEOMETRIC, OPS, Op, RandAugment
from portaclass.errors import UsageError


def random_images(n=4, size=32, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, channels)).astype(np.uint8)


def coordinate_image(height: int, width: int) -> Image.Image:
    """Red = row, green = column, blue = 255: after any resampling, a pixel
    says where in the source it came from (blue < 255 where black fill
    bled in)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([rows, cols, np.full_like(rows, 255)], axis=-1).astype(np.uint8))


def source_map(image: Image.Image) -> np.ndarray:
    """The affine map output (x, y, 1) -> source (x, y), fitted by least
    squares over the pixels untouched by fill: [[a, b, c], [d, e, f]]."""
    pixels = np.asarray(image, np.float64)
    ys, xs = np.nonzero(pixels[..., 2] == 255)
    grid = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs, dtype=np.float64)], axis=1)
    source = np.stack([pixels[ys, xs, 1] + 0.5, pixels[ys, xs, 0] + 0.5], axis=1)
    solution, *_ = np.linalg.lstsq(grid, source, rcond=None)
    return solution.T


def geometry_of_batch(preset: str, n: int, source_hw, size_hw, seed=0, epoch=0):
    """Each image's fitted source map after the preset's geometric step
    (the region decoded at ``input_size``, then ``warp``), and its plan."""
    augmenter = Augmenter(preset, seed=seed, size_hw=size_hw)
    decode_hw = augmenter.input_size(size_hw)
    maps, plans = [], []
    for index in range(n):
        plan = augmenter.plan(epoch, index)
        region = fit_region(coordinate_image(*source_hw), decode_hw, box=plan.box)
        maps.append(source_map(augmenter.warp(region, plan)))
        plans.append(plan)
    return np.array(maps), plans


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


@pytest.mark.parametrize("preset", ["light", "standard", "strong"])
def test_presets_end_at_the_requested_size(preset):
    augmenter = Augmenter(preset, seed=0, size_hw=(24, 20), num_classes=2)
    decode_hw = augmenter.input_size((24, 20))
    # light and standard move a window over a 12.5% larger decode; strong's
    # random resized crop already chose the region
    assert decode_hw == ((27, 22) if preset != "strong" else (24, 20))
    out, _ = augmenter(random_images(size=decode_hw[0])[:, :, : decode_hw[1]], np.array([0, 1, 0, 1]))
    assert out.shape == (4, 24, 20, 3)


def test_light_crops_each_image_at_its_own_offset():
    """The report of issue 9: 108 px images cropped to 96 gave one offset
    per batch. Each image now gets its own, over the whole 0..12 range."""
    augmenter = Augmenter("light", seed=0, size_hw=(96, 96))
    assert augmenter.input_size((96, 96)) == (108, 108)
    source = np.asarray(coordinate_image(108, 108))
    batch = augmenter.transform_images(np.repeat(source[None], 64, axis=0))
    tops = batch[:, 0, :, 0].min(axis=1)
    lefts = batch[:, 0, :, 1].min(axis=1)
    flipped = batch[:, 0, 0, 1] > batch[:, 0, -1, 1]
    assert set(tops[:32]) != {tops[0]} and set(lefts[:32]) != {lefts[0]}  # not one offset per batch
    assert set(tops) == set(range(13)) and set(lefts) == set(range(13))
    assert 16 <= flipped.sum() <= 48
    # a crop and a flip move whole pixels: nothing is resampled
    for image, top, left, flip in zip(batch, tops, lefts, flipped):
        expected = source[int(top) : int(top) + 96, int(left) : int(left) + 96]
        np.testing.assert_array_equal(image, expected[:, ::-1] if flip else expected)


def test_standard_rotates_each_image_by_its_own_angle_within_18_degrees():
    maps, plans = geometry_of_batch("standard", 32, (72, 72), (64, 64))
    angles = np.degrees(np.arctan2(maps[:, 1, 0], maps[:, 1, 1]))
    # within what a 64 px grid sampled at half-pixel steps can show
    np.testing.assert_allclose(angles, [p.degrees for p in plans], atol=1.0)
    assert np.abs(angles).max() <= STANDARD_DEGREES + 1.0
    assert angles.min() < -12 and angles.max() > 12 and len(np.unique(angles.round())) >= 16
    mirrored = np.linalg.det(maps[:, :, :2]) < 0
    assert 8 <= mirrored.sum() <= 24 and list(mirrored) == [p.flip for p in plans]
    # the window's centre moves over the margin too: a translation
    centres = maps[:, :, :2] @ np.array([32.0, 32.0]) + maps[:, :, 2]
    assert np.ptp(centres[:, 0]) >= 5 and np.ptp(centres[:, 1]) >= 5


def test_strong_zooms_flips_and_turns_each_image_on_its_own():
    maps, plans = geometry_of_batch("strong", 48, (64, 64), (32, 32))
    # source pixels per output pixel: the side of the region kept, in 32 px units
    scale = np.sqrt(np.abs(np.linalg.det(maps[:, :, :2]))) / 2
    area = np.array([p.box[2] * p.box[3] for p in plans])
    np.testing.assert_allclose(scale, np.sqrt(area), rtol=0.08)
    assert scale.min() < 0.7 and scale.max() > 0.9  # zooms over 35-100% of the area
    mirrored = np.linalg.det(maps[:, :, :2]) < 0
    assert 12 <= mirrored.sum() <= 36 and list(mirrored) == [p.flip for p in plans]
    # RandAugment's rotations and shears bend the grid of the images that drew them only
    bent = np.abs(maps[:, 0, 1]) + np.abs(maps[:, 1, 0]) > 0.02
    drew = [any(op.name in ("rotate", "shear_x", "shear_y") and abs(op.value) > 0.01 for op in p.ops)
            for p in plans]
    assert list(bent) == drew and 0 < sum(drew) < 48


def test_plans_repeat_per_seed_epoch_and_image_and_change_with_each():
    for preset in ("light", "standard", "strong"):
        plan = Augmenter(preset, seed=0, size_hw=(16, 16)).plan
        again = Augmenter(preset, seed=0, size_hw=(16, 16)).plan
        assert plan(3, 5) == again(3, 5)
        assert plan(3, 5) != plan(4, 5)  # a new draw each epoch
        assert plan(3, 5) != plan(3, 6)  # and for each image
        assert plan(3, 5) != Augmenter(preset, seed=1, size_hw=(16, 16)).plan(3, 5)
    assert Augmenter("none").plan(0, 0) is None


def test_one_augmenter_gives_every_thread_the_same_result():
    augmenter = Augmenter("strong", seed=0, num_classes=3)
    images, labels = random_images(n=8), np.arange(8) % 3
    expected = augmenter(images, labels, epoch=2, batch_index=1)
    all_waiting = threading.Barrier(3, timeout=60)

    def augment(_):
        all_waiting.wait()
        return augmenter(images, labels, epoch=2, batch_index=1)

    with ThreadPoolExecutor(3) as pool:
        for out, soft in pool.map(augment, range(3)):
            np.testing.assert_array_equal(out, expected[0])
            np.testing.assert_array_equal(soft, expected[1])


def test_resized_crop_boxes_lie_inside_the_image_with_the_promised_area():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, height, width = resized_crop_box(rng)
        assert 0 <= top and top + height <= 1 + 1e-9 and 0 <= left and left + width <= 1 + 1e-9
        # clipped to the image side when the aspect asks for more than fits
        assert height * width <= RESIZED_CROP_AREA[1] + 1e-9
        assert height * width >= RESIZED_CROP_AREA[0] * 0.75


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


def test_randaugment_draws_two_ops_per_image_from_all_fourteen():
    augment = RandAugment(num_ops=2, magnitude=0.5)
    drawn = [augment.draw(np.random.default_rng([0, i])) for i in range(200)]
    assert all(len(ops) == 2 for ops in drawn)
    assert len({ops for ops in drawn[:16]}) == 16  # not one pair for the whole batch
    assert {op.name for ops in drawn for op in ops} == set(OPS)
    values = {name: [op.value for ops in drawn for op in ops if op.name == name] for name in OPS}
    # strengths as magnitude 0.5 allows: half of each op's maximum, drawn per image
    assert max(abs(v) for v in values["rotate"]) <= 15 and np.ptp(values["rotate"]) > 10
    assert all(0.55 <= v <= 1.45 for v in values["contrast"]) and np.ptp(values["contrast"]) > 0.3
    assert set(values["posterize"]) == {6.0, 7.0}
    assert all(127.5 <= v <= 255 for v in values["solarize"])


def test_randaugment_leaves_colour_ops_out_of_grayscale():
    augment = RandAugment()
    names = {op.name for i in range(200) for op in augment.draw(np.random.default_rng(i), channels=1)}
    assert "color" not in names and len(names) == len(OPS) - 1


EXTREME = {"rotate": 30.0, "shear_x": 0.3, "shear_y": 0.3, "translate_x": 0.45, "translate_y": 0.45,
           "color": 1.9, "contrast": 1.9, "sharpness": 1.9, "brightness": 100.0, "solarize": 128.0,
           "posterize": 4.0, "auto_contrast": 0.0, "equalize": 0.0}


@pytest.mark.parametrize("name", sorted(EXTREME))
def test_every_randaugment_op_changes_an_image(name):
    rng = np.random.default_rng(1)
    pixels = rng.integers(60, 190, (32, 32, 3)).astype(np.uint8)  # room to stretch and equalise
    image = Image.fromarray(pixels)
    op = (Op(name, EXTREME[name]),)
    if name in GEOMETRIC:
        from portaclass.data.geometry import warp

        out = warp(image, RandAugment.geometry(op, (32, 32)), (32, 32))
    else:
        out = RandAugment.tone(image, op)
    assert out.size == image.size and out.mode == image.mode
    assert not np.array_equal(np.asarray(out), pixels), f"{name} changed nothing at full strength"


def test_randaugment_magnitude_is_checked():
    with pytest.raises(UsageError, match="magnitude"):
        RandAugment(magnitude=1.5)


def test_standard_contrast_and_brightness_act_per_image_around_each_channels_mean():
    from portaclass.data.tonal import contrast_brightness

    pixels = np.random.default_rng(0).integers(80, 180, (16, 16, 3)).astype(np.uint8)
    out = np.asarray(contrast_brightness(Image.fromarray(pixels), 1.2, -20.0), np.float64)
    mean = pixels.mean(axis=(0, 1))
    expected = np.clip(np.clip((pixels - mean) * 1.2 + mean, 0, 255) - 20.0, 0, 255)
    np.testing.assert_allclose(out, expected, atol=0.51)  # Keras' formulas, rounded to uint8


def test_mixed_labels_describe_the_mixed_pixels():
    """Each image is one flat grey level and its own class, so a mixed
    image's mean level must equal its label weights times the levels."""
    n = 8
    levels = np.linspace(10, 240, n).round()
    images = np.broadcast_to(levels[:, None, None, None], (n, 24, 20, 3)).astype(np.uint8)
    methods = set()
    for batch_index in range(12):
        out, soft, mix = mix_batch(images, np.arange(n), n, np.random.default_rng(batch_index))
        methods.add(mix.method)
        assert soft.shape == (n, n) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
        assert ((soft > 1e-6).sum(axis=1) <= 2).all()  # each image blends with at most one other
        assert out.dtype == np.uint8  # a blend rounded to the nearest level, at most half a level off
        np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), soft @ levels, atol=0.5)
    assert methods == {"mixup", "cutmix"}


def test_mixing_is_drawn_per_batch_and_weighted_per_image():
    draws = [draw_mix(np.random.default_rng([0, 0, b]), 16, (32, 32)) for b in range(20)]
    again = draw_mix(np.random.default_rng([0, 0, 3]), 16, (32, 32))
    assert np.array_equal(again.partners, draws[3].partners) and np.array_equal(again.weights, draws[3].weights)
    assert len({tuple(d.partners) for d in draws}) == 20
    assert all(np.ptp(d.weights) > 0 for d in draws)  # not one weight for the whole batch
    assert {d.method for d in draws} == {"mixup", "cutmix"}
    for d in draws:
        if d.method == "cutmix":  # the patch lies inside the image
            top, left, height, width = d.boxes.T
            assert (top >= 0).all() and (top + height <= 32).all() and (left + width <= 32).all()


def test_one_hot_passes_soft_rows_through():
    assert one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    soft = np.array([[0.3, 0.7, 0.0]], np.float32)
    assert one_hot(soft, 3) is soft
