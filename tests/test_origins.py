"""One image, several origins: the same bytes collected as a photo and by a dataset adapter.

Real MVTec AD files from ../shared/data: an image first collected as a CC-BY-4.0 photo
and then by `collect dataset mvtec_ad` must end as one record with both origins,
published under MVTec AD's own licence and marked as leaking MVTec AD. Also: the schema
migration carries a catalog of the previous schema over.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from daad.cli import main
from daad.collectors.datasets import collect_dataset
from daad.collectors.photos import collect_photos
from daad.core import catalog as catalog_mod
from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.release.publish import publish


def _mvtec_layout(mvtec: Path, dest: Path, refs: list[str]) -> Path:
    """bottle images `<defect>/<stem>` and their masks in MVTec AD's own layout."""
    for ref in refs:
        defect, stem = ref.split("/")
        for sub, name in (("test", f"{stem}.png"), ("ground_truth", f"{stem}_mask.png")):
            (dest / "bottle" / sub / defect).mkdir(parents=True, exist_ok=True)
            shutil.copy(mvtec / "bottle" / sub / defect / name, dest / "bottle" / sub / defect / name)
    return dest


def _photo(mvtec: Path, ref: str, dest: Path) -> None:
    """The same MVTec file as a photo (photos layout: name.png + name_mask.png)."""
    defect, stem = ref.split("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(mvtec / "bottle" / "test" / defect / f"{stem}.png", dest.with_suffix(".png"))
    shutil.copy(mvtec / "bottle" / "ground_truth" / defect / f"{stem}_mask.png", dest.parent / f"{dest.name}_mask.png")


def test_photo_then_dataset_keeps_both_origins_and_publishes_under_the_dataset_licence(shared_data, catalog, store, tmp_path):
    mvtec = shared_data / "mvtec_ad"
    _photo(mvtec, "broken_large/006", tmp_path / "photos" / "crack" / "web_bottle")
    _photo(mvtec, "contamination/005", tmp_path / "photos" / "stain" / "own_stain")  # only a photo
    photos = collect_photos(tmp_path / "photos", catalog, store, license="CC-BY-4.0", attribution="Test Lab", name="lab", progress=False)
    assert photos.count("added") == 2
    sample = next(r.id for r in catalog.find() if r.origin_ref.endswith("web_bottle.png"))
    assert catalog.get(sample).license == "CC-BY-4.0"

    root = _mvtec_layout(mvtec, tmp_path / "mvtec_anomaly_detection", ["broken_large/006", "broken_small/000"])
    report = collect_dataset("mvtec_ad", root, catalog, store, progress=False)
    assert (report.count("added"), report.count("origin_added")) == (1, 1), report.summary()
    assert "origin_added" in report.summary().splitlines()[0]

    rec = catalog.get(sample)
    assert [(o["origin"], o["source"], o["license"]) for o in rec.origins] == [
        ("photos:lab", taxonomy.PHOTOGRAPH, "CC-BY-4.0"),
        ("mvtec_ad", taxonomy.EXISTING_DATASET, "CC-BY-NC-SA-4.0"),
    ]
    assert (rec.source, rec.origin, rec.license, rec.origin_ref) == (
        taxonomy.EXISTING_DATASET, "mvtec_ad", "CC-BY-NC-SA-4.0", "bottle/test/broken_large/006.png")
    assert rec.attribution != "Test Lab" and rec.origins[0]["attribution"] == "Test Lab"
    assert rec.dataset_origins == ["mvtec_ad"]
    assert {r.id for r in catalog.find(origin="photos:lab")} == {sample, *[r.id for r in catalog.find() if r.origin == "photos:lab"]}
    assert sample in {r.id for r in catalog.find(origin="mvtec_ad")}
    assert [e["who"] for e in catalog.events(sample)][-1] == "collect:mvtec_ad"

    # collecting either again changes nothing
    assert collect_dataset("mvtec_ad", root, catalog, store, progress=False).count("existing") == 2
    assert collect_photos(tmp_path / "photos", catalog, store, license="CC-BY-4.0", name="lab", progress=False).count("existing") == 2
    assert len(catalog.get(sample).origins) == 2

    # published under the dataset's licence and name, and kept out of exclude_mvtec_ad
    res = publish(catalog, "1.0.0", tmp_path / "hub", store=store, progress=False)
    rows = {r["id"]: r for r in pq.read_table(res.path / "data" / "leaks-mvtec_ad").to_pylist()}
    assert rows[sample]["license"] == "CC-BY-NC-SA-4.0" and rows[sample]["origin"] == "mvtec_ad"
    no_leak = pq.read_table(res.path / "data" / "no_leak").to_pylist()
    assert [r["origin"] for r in no_leak] == ["photos:lab"] and sample not in {r["id"] for r in no_leak}

    # `daad info` shows every origin; `daad ls --json` carries them
    out = CliRunner().invoke(main, ["info", sample[:10]])
    assert out.exit_code == 0, out.output
    assert "origins (2; * = the one it publishes under, licence CC-BY-NC-SA-4.0):" in out.output
    assert "  * mvtec_ad  existing_dataset  CC-BY-NC-SA-4.0  bottle/test/broken_large/006.png" in out.output
    assert "    photos:lab  photograph  CC-BY-4.0  " in out.output
    ls = CliRunner().invoke(main, ["ls", "--json", "--origin", "photos:lab"])
    by_id = {d["id"]: d for d in map(json.loads, ls.output.splitlines())}
    assert [o["origin"] for o in by_id[sample]["origins"]] == ["photos:lab", "mvtec_ad"]
    assert "mvtec_ad (+1)" in CliRunner().invoke(main, ["ls"]).output


def test_dataset_then_a_web_copy_claiming_a_looser_licence(shared_data, catalog, store, tmp_path):
    """The dataset's licence beats a re-hosted copy's claim, in either order."""
    mvtec = shared_data / "mvtec_ad"
    root = _mvtec_layout(mvtec, tmp_path / "mvtec_anomaly_detection", ["broken_small/000"])
    collect_dataset("mvtec_ad", root, catalog, store, progress=False)
    _photo(mvtec, "broken_small/000", tmp_path / "photos" / "crack" / "copy")
    report = collect_photos(tmp_path / "photos", catalog, store, license="CC0-1.0", name="web", progress=False)
    assert report.count("origin_added") == 1
    (rec,) = catalog.find()
    assert (rec.origin, rec.license, len(rec.origins)) == ("mvtec_ad", "CC-BY-NC-SA-4.0", 2)
    # a curator's licence edit lands in the governing origin's entry too
    catalog.update(rec.id, who="alice", license="CC-BY-NC-SA-4.0", attribution="MVTec Software GmbH")
    assert catalog.get(rec.id).origins[0]["attribution"] == "MVTec Software GmbH"


def test_migration_from_schema_1_keeps_records(tmp_path: Path) -> None:
    """A catalog written by the previous schema (version 1) opens with every record, its one origin, events and caches."""
    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    for stmt in catalog_mod.MIGRATIONS[0]:
        db.execute(stmt)
    db.execute("PRAGMA user_version=1")
    sid = "ab" * 32
    db.execute(
        "INSERT INTO samples (id, width, height, source, origin, anomaly_class, mask_sha, mask_status, origin_label, origin_ref, "
        "license, attribution, leaks, tags, meta, added_at, updated_at) VALUES (?, 8, 6, 'existing_dataset', 'visa', 'crack', "
        "NULL, 'missing', 'pcb1/bad', 'pcb1/Data/Images/Anomaly/000.JPG', 'CC-BY-4.0', 'Amazon', '[\"visa\"]', '[]', "
        "'{\"split\": \"test\"}', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
        (sid,),
    )
    db.execute("INSERT INTO events (sample_id, field, old, new, who, at) VALUES (?, 'anomaly_class', '\"unassigned\"', '\"crack\"', 'alice', 'x')", (sid,))
    db.execute("INSERT INTO eval_hashes VALUES ('visa', 'a.png', '00ff', 'ff00')")
    db.commit()
    db.close()

    cat = Catalog(tmp_path)
    assert cat.schema_version == catalog_mod.SCHEMA_VERSION >= 2
    rec = cat.get(sid)
    assert rec is not None and (rec.origin, rec.license, rec.leaks, rec.meta) == ("visa", "CC-BY-4.0", ["visa"], {"split": "test"})
    assert rec.origins == [{
        "source": "existing_dataset", "origin": "visa", "origin_label": "pcb1/bad",
        "origin_ref": "pcb1/Data/Images/Anomaly/000.JPG", "license": "CC-BY-4.0", "attribution": "Amazon",
    }]
    assert [e["who"] for e in cat.events(sid)] == ["alice"]
    assert cat.eval_hashes("visa") == [("a.png", "00ff", "ff00")]
    assert cat.leak_checked("visa", "") == set()
    assert [r.id for r in cat.find(origin="visa")] == [sid]
    cat.close()
