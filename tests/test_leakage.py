"""`daad leakage NAME PATH`: samples from, or near-duplicating, an evaluation dataset are marked."""

from __future__ import annotations

import io
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
