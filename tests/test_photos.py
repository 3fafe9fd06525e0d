"""A curator's session with their own photos: collect, look, collect again, survive a kill."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.collectors.photos import collect_photos
from daad.core.media_store import MediaStore


def _daad(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daad", *args], capture_output=True, text=True, env=env or os.environ.copy(), check=True)


@pytest.fixture
def photo_folder(tmp_path: Path, shared_data: Path) -> Path:
    """Real images laid out the way a curator would: class folders, masks beside, junk too."""
    root = tmp_path / "defect-photos"
    crack, scratch, other = root / "crack", root / "scratch", root / "misc"
    for d in (crack, scratch, other):
        d.mkdir(parents=True)
    mv = shared_data / "mvtec_ad" / "capsule"
    shutil.copy(mv / "test/crack/001.png", crack / "capsule_crack.png")
    shutil.copy(mv / "ground_truth/crack/001_mask.png", crack / "capsule_crack_mask.png")
    shutil.copy(mv / "test/scratch/002.png", scratch / "capsule_scratch.png")
    (root / "masks" / "scratch").mkdir(parents=True)
    shutil.copy(mv / "ground_truth/scratch/002_mask.png", root / "masks/scratch/capsule_scratch.png")

    # A phone photo: stored sideways with EXIF orientation 6 and a GPS position.
    road = Image.open(shared_data / "crackforest/image/001.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 8.0, 30.0), "E", (11.0, 34.0, 5.0)
    road.save(crack / "IMG_0001.jpg", exif=exif, quality=95)

    shutil.copy(shared_data / "crackforest/image/002.jpg", other / "road.jpg")
    data = (shared_data / "crackforest/image/003.jpg").read_bytes()
    (other / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (other / "notes.txt").write_text("taken on the night shift")
    (other / "fake.png").write_text("<html>not an image</html>")
    return root


def test_collect_photos_session(photo_folder: Path, catalog: Catalog, store: MediaStore, shared_data: Path) -> None:
    report = collect_photos(photo_folder, catalog, store, license="CC-BY-4.0", attribution="ACME QA", progress=False)

    assert report.count("added") == 4
    bad = {Path(o.name).name: o.reason for o in report.bad}
    assert set(bad) == {"truncated.jpg", "fake.png"}
    assert any(Path(o.name).name == "notes.txt" for o in report.skipped)
    assert "truncated.jpg" in report.summary() and "fake.png" in report.summary()

    by_ref = {r.origin_ref: r for r in catalog}
    assert by_ref["crack/capsule_crack.png"].anomaly_class == "crack"
    assert by_ref["crack/capsule_crack.png"].mask_status == taxonomy.ANNOTATED
    assert by_ref["scratch/capsule_scratch.png"].mask_status == taxonomy.ANNOTATED  # masks/ mirror
    assert by_ref["misc/road.jpg"].anomaly_class == taxonomy.UNASSIGNED
    assert by_ref["misc/road.jpg"].mask_status == taxonomy.MISSING
    assert all(r.license == "CC-BY-4.0" and r.attribution == "ACME QA" for r in catalog)

    # Orientation applied, every byte of metadata gone.
    phone = by_ref["crack/IMG_0001.jpg"]
    assert (phone.width, phone.height) == (320, 480)
    stored_path = store.image_path(phone.id)
    stored = Image.open(stored_path)
    assert not stored.getexif() and "exif" not in stored.info and "xmp" not in stored.info
    raw = stored_path.read_bytes()
    assert b"Exif" not in raw and b"PhoneMaker" not in raw
    upright = np.rot90(np.asarray(Image.open(photo_folder / "crack/IMG_0001.jpg")), k=-1)
    assert np.array_equal(np.asarray(stored), upright)

    # Masks: single channel, 0/255, the image's size, identical to the ground truth.
    rec = by_ref["crack/capsule_crack.png"]
    assert rec.mask_sha
    mask = Image.open(store.mask_path(rec.mask_sha))
    assert mask.mode == "L" and mask.size == (rec.width, rec.height)
    gt = np.asarray(Image.open(shared_data / "mvtec_ad/capsule/ground_truth/crack/001_mask.png").convert("L")) > 0
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert np.array_equal(np.asarray(mask) > 0, gt)
    # Content addressing: the id is the hash of the stored bytes.
    assert hashlib.sha256(stored_path.read_bytes()).hexdigest() == phone.id

    again = collect_photos(photo_folder, catalog, store, license="CC-BY-4.0", attribution="ACME QA", progress=False)
    assert again.count("added") == 0 and again.count("existing") == 4
    assert len(catalog) == 4

    counts = catalog.counts()
    assert counts[("crack", "photograph")] == {"samples": 2, "with_mask": 1}
    assert counts[("scratch", "photograph")] == {"samples": 1, "with_mask": 1}
    assert counts[("unassigned", "photograph")] == {"samples": 1, "with_mask": 0}


def test_cli_status_ls_info_in_new_processes(photo_folder: Path, daad_home: Path, tmp_path: Path) -> None:
    out = _daad("collect", "photos", str(photo_folder), "--license", "CC0-1.0", "--quiet").stdout
    assert "total" in out and "fake.png" in out

    status = _daad("status", "--plot", str(tmp_path / "status.png")).stdout
    rows = {line.split()[0]: line.split()[1:] for line in status.splitlines()[2:]}
    # columns: online_search photograph existing_dataset total masks "no mask"
    assert rows["crack"] == ["0", "2", "0", "2", "1", "1"]
    assert rows["total"] == ["0", "4", "0", "4", "2", "2"]
    assert Image.open(tmp_path / "status.png").size[0] > 100

    lines = _daad("ls", "--json").stdout.splitlines()
    recs = [json.loads(line) for line in lines]
    assert len(recs) == 4
    for r in recs:
        assert Path(r["image_path"]).is_file() and Path(r["image_path"]).is_absolute()
        assert (r["mask_path"] is None) == (r["mask_status"] == "missing")
        assert {"id", "anomaly_class", "source", "origin", "license", "phash", "leaks", "duplicate_of"} <= set(r)
    cracks = _daad("ls", "--class", "crack", "--mask-status", "annotated", "--json").stdout.splitlines()
    assert len(cracks) == 1

    info = _daad("info", recs[0]["id"][:10]).stdout
    assert recs[0]["id"] in info


def test_masks_of_wrong_size_or_not_binary_are_named(tmp_path: Path, shared_data: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "p"
    root.mkdir()
    src = shared_data / "mvtec_ad/bottle/test/contamination/005.png"
    shutil.copy(src, root / "a.png")
    Image.new("L", (10, 10), 255).save(root / "a_mask.png")
    shutil.copy(shared_data / "mvtec_ad/bottle/test/contamination/009.png", root / "b.png")
    shutil.copy(src, root / "b_mask.png")  # a photo, not a mask
    report = collect_photos(root, catalog, store, progress=False)
    reasons = {Path(o.name).name: o.reason for o in report.bad}
    assert "10x10 but its image is 900x900" in reasons["a_mask.png"]
    assert "not binary" in reasons["b_mask.png"]
    assert len(catalog) == 0
    assert not (catalog.home / "media").exists(), "nothing stored for items whose mask is bad"


def test_decompression_bomb_is_refused(tmp_path: Path, catalog: Catalog, store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    root.mkdir()
    Image.new("RGB", (2000, 2000)).save(root / "big.png")
    Image.new("RGB", (20, 20), (200, 10, 10)).save(root / "small.png")
    monkeypatch.setenv("DAAD_MAX_PIXELS", "1000000")
    report = collect_photos(root, catalog, store, progress=False)
    assert report.count("added") == 1
    assert "decompression-bomb" in report.bad[0].reason and report.bad[0].name.endswith("big.png")


def _unique_images(src: Path, dst: Path, n: int) -> None:
    base = np.asarray(Image.open(src).convert("RGB"))
    dst.mkdir(parents=True)
    for i in range(n):
        arr = base.copy()
        arr[0, 0] = (i % 256, i // 256, 7)
        Image.fromarray(arr).save(dst / f"{i:03d}.png", compress_level=1)


def test_sigkill_halfway_then_rerun(tmp_path: Path, daad_home: Path, shared_data: Path) -> None:
    folder = tmp_path / "many" / "hole"
    _unique_images(shared_data / "mvtec_ad/bottle/test/good/001.png", folder, 40)
    proc = subprocess.Popen([sys.executable, "-m", "daad", "collect", "photos", str(folder.parent), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    catalog = Catalog(daad_home)  # a concurrent reader while the collect writes
    deadline = time.time() + 120
    while time.time() < deadline and len(catalog) < 5:
        time.sleep(0.05)
    n_before = len(catalog)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= n_before < 40, "the collect should have been killed halfway"

    reopened = Catalog(daad_home)
    assert len(reopened) >= n_before
    store = MediaStore(daad_home)
    for path in (daad_home / "media").rglob("*.png"):
        if not path.name.startswith(".tmp-"):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem, f"half-written {path}"
    for rec in reopened:
        assert store.image_path(rec.id).is_file()

    out = _daad("collect", "photos", str(folder.parent), "--quiet").stdout
    assert len(Catalog(daad_home)) == 40
    assert not list((daad_home / "media").rglob(".tmp-*")), "a completed run leaves no temp files"
    assert "total" in out


def test_heic_phone_photo(tmp_path: Path, shared_data: Path, catalog: Catalog, store: MediaStore) -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs the heic extra (pillow-heif)")
    pillow_heif.register_heif_opener()
    root = tmp_path / "phone" / "pits"
    root.mkdir(parents=True)
    Image.open(shared_data / "crackforest/image/004.jpg").save(root / "IMG_0042.heic", quality=90)
    report = collect_photos(root.parent, catalog, store, progress=False)
    assert report.count("added") == 1
    (rec,) = catalog.find()
    assert rec.anomaly_class == "pits" and (rec.width, rec.height) == (480, 320)


# -- hostile file names, special files, empty masks, leftovers --------------------------------


def _shrunk(src: Path, dest: Path, mask: bool = False) -> Path:
    """A 128x128 copy of a real image (nearest-neighbour for masks, so they stay binary)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).resize((128, 128), Image.Resampling.NEAREST if mask else Image.Resampling.BILINEAR).save(dest)
    return dest


