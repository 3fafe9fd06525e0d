"""Hashes and mask boxes at ingest, hashing in threads or processes, and publish on a catalog that stored none (real Magnetic Tile images).

Catalogs written before ingest hashed hold no hashes: publish must hash them, and its
release must be the same bytes as one published from a catalog that hashed at ingest.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import imagehash
import pyarrow.parquet as pq
import pytest
from PIL import Image

from daad.collectors.datasets import get_adapter
from daad.collectors.datasets.collect import collect_dataset
from daad.core.catalog import Catalog
from daad.core.ingest import ingest
from daad.core.mask_box import stored_box
from daad.core.media_store import MediaStore
from daad.curate import hashing
from daad.release.publish import publish

PER_TYPE = 3  # images per defect type: 15 real defects with their masks


def _tile_subset(shared_data: Path, dest: Path) -> Path:
    """The first PER_TYPE images (and masks) of each Magnetic Tile defect type, in the dataset's own layout."""
    for folder in sorted((shared_data / "magnetic_tile").glob("MT_*")):
        if folder.name == "MT_Free":
            continue
        (dest / folder.name / "Imgs").mkdir(parents=True)
        for jpg in sorted((folder / "Imgs").glob("*.jpg"))[:PER_TYPE]:
            for f in (jpg, jpg.with_suffix(".png")):
                shutil.copy(f, dest / folder.name / "Imgs" / f.name)
    return dest


