"""`daad leakage NAME PATH`: samples from, or near-duplicating, an evaluation dataset are marked."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from daad.core import taxonomy
from daad.cli import main
from daad.collectors.datasets import collect_dataset
from daad.core.ingest import Item, ingest
from daad.curate.leakage import mark_leakage


def _web_copy(path: Path) -> Image.Image:
    """What image search returns: the picture re-encoded as JPEG q75 and downscaled."""
    with Image.open(path) as im:
        small = im.convert("RGB").resize((im.width * 2 // 3, im.height * 2 // 3), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_web_search_record_holding_an_mvtec_image_leaks_mvtec(shared_data, catalog, store, tmp_path, monkeypatch):
    mvtec = tmp_path / "mvtec_anomaly_detection"
    shutil.copytree(shared_data / "mvtec_ad", mvtec)
    collect_dataset("mvtec_ad", mvtec, catalog=catalog, store=store, progress=False)
    # a web-search hit that is MVTec's *normal* test image (never collected as an anomaly), and one that is not MVTec
    good = mvtec / "bottle" / "test" / "good" / "003.png"
    tile = sorted((shared_data / "magnetic_tile" / "MT_Crack" / "Imgs").glob("*.jpg"))[0]
    web = ingest(
        [
            Item(image=_web_copy(good), name="https://example.org/bottle.jpg", source=taxonomy.ONLINE_SEARCH, origin="openverse", license="CC-BY-4.0"),
            Item(image=_web_copy(tile), name="https://example.org/tile.jpg", source=taxonomy.ONLINE_SEARCH, origin="openverse", license="CC-BY-4.0"),
        ],
        catalog, store, progress=False,
    ).added

    report = mark_leakage("mvtec_ad", mvtec, catalog, store, progress=False)
    assert report.eval_images == 33 and not report.cached  # every image: anomalous and good
    assert catalog.get(web[0]).leaks == ["mvtec_ad"]
    assert catalog.get(web[1]).leaks == []
    assert [m.sample_id for m in report.matches] == [web[0]]
    assert report.matches[0].eval_ref == "bottle/test/good/003.png"
    collected = catalog.find(origin="mvtec_ad")
    assert len(collected) == report.by_origin == 15 and all(r.leaks == ["mvtec_ad"] for r in collected)
    assert catalog.find(leaks="mvtec_ad") == sorted([*collected, catalog.get(web[0])], key=lambda r: (r.added_at, r.id))
    assert catalog.events(web[0])[-1]["who"] == "leakage"

    # the evaluation hashes are cached until the folder changes
    again = mark_leakage("mvtec_ad", mvtec, catalog, store, progress=False)
    assert again.cached and again.newly_marked == 0 and len(catalog.eval_hashes("mvtec_ad")) == 33
    extra = mvtec / "bottle" / "test" / "good" / "900.png"
    shutil.copy(tile, extra.with_suffix(".jpg"))
    changed = mark_leakage("mvtec_ad", mvtec, catalog, store, progress=False)
    assert not changed.cached and changed.eval_images == 34
    assert catalog.get(web[1]).leaks == ["mvtec_ad"]  # now the tile *is* an image of the dataset
    os.utime(good, ns=(1, 1))
    assert not mark_leakage("mvtec_ad", mvtec, catalog, store, progress=False).cached


def test_cli_leakage_with_mirrored_copy_and_a_wrong_folder(shared_data, catalog, store, tmp_path):
    capsule = shared_data / "mvtec_ad" / "capsule" / "test" / "good" / "002.png"
    with Image.open(capsule) as im:
        mirrored = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    sample = ingest([Item(image=mirrored, name="mirrored.png", source=taxonomy.ONLINE_SEARCH, origin="wikimedia")], catalog, store, progress=False).added[0]

    res = CliRunner().invoke(main, ["leakage", "mvtec_ad", str(shared_data / "mvtec_ad"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "33 evaluation images (hashed now)" in res.output and "0 near-duplicates" in res.output
    assert catalog.get(sample).leaks == []

    res = CliRunner().invoke(main, ["leakage", "mvtec_ad", str(shared_data / "mvtec_ad"), "--variants", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "(cached hashes)" in res.output and "1 near-duplicates from other origins; 1 newly marked" in res.output
    assert "capsule/test/good/002.png distance 0" in res.output
    assert catalog.get(sample).leaks == ["mvtec_ad"]

    res = CliRunner().invoke(main, ["leakage", "mvtec_ad", str(shared_data / "magnetic_tile"), "--quiet"])
    assert res.exit_code == 1 and "this is not MVTec AD" in res.output and "Traceback" not in res.output


def test_publish_checks_samples_collected_after_leakage(shared_data, catalog, store, tmp_path):
    """A web copy of an MVTec AD image collected after `daad leakage` stays out of the next release's exclude_mvtec_ad."""
    import pyarrow.parquet as pq

    from daad.release.publish import publish

    mvtec = shared_data / "mvtec_ad"
    sub = tmp_path / "mvtec_anomaly_detection" / "capsule"
    for defect, stem in (("crack", "001"), ("scratch", "002")):
        for part, name in (("test", f"{stem}.png"), ("ground_truth", f"{stem}_mask.png")):
            (sub / part / defect).mkdir(parents=True, exist_ok=True)
            shutil.copy(mvtec / "capsule" / part / defect / name, sub / part / defect / name)
    collect_dataset("mvtec_ad", sub.parent, catalog=catalog, store=store, progress=False)
    tiles = tmp_path / "tiles" / "MT_Crack" / "Imgs"
    tiles.mkdir(parents=True)
    tile = sorted((shared_data / "magnetic_tile" / "MT_Crack" / "Imgs").glob("*.jpg"))[0]
    shutil.copy(tile, tiles)
    shutil.copy(tile.with_suffix(".png"), tiles)
    collect_dataset("magnetic_tile", tiles.parents[1], catalog=catalog, store=store, progress=False)  # never hashed
    assert mark_leakage("mvtec_ad", mvtec, catalog, store, progress=False).eval_images == 33

    def web_item(src: Path, url: str) -> Item:
        im = _web_copy(src)
        mask = Image.new("L", im.size, 0)
        mask.paste(255, (im.width // 4, im.height // 4, im.width // 2, im.height // 2))
        return Item(image=im, name=url, source=taxonomy.ONLINE_SEARCH, origin="openverse", anomaly_class="stain", mask=mask,
                    license="CC-BY-4.0", attribution="someone")

    later = ingest([web_item(mvtec / "bottle" / "test" / "contamination" / "005.png", "https://example.org/bottle.jpg"),
                    web_item(tile, "https://example.org/tile.jpg")], catalog, store, progress=False).added
    assert catalog.get(later[0]).leaks == []  # not checked yet

    res = publish(catalog, "1.0.0", tmp_path / "hub", store=store, progress=False)
    text = res.summary()
    assert "leakage mvtec_ad: checked 2 new samples against its cached hashes, 1 newly marked" in text
    assert "note: exclude_magnetic_tile is by origin only (magnetic_tile's images were never hashed): run `daad leakage magnetic_tile PATH`" in text
    assert "note: exclude_mvtec_ad" not in text
    card = (res.path / "README.md").read_text()
    assert "Excluded **by origin only**: `magnetic_tile`." in card and "`daad leakage magnetic_tile PATH`" in card
    assert catalog.get(later[0]).leaks == ["mvtec_ad"]
    assert catalog.events(later[0])[-1]["who"] == "leakage:publish"

    folders = json.loads((res.path / "manifest.json").read_text())["configs"]
    ids = {name: {r["id"] for f in fs for r in pq.read_table(res.path / f).select(["id"]).to_pylist()} for name, fs in folders.items()}
    assert later[0] in ids["full"] and later[0] not in ids["exclude_mvtec_ad"]
    assert later[1] in ids["exclude_mvtec_ad"]  # the tile's copy is no MVTec image

    # nothing new: the next publish checks nothing
    again = publish(catalog, "1.0.1", tmp_path / "hub", store=store, progress=False)
    assert again.leakage == [] and "leakage mvtec_ad" not in again.summary()
