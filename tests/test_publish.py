"""`daad publish` on a catalog of real MVTec AD images: write, reload in a fresh process, version again.

The catalog mixes what a curator really has: MVTec AD samples (origin mvtec_ad), own
photos under CC BY 4.0 (one of them a near-duplicate of an MVTec image, so it leaks it),
a photo with no licence, one without a class, one with only a proposed mask, and one
near-duplicate of another photo. Loading happens in a separate Python process, as a
downstream user would, with `datasets.load_dataset(folder, config)`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.collectors.datasets.collect import collect_dataset
from daad.collectors.photos import collect_photos
from daad.core.media_store import MediaStore
from daad.release.publish import PublishError, parse_version, publish, published_folder
from daad.core.record import Record

MVTEC = ["crack/001", "crack/010", "scratch/002", "poke/000"]  # capsule test images with ground-truth masks


def _get(catalog: Catalog, sample_id: str) -> Record:
    rec = catalog.get(sample_id)
    assert rec is not None, f"no sample {sample_id}"
    return rec


def _copy_photo(mvtec: Path, src: str, dest: Path) -> None:
    """bottle/<src>.png and its ground-truth mask -> dest.png + dest_mask.png (the photos layout)."""
    defect, stem = src.split("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(mvtec / "bottle" / "test" / defect / f"{stem}.png", dest.with_suffix(".png"))
    shutil.copy(mvtec / "bottle" / "ground_truth" / defect / f"{stem}_mask.png", dest.parent / f"{dest.name}_mask.png")


def _mvtec_subset(mvtec: Path, dest: Path) -> Path:
    """A few capsule images and masks in MVTec AD's own layout (what `daad collect dataset` reads)."""
    for ref in MVTEC:
        defect, stem = ref.split("/")
        for sub, name in (("test", f"{stem}.png"), ("ground_truth", f"{stem}_mask.png")):
            (dest / "capsule" / sub / defect).mkdir(parents=True, exist_ok=True)
            shutil.copy(mvtec / "capsule" / sub / defect / name, dest / "capsule" / sub / defect / name)
    return dest


def _ids_by_ref(catalog: Catalog) -> dict[str, str]:
    return {r.origin_ref.replace("\\", "/"): r.id for r in catalog.find()}


@pytest.fixture(scope="session")
def mixed_home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Build the mixed catalog once per session; returns (its DAAD_HOME, {name: sample id})."""
    work = tmp_path_factory.mktemp("mixed")
    home = work / "daad_home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAAD_HOME", str(home))  # collectors fall back to DAAD_HOME when given an empty catalog
        return _build_mixed(shared_data / "mvtec_ad", work, home)


def _build_mixed(mvtec: Path, work: Path, home: Path) -> tuple[Path, dict[str, str]]:
    catalog, store = Catalog(home), MediaStore(home)
    report = collect_dataset("mvtec_ad", _mvtec_subset(mvtec, work / "mvtec_ad"), catalog, store, progress=False)
    assert report.count("added") == 4, report.summary()

    photos = work / "photos"
    _copy_photo(mvtec, "broken_large/006", photos / "crack" / "p_crack")
    _copy_photo(mvtec, "contamination/005", photos / "stain" / "p_stain")
    _copy_photo(mvtec, "contamination/009", photos / "stain" / "p_leak_mvtec")
    _copy_photo(mvtec, "broken_large/018", photos / "abrasion" / "p_leak_visa")
    _copy_photo(mvtec, "contamination/011", photos / "misc" / "p_unassigned")
    _copy_photo(mvtec, "contamination/019", photos / "pits" / "p_proposed")
    _copy_photo(mvtec, "broken_small/000", photos / "crack" / "p_duplicate")
    assert collect_photos(photos, catalog, store, license="CC-BY-4.0", attribution="Test Lab", name="lab", progress=False).count("added") == 7
    unlicensed = work / "unlicensed"
    _copy_photo(mvtec, "broken_small/014", unlicensed / "crack" / "p_nolicence")
    assert collect_photos(unlicensed, catalog, store, progress=False).count("added") == 1

    ids = {Path(ref).stem: sid for ref, sid in _ids_by_ref(catalog).items()}
    ids.update({f"mvtec:{ref}": ids.pop(ref.split("/")[1]) for ref in MVTEC})
    # What dedupe and review would have written:
    catalog.update(ids["p_leak_mvtec"], who="dedupe", leaks=["mvtec_ad"])
    catalog.update(ids["p_leak_visa"], who="dedupe", leaks=["visa"])
    catalog.update(ids["p_duplicate"], who="dedupe", duplicate_of=ids["p_crack"])
    catalog.update(ids["p_proposed"], who="review", mask_status=taxonomy.PROPOSED)
    catalog.close()
    return home, ids


@pytest.fixture
def mixed_catalog(mixed_home: tuple[Path, dict[str, str]], daad_home: Path) -> dict[str, str]:
    """This test's DAAD_HOME holds a copy of the mixed catalog; returns {name: sample id}."""
    shutil.copytree(mixed_home[0], daad_home)
    return dict(mixed_home[1])


