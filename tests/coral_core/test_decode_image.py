"""``coral_core.formats.raster_io.decode_image``: one decoder for the bridge, the Nuclio functions
and ``coralseg infer`` -- the same array for the same file, whether given as bytes or as a path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import (
    ImageTooLargeError,
    decode_image,
    open_image,
    pillow_image_to_rgb,
)


def _encoded(pixels: np.ndarray, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _deep_gray() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 65536, (30, 40), dtype=np.uint16)


@pytest.mark.parametrize("image_format", ["PNG", "TIFF"])
def test_16_bit_keeps_the_top_8_bits_from_bytes_and_from_a_path(
    image_format: str, tmp_path: Path
) -> None:
    deep = _deep_gray()
    data = _encoded(deep, image_format)
    path = tmp_path / f"deep.{image_format.lower()}"
    path.write_bytes(data)
    expected = np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, axis=2)
    from_bytes = decode_image(data)
    assert from_bytes.dtype == np.uint8 and from_bytes.shape == (30, 40, 3)
    assert np.array_equal(from_bytes, expected)
    assert np.array_equal(decode_image(path), expected)
    with open_image(path) as source:  # what `coralseg infer` reads window by window
        assert np.array_equal(source.read(), expected)
    with Image.open(io.BytesIO(data)) as opened:  # what cvat-sdk hands a function
        assert np.array_equal(pillow_image_to_rgb(opened), expected)


def test_exif_orientation_is_applied() -> None:
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 256, (20, 36, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    data = _encoded(stored, "PNG", exif=exif)
    shown = decode_image(data)
    assert shown.shape == (36, 20, 3)
    assert np.array_equal(shown, np.rot90(stored, k=-1))


def test_too_many_pixels_are_refused_before_decoding() -> None:
    data = _encoded(np.zeros((100, 120, 3), np.uint8), "PNG")
    with pytest.raises(ImageTooLargeError, match="120 x 100 pixels") as caught:
        decode_image(data, max_pixels=100 * 119, name="frame 4")
    assert "frame 4" in str(caught.value)
    assert decode_image(data, max_pixels=100 * 120).shape == (100, 120, 3)


@pytest.mark.parametrize("data", [b"", b"\xff\xd8 not really a jpeg", b"II*\x00broken tiff"])
def test_unreadable_bytes_are_a_sentence(data: bytes) -> None:
    with pytest.raises(CoralsegError, match="cannot read image the image bytes"):
        decode_image(data)