def _capsules(shared_data: Path, tmp_path: Path) -> list[tuple[Path, Path]]:
    """Real capsule images with their real masks, shrunk to 128x128 (small and fast; distinct pixels)."""
    mv = shared_data / "mvtec_ad" / "capsule"
    out = []
    for d, n in [("crack", "001"), ("crack", "010"), ("poke", "000"), ("poke", "006"), ("poke", "012"), ("scratch", "002")]:
        img = _shrunk(mv / f"test/{d}/{n}.png", tmp_path / "src" / f"{d}{n}.png")
        out.append((img, _shrunk(mv / f"ground_truth/{d}/{n}_mask.png", tmp_path / "src" / f"{d}{n}_m.png", mask=True)))
    return out


def test_mask_names_are_matched_literally_not_as_glob_patterns(tmp_path: Path, catalog: Catalog, store: MediaStore, shared_data: Path) -> None:
    root = tmp_path / "photos" / "crack"
    root.mkdir(parents=True)
    (i1, m1), (i2, _), (i3, m3), (i4, _), (i5, m5), _ = _capsules(shared_data, tmp_path)
    shutil.copy(i1, root / "a.png")
    shutil.copy(m1, root / "a_mask.png")  # a.png's mask; the glob [ab]_mask.* matched it too
    shutil.copy(i2, root / "[ab].png")  # no mask of its own
    shutil.copy(i3, root / "q1.png")
    shutil.copy(m3, root / "q1_mask.png")  # q1.png's mask; the glob q?_mask.* matched it too
    shutil.copy(i4, root / "q?.png")  # no mask of its own
    shutil.copy(i5, root / "c*.png")
    shutil.copy(m5, root / "c*_mask.png")  # its own mask, with glob characters in the name
    collect_photos(tmp_path / "photos", catalog, store, progress=False)
    status = {r.origin_ref: r.mask_status for r in catalog}
    assert status == {"crack/a.png": "annotated", "crack/[ab].png": "missing", "crack/q1.png": "annotated",
                      "crack/q?.png": "missing", "crack/c*.png": "annotated"}
    by_ref = {r.origin_ref: r for r in catalog}
    c_mask = by_ref["crack/c*.png"].mask_sha
    assert c_mask
    stored = np.asarray(Image.open(store.mask_path(c_mask))) > 0
    assert (stored == (np.asarray(Image.open(m5)) > 0)).all()