@pytest.fixture
def catalog(mixed_catalog: dict[str, str], daad_home: Path):
    """The mixed catalog (overrides conftest's empty one in these tests)."""
    cat = Catalog(daad_home)
    yield cat
    cat.close()


LOADER = r"""
import json, sys
import imagehash
from datasets import Image, get_dataset_config_names, load_dataset
folder = sys.argv[1]
out = {"configs": sorted(get_dataset_config_names(folder))}
for cfg in sys.argv[2:]:
    ds = load_dataset(folder, cfg, split="train")
    names = ds.features["anomaly_class"].names
    rows = []
    for r in ds:
        rows.append({"id": r["id"], "class": names[r["anomaly_class"]], "origin": r["origin"], "license": r["license"],
                     "size": list(r["image"].size), "mask_size": list(r["mask"].size), "mask_mode": r["mask"].mode,
                     "width": r["width"], "height": r["height"], "url": r["url"], "attribution": r["attribution"],
                     "phash": r["phash"], "imagehash": str(imagehash.phash(r["image"]))})
    raw = ds.cast_column("image", Image(decode=False)).cast_column("mask", Image(decode=False))
    digests = {}
    import hashlib
    for r in raw:
        digests[r["id"]] = [hashlib.sha256(r["image"]["bytes"]).hexdigest(), hashlib.sha256(r["mask"]["bytes"]).hexdigest()]
    out[cfg] = {"rows": rows, "digests": digests, "classes": names}
print(json.dumps(out))
"""


