"""PublishedPool's own decoding (Arrow cells, cv2 for 8-bit grey PNG masks) gives what PIL gave, on real files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daad.synthesis.cai import patterns
from daad.synthesis.cai.matching import bbox


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _pil_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) >= 128


@pytest.fixture(scope="module")
def real_pairs(shared_data) -> list[tuple[Path, Path]]:
    """Magnetic Tile images with their grey-valued masks (values other than 0/255, so the >= 128 rule matters)."""
    pairs = []
    for kind in ("MT_Crack", "MT_Blowhole", "MT_Uneven"):
        for jpg in sorted((shared_data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:3]:
            pairs.append((jpg, jpg.with_suffix(".png")))
    if not pairs:
        pytest.skip("no Magnetic Tile images in ../shared/data")
    return pairs


def test_mask_cells_decode_as_pil_does_in_every_png_mode(real_pairs):
    for _, mask_file in real_pairs:
        data = mask_file.read_bytes()
        grey = Image.open(io.BytesIO(data)).convert("L")
        for variant in (data, _png(grey), _png(grey.convert("RGB")), _png(grey.convert("P")), _png(grey.convert("I;16"))):
            want = _pil_mask(variant)
            got = patterns._mask_array({"bytes": variant, "path": None})
            assert got.dtype == bool and got.shape == want.shape
            assert np.array_equal(got, want), mask_file.name


def test_pool_sides_patterns_and_a_byte_bounded_cache(real_pairs, monkeypatch):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), "id": datasets.Value("string"),
                                  "origin": datasets.Value("string"),
                                  "anomaly_class": datasets.ClassLabel(names=["crack", "hole", "uneven"])})
    rows = {"image": [], "mask": [], "id": [], "origin": [], "anomaly_class": []}
    for i, (img, msk) in enumerate(real_pairs):
        rows["image"].append({"bytes": img.read_bytes(), "path": None})
        rows["mask"].append({"bytes": msk.read_bytes(), "path": None})
        rows["id"].append(f"id{len(real_pairs) - i:02d}")  # ids in reverse row order: the pool sorts by id
        rows["origin"].append("magnetic_tile")
        rows["anomaly_class"].append(i // 3)
    ds = datasets.Dataset.from_dict(rows, features=features)
    pool = patterns.PublishedPool(ds)
    by_id = sorted(range(len(real_pairs)), key=lambda i: rows["id"][i])
    for k, row in enumerate(by_id):
        img, msk = real_pairs[row]
        mask = _pil_mask(msk.read_bytes())
        box = bbox(mask)
        assert pool.sides[k] == (0 if box is None else max(box[2], box[3]))
        want = patterns.Pattern(np.asarray(Image.open(img)), mask).cropped()
        got = pool.get(k)
        assert np.array_equal(got.image, want.image) and np.array_equal(got.mask, want.mask)
        assert got.id == rows["id"][row] and got.origin == "magnetic_tile"
    assert len(pool._cache) == len(real_pairs)

    one = pool.get(0).image.nbytes + pool.get(0).mask.nbytes
    monkeypatch.setattr(patterns, "CACHE_BYTES", one)
    small = patterns.PublishedPool(ds)
    for k in range(len(real_pairs)):
        small.get(k)
        assert small._cached_bytes <= one or len(small._cache) == 1  # over budget only when one crop alone exceeds it
    assert 1 <= len(small._cache) < len(real_pairs)
