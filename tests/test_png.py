"""rendiff.io.png: PNG bytes decoded by Pillow (which checks every chunk's CRC and the zlib
stream's checksum) give back the pixels exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rendiff.io.png import png_bytes


@pytest.mark.parametrize("shape", [(37, 53, 3), (1, 9, 3), (12, 1, 3), (20, 31)])
def test_round_trip_through_pillow(shape):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    a[: shape[0] // 2] = a[0]  # repeated rows: the Up filter's zeros
    im = Image.open(io.BytesIO(png_bytes(a)))
    im.load()
    assert im.mode == ("RGB" if len(shape) == 3 else "L") and im.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(im), a)


def test_flat_images_compress_and_bytes_depend_on_pixels_only():
    a = np.full((200, 300, 3), 90, dtype=np.uint8)
    a[50:120, 40:200] = (200, 30, 10)
    data = png_bytes(a)
    assert len(data) < a.nbytes / 50
    assert png_bytes(a.copy()) == data


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"need uint8 \[H, W, 3\] or \[H, W\], got float32"):
        png_bytes(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="empty image"):
        png_bytes(np.zeros((0, 4, 3), np.uint8))