def load_in_fresh_process(folder: Path, *configs: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(folder.parent.parent / "hf-cache")}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(folder), *configs], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_publish_round_trip_in_fresh_process(mixed_catalog: dict[str, str], catalog: Catalog, store: MediaStore, tmp_path: Path) -> None:
    ids = mixed_catalog
    out = tmp_path / "hub"
    result = publish(catalog, "1.0.0", out, shard_bytes=1_500_000, repo_id="acme/daad", progress=False)

    mvtec_ids = {ids[f"mvtec:{ref}"] for ref in MVTEC}
    full = mvtec_ids | {ids["p_crack"], ids["p_stain"], ids["p_leak_mvtec"], ids["p_leak_visa"]}
    clean_of_mvtec = full - mvtec_ids - {ids["p_leak_mvtec"]}
    assert result.path == out / "v1.0.0" and published_folder(out) == result.path
    assert result.rows == 8
    assert result.configs == {"full": 8, "exclude_mvtec_ad": 3, "exclude_visa": 7}
    assert result.groups == {"no_leak": 2, "leaks-mvtec_ad": 5, "leaks-visa": 1}
    assert dict(result.excluded) == {
        "near-duplicate of a kept representative": 1,
        "no anomaly class (unassigned)": 1,
        "mask only proposed, not reviewed": 1,
        "licence not redistributable: no licence recorded": 1,
    }
    assert result.gated == "auto"  # MVTec AD is CC BY-NC-SA: users are told before they download
    assert len(result.shards) > len(result.groups)  # the tiny shard size cut groups into several shards

    # No image is stored twice: every row is in exactly one shard, and shards of a group share its folder.
    seen: list[str] = []
    for rel in result.shards:
        seen += pq.read_table(out / "v1.0.0" / rel, columns=["id"]).column("id").to_pylist()
    assert sorted(seen) == sorted(full)

    loaded = load_in_fresh_process(out / "v1.0.0", "full", "exclude_mvtec_ad", "exclude_visa")
    assert loaded["configs"] == ["exclude_mvtec_ad", "exclude_visa", "full"]
    rows = {r["id"]: r for r in loaded["full"]["rows"]}
    assert set(rows) == full
    assert loaded["full"]["classes"] == list(taxonomy.CLASSES)
    expected_class = {sid: _get(catalog, sid).anomaly_class for sid in mvtec_ids}  # as the dataset's class mapping says
    expected_class.update({ids["p_crack"]: "crack", ids["p_stain"]: "stain", ids["p_leak_mvtec"]: "stain", ids["p_leak_visa"]: "abrasion"})
    assert {i: r["class"] for i, r in rows.items()} == expected_class
    for sid, r in rows.items():
        rec = _get(catalog, sid)
        assert r["size"] == r["mask_size"] == [rec.width, rec.height] == [r["width"], r["height"]]
        assert r["mask_mode"] == "L"
        assert loaded["full"]["digests"][sid] == [sid, rec.mask_sha]  # the stored PNG bytes, unchanged
        assert r["license"] == rec.license and r["attribution"] == rec.attribution
        assert r["phash"] == r["imagehash"]  # dedupe did not run: publish computed imagehash's pHash
        assert rec.phash == r["phash"] and rec.dhash  # ... in one batch, and stored it for the next publish
    excl = loaded["exclude_mvtec_ad"]["rows"]
    assert {r["id"] for r in excl} == clean_of_mvtec
    assert not any(r["origin"] == "mvtec_ad" for r in excl)
    assert {r["id"] for r in loaded["exclude_visa"]["rows"]} == full - {ids["p_leak_visa"]}

    card = (out / "v1.0.0" / "README.md").read_text()
    assert "config_name: exclude_mvtec_ad" in card and "default: true" in card
    assert "| no anomaly class (unassigned) | 1 |" in card
    assert "| licence not redistributable: no licence recorded | 1 |" in card
    n_crack = sum(c == "crack" for c in expected_class.values())
    n_crack_ed = sum(_get(catalog, i).anomaly_class == "crack" for i in mvtec_ids)
    assert f"| crack | 0 | 1 | {n_crack_ed} | {n_crack} |" in card  # class x source: online_search, photograph, existing_dataset, total
    assert "license:\n- cc-by-4.0\n- cc-by-nc-sa-4.0" in card and "extra_gated_prompt" in card
    assert "Your own photos" in card  # cards/sources/photos.md is copied in for photos:<name>
    assert "### MVTec AD" in card and "`mvtec_ad`" in card and "- Paul Bergmann" in card  # card or adapter of the dataset
    assert {rows[i]["url"] for i in mvtec_ids} == {"https://www.mvtec.com/company/research/datasets/mvtec-ad"}
    manifest = json.loads((out / "v1.0.0" / "manifest.json").read_text())
    assert set(manifest["samples"]) == full
    assert manifest["samples"][ids["p_leak_mvtec"]]["group"] == "leaks-mvtec_ad"
    assert manifest["configs"]["exclude_mvtec_ad"] == ["data/no_leak", "data/leaks-visa"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_second_version_changelog_and_no_overwrite(mixed_catalog: dict[str, str], catalog: Catalog, store: MediaStore, tmp_path: Path) -> None:
    ids = mixed_catalog
    out = tmp_path / "hub"
    publish(catalog, "1.0.0", out, shard_bytes=10**9, progress=False)
    with pytest.raises(PublishError, match="never overwritten"):
        publish(catalog, "v1.0.0", out, progress=False)
    with pytest.raises(PublishError, match="semantic version"):
        publish(catalog, "1.1", out, progress=False)

    # Review between versions: a relabel, a corrected mask, a removal, an addition.
    catalog.update(ids["p_stain"], who="review", anomaly_class="impurity")
    rec = _get(catalog, ids["p_crack"])
    assert rec.mask_sha, "p_crack was collected with its mask"
    with Image.open(store.mask_path(rec.mask_sha)) as m:
        corrected = m.point(lambda v: 0).copy()
    corrected.paste(255, (10, 10, 60, 60))
    catalog.update(rec.id, who="review", mask_sha=store.put_mask(corrected, (rec.width, rec.height)), mask_status=taxonomy.ANNOTATED)
    catalog.update(ids["p_leak_visa"], who="review", duplicate_of=ids["p_crack"])
    catalog.update(ids["p_unassigned"], who="review", anomaly_class="stain")

    # 1.1.0 is too small a bump for a relabel: refused before anything is written, unless forced.
    with pytest.raises(PublishError, match=r"v1.1.0 is a minor bump over v1.0.0 but the changes call for a major bump \(e.g. v2.0.0\); nothing written"):
        publish(catalog, "1.1.0", out, shard_bytes=10**9, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["v1.0.0"]
    result = publish(catalog, "1.1.0", out, shard_bytes=10**9, progress=False, force_version=True)
    log = result.changelog
    assert log.previous == "v1.0.0"
    assert log.added == [ids["p_unassigned"]]
    assert log.removed == [ids["p_leak_visa"]]
    assert log.relabelled == [(ids["p_stain"], "stain", "impurity")]
    assert log.mask_changed == [ids["p_crack"]]
    assert result.warnings == ["v1.1.0 is a minor bump over v1.0.0 but the changes call for a major bump (e.g. v2.0.0)"]
    # visa is still known (from the catalog), but no published row leaks it any more.
    assert result.configs == {"full": 8, "exclude_mvtec_ad": 3, "exclude_visa": 8}

    history = (out / "v1.1.0" / "CHANGELOG.md").read_text()
    assert history.index("### v1.1.0") < history.index("### v1.0.0")
    assert f"`{ids['p_stain'][:12]}`: stain -> impurity" in history
    assert "1 added, 1 removed, 1 relabelled, 1 with a changed mask" in (out / "v1.1.0" / "README.md").read_text()
    assert (out / "v1.0.0" / "manifest.json").is_file()  # the old version is untouched
    assert [v for v, _ in __import__("daad.release.publish", fromlist=["x"]).published_versions(out)] == [(1, 0, 0), (1, 1, 0)]

    # Another machine: no older version in its out dir, the Hub's manifest given with --previous.
    other = publish(catalog, "1.1.0", tmp_path / "elsewhere", previous=out / "v1.0.0" / "manifest.json", progress=False, force_version=True)
    assert other.changelog.to_dict() == log.to_dict()


def test_cli_publish_prints_summary_and_refuses_bad_input(mixed_catalog: dict[str, str], daad_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    proc = subprocess.run([sys.executable, "-m", "daad", "publish", "--version", "0.1.0", "--out", str(out), "--shard-size", "2MB", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"published v0.1.0 -> {out / 'v0.1.0'} (8 samples" in proc.stdout
    assert "exclude_mvtec_ad                    3 rows" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "daad", "publish", "--version", "0.1.0", "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "never overwritten" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([sys.executable, "-m", "daad", "publish", "--version", "0.2.0", "--out", str(out), "--shard-size", "lots"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not a size" in bad.stderr


def test_version_parsing() -> None:
    assert parse_version("v2.10.3") == (2, 10, 3)
    for bad in ("1.0", "latest", "1.0.0-rc1", ""):
        with pytest.raises(PublishError):
            parse_version(bad)


def test_missing_media_file_is_reported_and_the_rest_published(mixed_catalog: dict[str, str], catalog: Catalog, store: MediaStore, tmp_path: Path) -> None:
    store.image_path(mixed_catalog["p_stain"]).unlink()  # e.g. a media folder copied without one file
    result = publish(catalog, "1.0.0", tmp_path / "hub", progress=False, gated="")
    assert result.rows == 7 and result.excluded["image or mask file missing from the media store"] == 1
    assert result.gated == ""  # forced off, although the NC licence would ask for the gate
    assert json.loads((result.path / "manifest.json").read_text())["gated"] == ""
    with pytest.raises(PublishError, match="no published version v9.9.9"):
        published_folder(tmp_path / "hub", "9.9.9")
