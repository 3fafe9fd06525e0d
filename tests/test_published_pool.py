"""The synthesis side's own decoding (Arrow cells, cv2 for plain PNGs and grey masks, patterns and targets decoded in background threads) gives what PIL gives, on real files."""

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


def _real_images(shared_data: Path) -> list[Path]:
    """A few real files of each dataset in ../shared/data: MVTec AD PNGs, Magnetic Tile, DeepPCB, CrackForest, NEU-DET, glass JPGs and PNGs."""
    files: list[Path] = []
    for pattern in ("mvtec_ad/*/test/*/*.png", "mvtec_ad/*/ground_truth/*/*.png", "magnetic_tile/MT_*/Imgs/*.jpg",
                    "magnetic_tile/MT_*/Imgs/*.png", "deeppcb/**/*.jpg", "crackforest/**/*.jpg", "crackforest/**/*.png",
                    "neu_det/**/*.jpg", "glass_industrial/**/*.png", "glass_industrial/**/*.jpg"):
        files += sorted(shared_data.glob(pattern))[:4]
    return files


def test_plain_pngs_decode_to_pils_pixels_and_nothing_else_is_taken(shared_data):
    from daad.core.images import plain_png_array

    files = _real_images(shared_data)
    if len(files) < 10:
        pytest.skip("too few real images in ../shared/data")
    plain = 0
    for f in files:
        im = Image.open(f)
        im.load()
        for mode in ("L", "RGB"):
            data = _png(im.convert(mode))  # what `daad publish` stores: PIL's PNG, no metadata
            got = plain_png_array(data)
            assert got is not None, f.name
            assert got.dtype == np.uint8 and np.array_equal(got, np.asarray(Image.open(io.BytesIO(data)))), (f.name, mode)
            plain += 1
        if f.suffix == ".png":  # the publisher's own file: taken only when plain, and then PIL's pixels
            data = f.read_bytes()
            got = plain_png_array(data)
            if got is not None:
                assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(data)))), f.name
        grey = im.convert("L")
        refused = [_png(grey.convert("P")), _png(grey.convert("RGBA")), _png(grey.convert("LA")), _png(grey.convert("I;16")),
                   f.read_bytes() if f.suffix == ".jpg" else b""]
        buf = io.BytesIO()
        grey.save(buf, format="PNG", transparency=0)  # a tRNS chunk: libpng would add alpha
        refused.append(buf.getvalue())
        for data in refused:
            assert plain_png_array(data) is None, f.name
    assert plain >= 20


def test_prefetch_fills_the_cache_with_the_same_patterns_bounded_and_stops(real_pairs):
    import pickle

    import datasets

    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), "id": datasets.Value("string"),
                                  "origin": datasets.Value("string"), "anomaly_class": datasets.ClassLabel(names=["crack"])})
    rows = {"image": [{"bytes": _png(Image.open(i).convert("L")), "path": None} for i, _ in real_pairs],
            "mask": [{"bytes": m.read_bytes(), "path": None} for _, m in real_pairs],
            "id": [f"id{i:02d}" for i in range(len(real_pairs))], "origin": ["magnetic_tile"] * len(real_pairs),
            "anomaly_class": [0] * len(real_pairs)}
    ds = datasets.Dataset.from_dict(rows, features=features)
    cold = patterns.PublishedPool(ds)
    warm = patterns.PublishedPool(ds)
    warm.prefetch(3)  # at most the 3 a short run would draw, never the whole pool
    warm.prefetch(3)  # a second call while one runs starts nothing
    warm._prefetcher.join()  # type: ignore[union-attr]
    assert len(warm._cache) == 3
    warm.prefetch()
    warm._prefetcher.join()  # type: ignore[union-attr]
    assert len(warm._cache) == len(real_pairs)
    for k in range(len(real_pairs)):
        a, b = cold.get(k), warm.get(k)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.id == b.id
    again = pickle.loads(pickle.dumps(warm))  # a worker's copy: no cache, no thread, a lock of its own
    assert len(again._cache) == 0 and again._prefetcher is None
    assert np.array_equal(again.get(1).image, cold.get(1).image)
    stopped = patterns.PublishedPool(ds)
    decode = stopped._decode

    def decode_then_stop(i: int) -> patterns.Pattern:  # Ctrl-C arrives while the first pattern decodes
        got = decode(i)
        stopped._stop.set()
        return got

    stopped._decode = decode_then_stop  # type: ignore[method-assign]
    stopped.prefetch()
    stopped._prefetcher.join()  # type: ignore[union-attr]
    assert list(stopped._cache) == [0]  # the decode under way finished, no other started
    stopped.stop_prefetch()
    assert stopped._prefetcher is None


def test_read_ahead_gives_the_targets_as_read_now_in_any_order(shared_data, tmp_path):
    from daad.synthesis.cai.output import ReadAhead, _read_target

    files = sorted((shared_data / "mvtec_ad").glob("*/test/good/*.png"))[:3]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    paths = [files[0], bad, *files[1:]]
    ahead = ReadAhead(paths, 64)
    assert np.array_equal(ahead.read(files[0]), _read_target(files[0], 64))
    with pytest.raises(Exception) as raised:  # the decode error of the thread is the one `_one_target` reports
        ahead.read(bad)
    with pytest.raises(type(raised.value)):
        _read_target(bad, 64)
    assert np.array_equal(ahead.read(files[2]), _read_target(files[2], 64))  # out of line: decoded now
    assert np.array_equal(ahead.read(files[1]), _read_target(files[1], 64))
    ahead.close()


def test_read_ahead_runs_as_far_ahead_as_its_byte_budget_holds(shared_data):
    """Two ahead left `daad synthesize` waiting on a row of large PNG targets; the budget holds 170 at 256 px, 10 at 1024."""
    from daad.synthesis.cai.output import READ_AHEAD_BYTES, ReadAhead

    files = sorted((shared_data / "mvtec_ad").glob("*/test/good/*.png"))[:6]
    paths = files * 40  # 240 targets
    for size, want in ((256, READ_AHEAD_BYTES // (3 * 256 * 256)), (1024, 10), (None, 2)):
        ahead = ReadAhead(paths, size)
        assert len(ahead._ahead) == min(want, len(paths)), size
        ahead.close()
    ahead = ReadAhead(files, 64)
    for _, job in list(ahead._ahead):
        job.result(timeout=60)  # all six decoded before the first is asked for
    assert [ahead.read(f).shape for f in files] == [(64, 64, 3)] * 6
    ahead.close()
