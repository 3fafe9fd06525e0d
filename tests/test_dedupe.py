"""`daad dedupe` on real MVTec AD anomalies with planted near-duplicates, as a curator would run it."""

from __future__ import annotations

import io
from pathlib import Path

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageEnhance

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.record import Record
from daad.cli import main
from daad.collectors.datasets import collect_dataset
from daad.curate.dedupe import DUPLICATE_TAG, dedupe
from daad.curate.hashing import hash_files, hex_array
from daad.core.ingest import Item, ingest
from daad.core.media_store import MediaStore
from daad.curate.near_duplicates import BruteForce, MultiIndexHash


def _jpeg60(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=60)
    return Image.open(io.BytesIO(buf.getvalue()))


def _crop2(im: Image.Image) -> Image.Image:
    """Cut 2% of each dimension, 1% from every side."""
    dx, dy = round(im.width * 0.01), round(im.height * 0.01)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


PLANTS = {
    "jpeg60": _jpeg60,
    "resize50": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "crop2": _crop2,
    "bright10": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "hflip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


@pytest.fixture(scope="module")
def planted_home(shared_data: Path, tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A DAAD_HOME with MVTec AD's 15 anomalies collected, and web-search copies (every plant) of 8 of them.

    8 of 15 keeps the test fast (ingest encodes every copy); benchmarks/dedupe.py plants all.
    Returns (home, {copy id: (original id, plant name)}); built once, copied per test.
    """
    home = tmp_path_factory.mktemp("planted") / "home"
    catalog, store = Catalog(home), MediaStore(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAAD_HOME", str(home))  # collect_dataset treats an empty catalog as "none given"
        collect_dataset("mvtec_ad", shared_data / "mvtec_ad", catalog=catalog, store=store, progress=False)
    originals = catalog.find(origin="mvtec_ad")
    assert len(originals) >= 14
    items, want = [], []
    for rec in originals[::2]:
        with Image.open(store.image_path(rec.id)) as im:
            im.load()
        for name, fn in PLANTS.items():
            items.append(Item(image=fn(im), name=f"{rec.origin_ref}:{name}", source=taxonomy.ONLINE_SEARCH, origin="openverse", license="CC-BY-4.0"))
            want.append((rec.id, name))
    report = ingest(items, catalog, store, progress=False)
    assert report.count("added") == len(items), report.summary()
    catalog.close()
    return home, dict(zip(report.added, want))  # every item was added, in order


def _get(catalog: Catalog, sample_id: str) -> Record:
    rec = catalog.get(sample_id)
    assert rec is not None, f"no sample {sample_id}"
    return rec


def _use(planted_home, daad_home: Path) -> tuple[Catalog, MediaStore, dict[str, tuple[str, str]]]:
    shutil.copytree(planted_home[0], daad_home)
    return Catalog(daad_home), MediaStore(daad_home), planted_home[1]


def test_planted_copies_of_mvtec_anomalies_are_all_found_and_distinct_anomalies_never_paired(planted_home, daad_home):
    catalog, store, copies = _use(planted_home, daad_home)
    report = dedupe(catalog, store, variants=True, progress=False)

    for copy_id, (orig_id, _) in copies.items():
        rec = _get(catalog, copy_id)
        assert rec.duplicate_of == orig_id, (rec.origin_ref, report.summary())  # the ground-truth-mask original is kept
        assert DUPLICATE_TAG in rec.tags
    originals = catalog.find(origin="mvtec_ad")
    assert all(r.duplicate_of is None and DUPLICATE_TAG not in r.tags for r in originals)
    # one cluster per planted original: no two distinct MVTec anomalies end up together
    assert len(report.clusters) == len({orig for orig, _ in copies.values()})
    assert len(originals) == 15
    hashes = [(r.phash, r.dhash) for r in originals if r.phash and r.dhash]
    assert len(hashes) == len(originals), "dedupe stores every hash"
    p, d = hex_array(h[0] for h in hashes), hex_array(h[1] for h in hashes)
    assert len(MultiIndexHash().self_pairs(p, d, report.k)[0]) == 0
    assert all(c.representative.origin == "mvtec_ad" and all(m.origin == "openverse" for m in c.members) for c in report.clusters)
    assert max(d for c in report.clusters for d in c.distances) <= report.k
    # hashes are stored as imagehash's 16-hex-digit strings and the change is logged
    assert all(r.phash is not None and r.dhash is not None and len(r.phash) == len(r.dhash) == 16 for r in catalog)
    assert any(e["field"] == "duplicate_of" and e["who"] == "dedupe" for e in catalog.events(next(iter(copies))))

    # re-running changes nothing
    again = dedupe(catalog, store, variants=True, progress=False)
    assert again.marked == again.released == 0 and again.duplicates == report.duplicates


def test_without_variants_mirrored_copies_are_not_found_and_are_released(planted_home, daad_home):
    catalog, store, copies = _use(planted_home, daad_home)
    dedupe(catalog, store, variants=True, progress=False)
    assert all(_get(catalog, c).duplicate_of for c in copies)
    report = dedupe(catalog, store, variants=False, progress=False)
    flipped = [_get(catalog, c) for c, (_, plant) in copies.items() if plant == "hflip"]
    others = [_get(catalog, c) for c, (_, plant) in copies.items() if plant != "hflip"]
    # a mirrored bottle (seen from above, nearly symmetric) may still match; mirrored capsules do not
    assert sum(r.duplicate_of is None for r in flipped) >= len(flipped) // 2
    assert report.released == sum(r.duplicate_of is None for r in flipped)
    assert all(DUPLICATE_TAG not in r.tags for r in flipped if r.duplicate_of is None)
    assert all(r.duplicate_of == copies[r.id][0] for r in others)


def test_representative_rule_mask_then_size_then_source(shared_data, catalog, store):
    src = shared_data / "magnetic_tile" / "MT_Crack" / "Imgs"
    image = sorted(src.glob("*.jpg"))[0]
    mask = image.with_suffix(".png")
    im = Image.open(image).convert("L")
    big = im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC)
    items = [
        Item(image=im, name="web-small", source=taxonomy.ONLINE_SEARCH, origin="openverse"),
        Item(image=big, name="web-big", source=taxonomy.ONLINE_SEARCH, origin="wikimedia"),
        Item(image=_jpeg60(big), name="photo-big", source=taxonomy.PHOTOGRAPH, origin="photos:bench"),
    ]
    ids = [o.sample_id for o in ingest(items, catalog, store, progress=False).outcomes]
    dedupe(catalog, store, progress=False)
    # no masks: the larger images win over the small one, and between the two large ones the photograph
    # (source priority) wins when sizes tie
    assert catalog.get(ids[2]).duplicate_of is None
    assert catalog.get(ids[0]).duplicate_of == ids[2] and catalog.get(ids[1]).duplicate_of == ids[2]
    # an annotated mask beats size and source
    annotated = ingest(
        [Item(image=_jpeg60(im), name="annotated", source=taxonomy.ONLINE_SEARCH, origin="flickr", mask=mask, mask_status=taxonomy.ANNOTATED, mask_binarize=True)],
        catalog, store, progress=False,
    ).outcomes[0].sample_id
    report = dedupe(catalog, store, progress=False)
    assert catalog.get(annotated).duplicate_of is None
    assert {catalog.get(i).duplicate_of for i in ids} == {annotated}
    assert report.marked == 3 and report.released == 0 and len(report.clusters) == 1


def test_multi_index_hashing_is_exact(shared_data):
    """MIH finds exactly the pairs brute force finds, on real hashes plus random ones."""
    paths = sorted((shared_data / "magnetic_tile").rglob("*.jpg"))[:300]
    h = hash_files(paths, progress=False)
    rng = np.random.default_rng(0)
    p = np.concatenate([h.phash, rng.integers(0, 2**64, 2000, dtype=np.uint64, endpoint=False)])
    d = np.concatenate([h.dhash, rng.integers(0, 2**64, 2000, dtype=np.uint64, endpoint=False)])
    for k in (0, 4, 8, 13):
        a, b = MultiIndexHash().self_pairs(p, d, k), BruteForce().self_pairs(p, d, k)
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), k
        q, r = MultiIndexHash().cross_pairs(p[:200], d[:200], p, d, k), BruteForce().cross_pairs(p[:200], d[:200], p, d, k)
        order = np.lexsort((r[1], r[0]))
        assert all(np.array_equal(x, y[order]) for x, y in zip(q, r)), k
    assert len(MultiIndexHash().self_pairs(p, d, 8)[0]) > 0  # magnetic tile has real near-duplicates


def test_cli_dedupe_prints_clusters_and_saves_a_contact_sheet(planted_home, daad_home, artifacts):
    _, _, copies = _use(planted_home, daad_home)
    sheet = artifacts / "dedupe_contact_sheet.png"
    res = CliRunner().invoke(main, ["dedupe", "--variants", "--quiet", "--plot", str(sheet), "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert f"{len(copies)} duplicates marked" in res.output
    assert "cluster 1: keep" in res.output and "dup " in res.output and "distance" in res.output
    with Image.open(sheet) as im:
        assert im.width > 300 and im.height > 8 * 128
    listed = CliRunner().invoke(main, ["ls", "--representatives"])
    assert listed.exit_code == 0 and "openverse" not in listed.output
