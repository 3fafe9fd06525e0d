"""daad.synthesis.png: the Folder writer's PNG encoder gives the array's pixels back to every reader, the same bytes each time."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from daad.core.images import plain_png_array
from daad.demo import DEMO_DATA
from daad.synthesis.png import FILTER_NONE, FILTER_UP, filtered_rows, png_bytes


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    real = np.asarray(Image.open(DEMO_DATA / "targets" / "capsule_good_001.png").convert("RGB"))
    mask = np.asarray(Image.open(next((DEMO_DATA / "mvtec_ad").glob("*/ground_truth/*/*.png"))).convert("L"))
    return [real, real[..., 0], real[5:300:3, 7:200:2], mask, (mask > 0).astype(np.uint8) * 255,
            rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), rng.integers(0, 256, (1, 37), dtype=np.uint8),
            rng.integers(0, 256, (29, 1), dtype=np.uint8), rng.integers(0, 256, (17, 23, 4), dtype=np.uint8),
            rng.integers(0, 256, (9, 11, 2), dtype=np.uint8), np.zeros((64, 64), np.uint8),
            np.full((31, 47, 3), 255, np.uint8)]


@pytest.mark.parametrize("row_filter", [FILTER_NONE, FILTER_UP])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_every_reader_decodes_the_arrays_pixels(row_filter, level):
    for a in _arrays():
        data = png_bytes(a, row_filter, level)
        im = Image.open(io.BytesIO(data))
        im.load()  # PIL checks each chunk's CRC as it reads
        assert np.array_equal(np.asarray(im), a), (a.shape, im.mode)
        c = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert c is not None
        want = a if a.ndim == 2 or a.shape[2] <= 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        if a.ndim == 3 and a.shape[2] == 1:
            want = a[..., 0]
        if a.ndim == 3 and a.shape[2] == 2:  # libpng gives grey+alpha as BGRA
            want = cv2.cvtColor(a[..., 0], cv2.COLOR_GRAY2BGR)
            want = np.dstack([want, a[..., 1]])
        assert np.array_equal(c, want), a.shape
        if a.ndim == 2 or a.shape[2] == 3:  # the plain PNGs the release reader decodes with cv2
            plain = plain_png_array(data)
            assert plain is not None and np.array_equal(plain, a)


def test_the_same_array_gives_the_same_bytes_and_the_filter_is_the_one_asked_for():
    a = _arrays()[0]
    assert png_bytes(a) == png_bytes(a.copy()) == png_bytes(np.asfortranarray(a))
    for row_filter in (FILTER_NONE, FILTER_UP):
        data = png_bytes(a, row_filter)
        idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
        rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(a.shape[0], -1)
        assert (rows[:, 0] == row_filter).all()
        assert np.array_equal(rows, filtered_rows(a, row_filter))
    up = filtered_rows(a, FILTER_UP)[:, 1:].astype(int)
    flat = a.reshape(a.shape[0], -1).astype(int)
    assert np.array_equal(up[1:], (flat[1:] - flat[:-1]) % 256) and np.array_equal(up[0], flat[0])


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4), np.uint8),
                                 np.zeros(4, np.uint8), np.zeros((2, 2, 2, 2), np.uint8)])
def test_arrays_png_cannot_hold_are_refused(bad):
    with pytest.raises(ValueError):
        png_bytes(bad)


def test_levels_and_filters_outside_the_encoders_are_refused():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError):
        png_bytes(a, level=4)
    with pytest.raises(ValueError):
        png_bytes(a, row_filter=1)