def test_empty_masks_are_refused_in_photos_masks_import_and_datasets(tmp_path: Path, catalog: Catalog, store: MediaStore, shared_data: Path) -> None:
    from daad.collectors.datasets import collect_dataset
    from daad.curate.mask_import import import_masks

    (img, mask), (img2, _) = _capsules(shared_data, tmp_path)[:2]
    zeros = Image.fromarray(np.zeros((128, 128), np.uint8), "L")
    photos = tmp_path / "photos" / "crack"
    photos.mkdir(parents=True)
    shutil.copy(img, photos / "cap.png")
    zeros.save(photos / "cap_mask.png")
    report = collect_photos(tmp_path / "photos", catalog, store, progress=False)
    assert report.count("bad") == 1 and len(catalog) == 0
    assert "cap_mask.png is empty (all zero): an anomaly mask that marks no anomaly" in report.bad[0].reason
    assert report.bad[0].name.endswith("cap.png")
    assert not list((store.root / "images").rglob("*.png")), "the refused photo's image was stored"

    # masks import: a mask-less sample gets an empty mask -> bad, nothing attached
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(img2, loose / "cap2.png")
    collect_photos(loose, catalog, store, progress=False)
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    zeros.save(drawn / "cap2_mask.png")
    mreport = import_masks(drawn, catalog, store, progress=False)
    assert mreport.count("bad") == 1 and "empty (all zero)" in mreport.outcomes[0].reason
    assert catalog.find()[0].mask_status == "missing"

    # a dataset's anomalous image whose ground-truth mask is empty: bad, not collected
    root = tmp_path / "mvtec"
    mv = shared_data / "mvtec_ad" / "capsule"
    for n in ("001", "010"):
        _shrunk(mv / f"test/crack/{n}.png", root / f"capsule/test/crack/{n}.png")
        _shrunk(mv / f"ground_truth/crack/{n}_mask.png", root / f"capsule/ground_truth/crack/{n}_mask.png", mask=True)
    _shrunk(mv / "test/good/001.png", root / "capsule/test/good/001.png")
    empty = root / "capsule/ground_truth/crack/001_mask.png"
    zeros.save(empty)
    dreport = collect_dataset("mvtec_ad", root, catalog=catalog, store=store, progress=False)
    assert [o.name for o in dreport.bad] == [str(root / "capsule/test/crack/001.png")]
    assert "001_mask.png is empty" in dreport.bad[0].reason
    assert not [r for r in catalog.find(origin="mvtec_ad") if r.origin_ref == "capsule/test/crack/001.png"]


