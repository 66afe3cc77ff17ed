"""Decoding: every colour mode and format to 1 or 3 channels, EXIF rotation,
draft mode, and hostile files reported as reasons, never raised raw."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from portaclass.data.decode import DecodeError, check_image, decode_image
from tests.data.conftest import SMALL_PIXEL_LIMIT, mode_images, write_hostile_files

MODES = mode_images()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_decodes_to_the_requested_channels(tmp_path, mode, channels):
    image = MODES[mode]
    path = tmp_path / ("img.jpg" if mode == "CMYK" else "img.tiff" if mode == "I" else "img.png")
    image.save(path)
    array = decode_image(path, (16, 24), channels=channels)
    assert array.shape == (16, 24, channels)
    assert array.dtype == np.uint8
    assert check_image(path) is None


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "deep.png")
    array = decode_image(tmp_path / "deep.png", channels=1)[..., 0]
    # a clipped image would be 255 almost everywhere
    assert array.min() == 0 and array.max() == 255
    assert 100 < array.mean() < 155


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"),
                                        ("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_every_format_decodes(tmp_path, fmt, suffix):
    path = tmp_path / f"img.{suffix}"
    Image.new("RGB", (30, 20), (10, 200, 30)).save(path, fmt)
    array = decode_image(path, (20, 30))
    assert array.shape == (20, 30, 3)
    assert array[..., 1].mean() > 150  # green survives the round trip


def test_gif_first_frame_is_used(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    array = decode_image(tmp_path / "anim.gif")
    assert array[..., 0].mean() > 200 and array[..., 2].mean() < 50


def test_exif_orientation_is_applied(tmp_path):
    # 40 wide x 20 tall, left half white; Orientation 6 = rotate 90 degrees clockwise to view
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    array = decode_image(tmp_path / "rotated.jpg", channels=1)
    assert array.shape == (40, 20, 1)  # portrait once rotated
    assert array[:20].mean() > 200 and array[20:].mean() < 50  # the white half is now on top


@pytest.fixture
def draft_calls(monkeypatch) -> list:
    """(requested size, decoded size) of each JPEG draft-mode request."""
    calls = []
    original = JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        calls.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    return calls


def test_large_jpeg_uses_draft_mode_and_still_hits_the_target_size(tmp_path, draft_calls):
    Image.new("RGB", (1600, 1200), (90, 90, 90)).save(tmp_path / "big.jpg")
    array = decode_image(tmp_path / "big.jpg", (64, 64))
    assert array.shape == (64, 64, 3)
    (size, decoded_size), = draft_calls
    assert size == (64, 64) and decoded_size == (200, 150)  # libjpeg decoded at 1/8 scale


def quadrants(width=400, height=300) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = (255, 0, 0)
    pixels[: height // 2, width // 2 :] = (0, 255, 0)
    pixels[height // 2 :, : width // 2] = (0, 0, 255)
    pixels[height // 2 :, width // 2 :] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_region_is_decoded_and_resized_to_the_target(tmp_path, suffix):
    quadrants().save(tmp_path / f"q{suffix}", quality=95)
    bottom_right = decode_image(tmp_path / f"q{suffix}", (32, 32), box=(0.55, 0.55, 0.45, 0.45))
    assert bottom_right.shape == (32, 32, 3) and bottom_right.min() > 230
    top_left = decode_image(tmp_path / f"q{suffix}", (16, 24), box=(0.0, 0.0, 0.4, 0.4))
    assert top_left.shape == (16, 24, 3)
    assert top_left[..., 0].min() > 230 and top_left[..., 1:].max() < 25


def test_a_small_region_of_a_large_jpeg_keeps_enough_resolution(tmp_path, draft_calls):
    Image.new("RGB", (1600, 1200), (90, 90, 90)).save(tmp_path / "big.jpg")
    array = decode_image(tmp_path / "big.jpg", (64, 64), box=(0.0, 0.0, 0.25, 0.25))
    assert array.shape == (64, 64, 3)
    (_, decoded_size), = draft_calls
    # a quarter of 400x300 (1/4 scale) still covers 64x64; 1/8 scale would not
    assert decoded_size == (400, 300)


@pytest.mark.parametrize("resize", ["plain", "crop", "pad"])
def test_resize_modes(tmp_path, resize):
    pixels = np.full((20, 60, 3), 255, np.uint8)  # wide white image
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    array = decode_image(tmp_path / "wide.png", (30, 30), resize_mode=resize)
    assert array.shape == (30, 30, 3)
    top_row = array[0].mean()
    if resize == "pad":
        assert top_row == 0  # letterboxed with black above and below
    else:
        assert top_row == 255


def test_hostile_files_give_reasons(tmp_path):
    expected = write_hostile_files(tmp_path)
    for name, reason in expected.items():
        got = check_image(tmp_path / name, max_pixels=SMALL_PIXEL_LIMIT)
        assert got is not None and got.startswith(reason), (name, got)
        with pytest.raises(DecodeError):
            decode_image(tmp_path / name, (8, 8), max_pixels=SMALL_PIXEL_LIMIT)


def test_bomb_limit_is_configurable(tmp_path):
    Image.new("RGB", (120, 120)).save(tmp_path / "big.png")
    assert check_image(tmp_path / "big.png") is None
    assert "14400 pixels > limit 10000" in check_image(tmp_path / "big.png", max_pixels=10_000)