@pytest.fixture(scope="module")
def tiles(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tile_subset(shared_data, tmp_path_factory.mktemp("tiles") / "magnetic_tile")


def test_ingest_stores_imagehash_of_the_stored_image(tiles: Path, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "home")
    store = MediaStore(catalog.home)
    report = collect_dataset("magnetic_tile", tiles, catalog, store, progress=False)
    assert report.count("added") == 5 * PER_TYPE, report.summary()
    recs = catalog.find()
    for rec in recs:
        with Image.open(store.image_path(rec.id)) as im:  # the stored PNG, decoded as a user would
            assert rec.phash == str(imagehash.phash(im)) and rec.dhash == str(imagehash.dhash(im)), rec.id
    files = hashing.hash_files([store.image_path(r.id) for r in recs], progress=False)
    assert [hashing.to_hex(p) for p in files.phash] == [r.phash for r in recs]
    assert [hashing.to_hex(d) for d in files.dhash] == [r.dhash for r in recs]
    catalog.close()


def test_threads_give_imagehash_bits_in_input_order(shared_data: Path, tmp_path: Path) -> None:
    """Several threads on real files of every dataset, a bad file among them: imagehash's bits, errors in order."""
    paths: list[Path] = []
    for ds in ("magnetic_tile", "mvtec_ad", "neu_det", "deeppcb", "glass_industrial", "crackforest"):
        paths += sorted(p for p in (shared_data / ds).rglob("*") if p.suffix.lower() in (".jpg", ".png", ".bmp")
                        and "ground_truth" not in p.parts and not p.stem.endswith("_mask"))[:6]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths.insert(7, bad)
    one = hashing.hash_files(paths, workers=1, threads=1, progress=False)
    many = hashing.hash_files(paths, workers=1, threads=3, chunk=2, progress=False)
    assert (one.ok == many.ok).all() and not many.ok[7] and many.ok.sum() == len(paths) - 1
    assert (one.phash == many.phash).all() and (one.dhash == many.dhash).all()
    assert one.errors == many.errors and len(many.errors) == 1 and "broken.png" in many.errors[0]
    for path, p, d, ok in zip(paths, many.phash, many.dhash, many.ok):
        if ok:
            with Image.open(path) as im:
                assert (hashing.to_hex(p), hashing.to_hex(d)) == (str(imagehash.phash(im)), str(imagehash.dhash(im))), path


def test_ingest_stores_the_box_publish_would_compute(tiles: Path, tmp_path: Path) -> None:
    """Each real mask's stored box is `stored_box` of the stored mask file (what publish computed from the bytes)."""
    catalog = Catalog(tmp_path / "home")
    store = MediaStore(catalog.home)
    collect_dataset("magnetic_tile", tiles, catalog, store, progress=False)
    recs = catalog.find()
    boxes = catalog.mask_boxes(r.mask_sha for r in recs if r.mask_sha)
    assert len(boxes) == len({r.mask_sha for r in recs}) == 5 * PER_TYPE
    for rec in recs:
        assert rec.mask_sha is not None
        assert boxes[rec.mask_sha] == stored_box(store.mask_path(rec.mask_sha).read_bytes()) != [], rec.id
    catalog.close()


def test_facts_stream_in_processes_and_threads(tiles: Path, tmp_path: Path) -> None:
    """A process pool and threads give the same hashes (imagehash's) and boxes, in input order; bad files are named."""
    jpgs = sorted(tiles.rglob("*.jpg"))[:6]
    images: list[Path | None] = list(jpgs)
    masks: list[Path | None] = [p.with_suffix(".png") for p in jpgs]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    images[2], masks[4] = None, bad  # an item with only a mask, and one whose mask cannot be decoded
    images.append(bad)
    masks.append(None)
    got = {}
    for how, kw in (("threads", {"workers": 1, "threads": 2}), ("processes", {"workers": 2})):
        with hashing.FactsStream(images, masks, chunk=2, **kw) as stream:
            parts = list(stream)
        got[how] = ([int(x) for f in parts for x in f.hashes.phash], [b for f in parts for b in f.boxes],
                    [bool(x) for f in parts for x in f.hashes.ok], [e for f in parts for e in f.errors])
    assert got["threads"] == got["processes"]
    phashes, boxes, ok, errors = got["threads"]
    assert ok == [p is not None and p != bad for p in images]
    assert len(errors) == 2 and all("broken.png" in e for e in errors)
    for img, mask, p, box, good in zip(images, masks, phashes, boxes, ok):
        if good:
            assert img is not None
            with Image.open(img) as im:
                assert hashing.to_hex(p) == str(imagehash.phash(im)), img
        if mask is not None and mask != bad:
            assert box == stored_box(mask.read_bytes())
        else:
            assert box is None


@pytest.mark.parametrize("missing", ["hashes", "boxes", "hashes and boxes"])
def test_publish_without_stored_hashes_writes_the_same_release(tiles: Path, tmp_path: Path, missing: str) -> None:
    """An old catalog (no hashes, no mask boxes, or neither) publishes the same shard bytes as a new one, and stores them.

    The old catalog is the new one's copy with its hash columns or its mask boxes emptied
    in SQLite, as a catalog written before ingest stored them holds them: same rows, same
    `added_at` (rows are published in that order, to the second), so any byte of
    difference is the hashing's or the boxing's.
    """
    items = list(get_adapter("magnetic_tile").iter_items(tiles))
    bare = Catalog(tmp_path / "bare")
    ingest(items[:2], bare, MediaStore(bare.home), progress=False, hashes=False)
    assert [(r.phash, r.dhash) for r in bare.find()] == [(None, None)] * 2  # what `hashes=False` (the benchmark's old catalog) stores
    bare.close()

    new = Catalog(tmp_path / "new")
    ingest(items, new, MediaStore(new.home), progress=False)
    assert all(r.phash and r.dhash for r in new.find())
    path = new.path
    new.close()
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    with sqlite3.connect(tmp_path / "old" / path.relative_to(tmp_path / "new")) as db:
        if "hashes" in missing:
            db.execute("UPDATE samples SET phash = NULL, dhash = NULL")
        if "boxes" in missing:
            db.execute("DELETE FROM mask_boxes")
    db.close()

    releases, hashes, boxes = {}, {}, {}
    for name in ("old", "new"):
        catalog = Catalog(tmp_path / name)
        if name == "old":
            assert not any(r.phash or r.dhash for r in catalog.find()) or "hashes" not in missing
            assert not catalog.mask_boxes(r.mask_sha for r in catalog.find() if r.mask_sha) or "boxes" not in missing
        result = publish(catalog, "1.0.0", tmp_path / name / "hub", local=True, progress=False, gated="")
        assert result.rows == 5 * PER_TYPE
        assert all("would be empty" in w for w in result.warnings), result.warnings  # only exclude_magnetic_tile's; no image unreadable
        releases[name] = {rel: (result.path / rel).read_bytes() for rel in result.shards}
        hashes[name] = {r.id: (r.phash, r.dhash) for r in catalog.find()}
        boxes[name] = catalog.mask_boxes(r.mask_sha for r in catalog.find() if r.mask_sha)
        catalog.close()
    assert releases["old"] == releases["new"]  # byte for byte
    assert hashes["old"] == hashes["new"]  # the old catalog now holds what ingest would have stored
    assert boxes["old"] == boxes["new"] and len(boxes["new"]) == 5 * PER_TYPE
    table = pq.read_table(tmp_path / "old" / "hub" / "v1.0.0" / next(iter(releases["old"])), columns=["id", "phash"])
    ids, published = table.column("id").to_pylist(), table.column("phash").to_pylist()
    assert published == [hashes["old"][i][0] for i in ids]


def test_schema_2_catalog_gains_an_empty_box_table(tmp_path: Path) -> None:
    """A catalog of the previous schema opens with a `mask_boxes` table, empty until publish or ingest fills it."""
    from daad.core import catalog as catalog_mod

    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    for stmts in catalog_mod.MIGRATIONS[:2]:
        for stmt in stmts:
            db.execute(stmt)
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    cat = Catalog(tmp_path)
    assert cat.schema_version == catalog_mod.SCHEMA_VERSION == 3
    assert cat.mask_boxes(["ab" * 32]) == {}
    cat.set_mask_boxes([("ab" * 32, [1, 2, 3, 4]), ("cd" * 32, [])])
    cat.set_mask_boxes([("ab" * 32, [9, 9, 9, 9])])  # a box is the mask bytes': never replaced
    assert cat.mask_boxes(["ab" * 32, "cd" * 32, "ef" * 32]) == {"ab" * 32: [1, 2, 3, 4], "cd" * 32: []}
    cat.close()


def test_publish_names_a_damaged_mask_and_goes_on(tiles: Path, tmp_path: Path) -> None:
    """A stored mask that no longer decodes (no box stored) is one warning naming it, not a traceback; the rest publish."""
    catalog = Catalog(tmp_path / "home")
    store = MediaStore(catalog.home)
    collect_dataset("magnetic_tile", tiles, catalog, store, progress=False)
    rec = catalog.find()[0]
    assert rec.mask_sha is not None
    with sqlite3.connect(catalog.path) as db:
        db.execute("DELETE FROM mask_boxes")
    db.close()
    path = store.mask_path(rec.mask_sha)
    path.chmod(0o644)
    path.write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    result = publish(catalog, "1.0.0", tmp_path / "hub", local=True, progress=False, gated="")
    assert result.rows == 5 * PER_TYPE
    bad = [w for w in result.warnings if "mask not readable" in w]
    assert len(bad) == 1 and str(path) in bad[0] and "\n" not in bad[0], result.warnings
    boxes = catalog.mask_boxes(r.mask_sha for r in catalog.find() if r.mask_sha)
    assert rec.mask_sha not in boxes and len(boxes) == 5 * PER_TYPE - 1  # the good ones stored, the damaged one not
    catalog.close()