def test_hostile_file_names_and_special_files(tmp_path: Path, daad_home: Path, shared_data: Path) -> None:
    """A Latin-1 name, a FIFO named *.png, a name with a newline: one run, no traceback, no hang."""
    root = tmp_path / "photos"
    (root / "crack").mkdir(parents=True)
    pairs = _capsules(shared_data, tmp_path)
    latin1 = os.fsdecode(b"r\xe9sistance.png")  # not valid UTF-8
    shutil.copy(pairs[0][0], root / "crack" / latin1)
    shutil.copy(pairs[1][0], root / "crack" / "ok.png")
    os.mkfifo(root / "crack" / "pipe.png")
    (root / "crack" / "x.png\nadded: forged.png").write_text("not an image")
    env = {**os.environ, "DAAD_HOME": str(daad_home), "PYTHONIOENCODING": "utf-8"}
    res = subprocess.run([sys.executable, "-m", "daad", "collect", "photos", str(root), "--quiet"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert not any(ln.startswith("added: forged") for ln in lines), "a file name forged a report line"
    assert any(ln.startswith("bad: '") and "x.png\\nadded: forged.png'" in ln for ln in lines), res.stdout
    assert any(ln.startswith("skipped: ") and "pipe.png: not a regular file (a FIFO)" in ln for ln in lines), res.stdout
    cat = Catalog(daad_home)
    refs = sorted(r.origin_ref for r in cat)
    assert refs == ["crack/ok.png", "crack/r\\xe9sistance.png"]
    stored = list((daad_home / "media" / "images").rglob("*.png"))
    assert len(stored) == len(cat) == 2, "an image was stored without its record"


def test_stale_temp_files_are_cleaned_by_the_next_collect(tmp_path: Path, catalog: Catalog, store: MediaStore, shared_data: Path) -> None:
    from daad.core import media_store

    folder = store.root / "images" / "ab"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = media_store._HOST
    killed = folder / f".tmp-{host}-{dead.stdout.strip()}-abc123.png"  # its writer is gone
    old = folder / ".tmp-0f0f0f-1-old999.png"  # another host's, an hour old
    live = folder / f".tmp-{host}-{os.getpid()}-live00.png"  # a live writer's, fresh: kept
    other_host_fresh = folder / ".tmp-0f0f0f-1-fresh0.png"  # another host's, fresh: kept
    for f in (killed, old, live, other_host_fresh):
        f.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    photos = tmp_path / "p"
    photos.mkdir()
    shutil.copy(_capsules(shared_data, tmp_path)[0][0], photos / "one.png")
    collect_photos(photos, catalog, store, progress=False)
    assert not killed.exists() and not old.exists()
    assert live.exists() and other_host_fresh.exists()


def test_a_licence_not_understood_is_refused_before_collecting(tmp_path: Path, daad_home: Path, shared_data: Path) -> None:
    from click.testing import CliRunner

    from daad.cli import main

    (tmp_path / "p").mkdir()
    shutil.copy(_capsules(shared_data, tmp_path)[0][0], tmp_path / "p" / "one.png")
    for lic in ("CC-BY-4.0-NC", "All rights reserved. Not https://creativecommons.org/licenses/by/4.0"):
        res = CliRunner().invoke(main, ["collect", "photos", str(tmp_path / "p"), "--license", lic, "--quiet"], env={"DAAD_HOME": str(daad_home)})
        assert res.exit_code == 1 and res.output.startswith("Error: licence ") and "not understood" in res.output, res.output
    assert len(Catalog(daad_home)) == 0
    ok = CliRunner().invoke(main, ["collect", "photos", str(tmp_path / "p"), "--license", "cc-by-sa-4.0", "--quiet"], env={"DAAD_HOME": str(daad_home)})
    assert ok.exit_code == 0 and [r.license for r in Catalog(daad_home)] == ["CC-BY-SA-4.0"]
