"""daad.curate.hashing gives imagehash's bits, on the real images of ../shared/data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from daad.curate import hashing
from daad.core.images import IMAGE_SUFFIXES, load_image


def _real_images(shared_data: Path, n_per_dataset: int = 12) -> list[Path]:
    """A fixed sample of every dataset's images (RGB, grey, JPEG, PNG, BMP-in-.png)."""
    rng = random.Random(5)
    out = []
    for ds in sorted(p for p in shared_data.iterdir() if p.is_dir()):
        files = sorted(
            p for p in ds.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "ground_truth" not in p.parts and not p.stem.endswith("_mask")
        )
        out += rng.sample(files, min(n_per_dataset, len(files)))
    return out


def test_phash_dhash_are_imagehash_bit_for_bit(shared_data):
    paths = _real_images(shared_data)
    assert len(paths) > 50
    batch = hashing.hash_files(paths, workers=2, progress=False)
    assert batch.ok.all() and not batch.errors
    for path, p, d in zip(paths, batch.phash, batch.dhash):
        im = load_image(path)
        assert hashing.to_hex(p) == str(imagehash.phash(im)) == hashing.phash(im), path
        assert hashing.to_hex(d) == str(imagehash.dhash(im)) == hashing.dhash(im), path
        # the stored string round-trips through imagehash's own parser
        assert imagehash.hex_to_hash(hashing.to_hex(p)) == imagehash.phash(im)


def test_dihedral_variants_are_imagehash_of_the_transposed_image(shared_data):
    path = shared_data / "mvtec_ad" / "capsule" / "test" / "crack" / "001.png"
    im = load_image(path)
    h = hashing.hash_images([im], variants=True)
    pv, dv = h.phash_variants, h.dhash_variants
    assert pv is not None and dv is not None
    assert pv.shape == (1, 8)
    assert pv[0, 0] == h.phash[0]
    for col, t in enumerate(hashing.DIHEDRAL):
        moved = im if t is None else im.transpose(t)
        assert hashing.to_hex(pv[0, col]) == str(imagehash.phash(moved))
        assert hashing.to_hex(dv[0, col]) == str(imagehash.dhash(moved))
    # a mirrored copy's own hash is one of the original's variants
    mirrored = hashing.hash_images([im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert mirrored.phash[0] in pv[0]


def test_flat_and_tiny_images_match_imagehash():
    """Flat images leave only rounding noise in the DCT: the batched DCT must give the same noise."""
    ims = [Image.new("L", (64, 48), 7), Image.new("RGB", (5, 3), (200, 10, 10)), Image.fromarray(np.eye(40, dtype=np.uint8) * 255)]
    h = hashing.hash_images(ims)
    for im, p, d in zip(ims, h.phash, h.dhash):
        assert hashing.to_hex(p) == str(imagehash.phash(im))
        assert hashing.to_hex(d) == str(imagehash.dhash(im))


def test_a_bad_file_is_named_and_the_batch_goes_on(shared_data, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = shared_data / "mvtec_ad" / "bottle" / "test" / "good" / "001.png"
    h = hashing.hash_files([good, bad, good], workers=1, progress=False)
    assert h.ok.tolist() == [True, False, True]
    assert len(h.errors) == 1 and h.errors[0].startswith(str(bad))
    assert h.phash[0] == h.phash[2] != 0
    assert hashing.to_hex(h.phash[0]) == str(imagehash.phash(Image.open(good)))


def test_every_real_rgb_jpeg_keeps_imagehash_bits(shared_data):
    """Every RGB JPEG in the real data, through hash_files' own decoding (no normalising copy)."""
    jpegs = []
    for p in sorted(shared_data.rglob("*.jpg")):
        with Image.open(p) as im:
            if im.mode == "RGB":
                jpegs.append(p)
    assert len(jpegs) > 200
    batch = hashing.hash_files(jpegs, workers=2, progress=False)
    assert batch.ok.all()
    for path, p, d in zip(jpegs, batch.phash, batch.dhash):
        im = load_image(path)
        assert hashing.to_hex(p) == str(imagehash.phash(im)) and hashing.to_hex(d) == str(imagehash.dhash(im)), path


def test_fast_mode_downscales_jpegs_and_stays_within_a_few_bits(shared_data):
    jpegs = sorted((shared_data / "crackforest").rglob("*.jpg"))[:20] + sorted((shared_data / "magnetic_tile").rglob("*.jpg"))[:20]
    big = max(jpegs, key=lambda p: Image.open(p).width)
    assert hashing.decode_grey(big, fast=True).width < Image.open(big).width  # really decoded smaller (DCT scaling)
    exact = hashing.hash_files(jpegs, workers=1, progress=False)
    fast = hashing.hash_files(jpegs, workers=1, progress=False, fast=True)
    dist = hashing.hamming(exact.phash, fast.phash) + hashing.hamming(exact.dhash, fast.dhash)
    assert dist.max() <= 16 and dist.mean() < 6  # near-identical: the same image, slightly different thumbnails
    pngs = sorted((shared_data / "mvtec_ad").glob("*/test/good/*.png"))[:10]  # fast mode box-reduces big PNGs first
    exact, fast = hashing.hash_files(pngs, workers=1, progress=False), hashing.hash_files(pngs, workers=1, progress=False, fast=True)
    assert (hashing.hamming(exact.phash, fast.phash) + hashing.hamming(exact.dhash, fast.dhash)).max() <= 16


def test_a_small_batch_hashes_in_this_process_a_large_one_in_a_pool(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        Image.new("L", (64, 64), 40 * i).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    size = sum(f.stat().st_size for f in files)
    assert hashing.default_workers(files) == 1  # a few KB: a pool's start-up would cost more than the work
    cpus = os.cpu_count() or 1
    assert hashing.default_workers(files, min_bytes=size) == cpus  # the threshold reached: one process per CPU
    assert hashing.default_workers([tmp_path / "missing.png", *files], min_bytes=size + 1) == 1  # a missing file counts 0
