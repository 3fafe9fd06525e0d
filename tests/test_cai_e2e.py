"""`daad synthesize` end to end: real anomalies collected and published by the real pipeline, injected into real normal images.

The session: collect MVTec AD (bottle, capsule) and Magnetic Tile from ../shared/data into
a temporary DAAD_HOME with the dataset collectors, publish version 1.0.0, then run
`daad synthesize --exclude mvtec_ad` on MVTec AD test/good images. Magnetic Tile's
publisher terms forbid redistribution, so `daad publish` would rightly leave it out;
the test records a redistributable licence on those rows first, standing in for a
curator who obtained permission (nothing leaves the temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from daad.cli import main

MT_SUBSET = {"MT_Crack": 8, "MT_Break": 8, "MT_Uneven": 6}  # enough large/medium/small patterns; keeps collect fast
MVTEC_SUBSET = [("bottle", "broken_large"), ("bottle", "contamination"), ("capsule", "crack")]
TARGETS = ["bottle/test/good/001.png", "bottle/test/good/002.png", "capsule/test/good/001.png", "capsule/test/good/002.png"]


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


@pytest.fixture(scope="module", autouse=True)
def hf_cache(tmp_path_factory):
    """Keep `datasets`' cache of the published parquet inside the test's temporary folder."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


@pytest.fixture(scope="module")
def published(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A published DAAD (real collectors, real publish) and a folder of real normal targets."""
    from daad.core.catalog import Catalog
    from daad.collectors.datasets import collect_dataset
    from daad.core.media_store import MediaStore
    from daad.release.publish import publish

    root = tmp_path_factory.mktemp("cai_e2e")
    mt = root / "magnetic_tile"
    for kind, n in MT_SUBSET.items():
        for jpg in sorted((shared_data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:n]:
            _copy(jpg, mt / kind / "Imgs" / jpg.name)
            _copy(jpg.with_suffix(".png"), mt / kind / "Imgs" / jpg.with_suffix(".png").name)
    mvtec = root / "mvtec_ad"
    for cat, defect in MVTEC_SUBSET:
        for png in sorted((shared_data / "mvtec_ad" / cat / "test" / defect).glob("*.png")):
            _copy(png, mvtec / cat / "test" / defect / png.name)
            gt = shared_data / "mvtec_ad" / cat / "ground_truth" / defect / f"{png.stem}_mask.png"
            _copy(gt, mvtec / cat / "ground_truth" / defect / gt.name)
    targets = root / "targets"
    for t in TARGETS:
        _copy(shared_data / "mvtec_ad" / t, targets / t.split("/")[0] / Path(t).name)

    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAAD_HOME", str(home))
        catalog, store = Catalog(home), MediaStore(home)
        collect_dataset("mvtec_ad", mvtec, catalog=catalog, store=store, progress=False)
        collect_dataset("magnetic_tile", mt, catalog=catalog, store=store, progress=False)
        for rec in catalog.find(origin="magnetic_tile"):
            catalog.update(rec.id, who="test: permission obtained", license="CC-BY-4.0", attribution="Huang et al. 2018")
        publish(catalog, "1.0.0", root / "release", store=store, progress=False)
        catalog.close()
    return {"release": root / "release", "targets": targets, "root": root}


def _synthesize(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["synthesize", *args, "--quiet"], catch_exceptions=False)
    return res.exit_code, res.output


def _read(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run_normal(published, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cai_out") / "normal"
    code, output = _synthesize("--dataset", str(published["release"]), "--exclude", "mvtec_ad",
                               "--targets", str(published["targets"]), "--out", str(out), "--size", "256", "--seed", "3")
    assert code == 0, output
    assert "40 pseudo anomalies from 4 of 4 targets" in output and "[exclude_mvtec_ad]" in output
    return out


def test_folder_layout_manifest_and_provenance(run_normal, published):
    rows = _read(run_normal)
    assert len(rows) == 40
    abnormal = sorted(p.name for p in (run_normal / "abnormal").iterdir())
    assert abnormal == sorted(p.name for p in (run_normal / "mask").iterdir()) == sorted(Path(r["file"]).name for r in rows)
    assert sorted(p.name for p in (run_normal / "normal").iterdir()) == ["bottle__001.png", "bottle__002.png", "capsule__001.png", "capsule__002.png"]
    assert (run_normal / "preview.png").is_file() and Image.open(run_normal / "preview.png").size[0] >= 11 * 128
    by_target = Counter(r["target"] for r in rows)
    assert set(by_target.values()) == {10}
    for target in by_target:
        assert Counter(r["scale"] for r in rows if r["target"] == target) == {"large": 4, "medium": 3, "small": 3}
    for r in rows:
        assert r["origin"] == "magnetic_tile"  # exclude_mvtec_ad really kept MVTec AD out
        assert len(r["daad_id"]) == 64 and r["anomaly_class"] in {"crack", "abrasion", "orifice", "pits"}
        assert r["mode"] == "normal" and r["seed"] == 3 and r["size"] == 256 and r["foreground"] == "otsu"
        assert Path(r["target_path"]).is_file()
        image = np.asarray(Image.open(run_normal / r["file"]))
        mask = np.asarray(Image.open(run_normal / r["mask"]))
        normal = np.asarray(Image.open(run_normal / r["normal"]))
        assert image.shape == normal.shape == (256, 256, 3) and mask.shape == (256, 256)
        assert set(np.unique(mask)) == {0, 255}
        top, left, h, w = r["region"]
        outside = np.ones((256, 256), bool)
        outside[top : top + h, left : left + w] = False
        assert np.array_equal(image[outside], normal[outside]) and not mask[outside].any()


def test_workers_and_reruns_give_identical_bytes(run_normal, published, tmp_path):
    out = tmp_path / "two_workers"
    code, output = _synthesize("--dataset", str(published["release"]), "--exclude", "mvtec_ad",
                               "--targets", str(published["targets"]), "--out", str(out), "--size", "256", "--seed", "3", "--workers", "2")
    assert code == 0, output
    assert (out / "manifest.jsonl").read_bytes() == (run_normal / "manifest.jsonl").read_bytes()
    for sub in ("abnormal", "mask", "normal"):
        for f in (run_normal / sub).iterdir():
            assert (out / sub / f.name).read_bytes() == f.read_bytes(), f"{sub}/{f.name} differs"


def test_mixed_mode_with_a_class_filter(published, tmp_path):
    out = tmp_path / "mixed"
    code, output = _synthesize("--dataset", str(published["release"] / "v1.0.0"), "--exclude", "mvtec_ad",
                               "--targets", str(published["targets"] / "capsule"), "--out", str(out),
                               "--mode", "mixed", "--classes", "crack,abrasion", "--split", "2,1,1")
    assert code == 0, output
    rows = _read(out)
    assert len(rows) == 8 and {r["mode"] for r in rows} == {"mixed"}
    assert {r["anomaly_class"] for r in rows} <= {"crack", "abrasion"}


def test_refuses_a_missing_exclude_config(published, tmp_path):
    code, output = _synthesize("--dataset", str(published["release"]), "--exclude", "visa",
                               "--targets", str(published["targets"]), "--out", str(tmp_path / "x"))
    assert code != 0
    assert "no config 'exclude_visa'" in output and "refusing to fall back to 'full'" in output
    assert not (tmp_path / "x").exists()


def test_a_bad_target_is_named_and_the_batch_goes_on(published, tmp_path):
    targets = tmp_path / "targets"
    shutil.copytree(published["targets"] / "bottle", targets)
    (targets / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code, output = _synthesize("--dataset", str(published["release"]), "--exclude", "mvtec_ad",
                               "--targets", str(targets), "--out", str(out), "--per-image", "3")
    assert code == 0, output
    assert "broken.png" in output and "20 pseudo anomalies" not in output
    assert len(_read(out)) == 6


def test_row_order_of_the_release_does_not_change_the_output(published):
    """Catalogs fill in collect order, so two releases of the same samples may order rows differently."""
    from daad.synthesis import CAI
    from daad.synthesis.cai import PublishedPool
    from daad.synthesis.cai.patterns import load_published

    ds, _, _ = load_published(published["release"], "mvtec_ad")
    reordered = ds.select(list(reversed(range(len(ds)))))
    assert reordered["id"] != ds["id"]
    target = np.asarray(Image.open(next(published["targets"].rglob("*.png"))).convert("RGB"))
    a = CAI(PublishedPool(ds), seed=5)(target, key="t")
    b = CAI(PublishedPool(reordered), seed=5)(target, key="t")
    assert [x.provenance["daad_id"] for x in a] == [x.provenance["daad_id"] for x in b]
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) for x, y in zip(a, b))


GOLDEN = Path(__file__).resolve().parent / "data" / "cai_cli_golden.json"
GOLDEN_PIXELS = Path(__file__).resolve().parent / "data" / "cai_cli_golden_pixels.json"
GOLDEN_LEVEL6 = Path(__file__).resolve().parent / "data" / "cai_cli_golden_level6.json"


def _digests(folder: Path, pixels: bool = False) -> dict[str, str]:
    """sha256 of every written PNG, keyed by (target, index) from the manifest, so a renaming scheme cannot hide a change of bytes.

    `pixels`: of the decoded pixels instead (mode, size and raw bytes), which a change of
    the PNG encoder or its zlib level leaves alone."""
    import hashlib

    out = {}
    for r in _read(folder):
        key = f"{r['target']}#{r['index']}"
        for kind in ("file", "mask", "normal"):
            if pixels:
                with Image.open(folder / r[kind]) as im:
                    blob = f"{im.mode} {im.size}".encode() + im.tobytes()
            else:
                blob = (folder / r[kind]).read_bytes()
            out[f"{key}:{kind}"] = hashlib.sha256(blob).hexdigest()
    return out


def test_cli_pixels_unchanged_against_files_written_before_the_speed_work(run_normal):
    """tests/data/cai_cli_golden_pixels.json holds the digests of the decoded pixels of this run.

    Written (DAAD_WRITE_GOLDEN=1) from the files of the grown-region solver at zlib level 6,
    before the PNG level's default became 1: a change of encoder or level may change the
    files' bytes (the test below), never their pixels."""
    got = _digests(run_normal, pixels=True)
    if os.environ.get("DAAD_WRITE_GOLDEN_PIXELS"):
        GOLDEN_PIXELS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN_PIXELS.read_text())


def test_cli_bytes_unchanged_against_files_written_before_the_speed_work(run_normal):
    """tests/data/cai_cli_golden.json holds the digests of this run: same seed, same bytes.

    First written by the code before the Folder writer's faster PNG encoding (commit a878975),
    which that work kept byte-identical; rewritten (DAAD_WRITE_GOLDEN=1) when the Poisson
    solver began solving on a region grown to a fast transform size, which changes pixels on
    purpose (see synthesis/cai/poisson.py), when the default PNG level became 1 (cv2,
    Z_RLE), when the row filter became a fixed one (Up for images, None for masks, see
    synthesis/folder.py) and when ISA-L's deflate replaced cv2's libpng (synthesis/png.py);
    those three change bytes but not pixels (the test above). Any other change of bytes fails here."""
    got = _digests(run_normal)
    if os.environ.get("DAAD_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert got == want


def test_png_level_6_still_writes_the_bytes_of_earlier_versions(published, tmp_path):
    """`--png-level 6` is PIL's level-6 encoder: the file bytes the default wrote before it became 1."""
    out = tmp_path / "level6"
    code, output = _synthesize("--dataset", str(published["release"]), "--exclude", "mvtec_ad", "--targets", str(published["targets"]),
                               "--out", str(out), "--size", "256", "--seed", "3", "--png-level", "6")
    assert code == 0, output
    assert _digests(out) == json.loads(GOLDEN_LEVEL6.read_text())


def test_a_killed_run_journals_only_whole_files_and_a_rerun_redoes_the_rest(published, tmp_path):
    """The driver computes the next target while the last one's PNGs are encoded: SIGKILLed mid-run, every
    target its journal names has all its files on disk, whole; a re-run keeps those and gives a fresh run's bytes."""
    import signal
    import subprocess
    import sys
    import time

    targets = tmp_path / "targets"
    for copy in range(6):  # 24 targets: long enough to be killed mid-run
        for f in sorted(published["targets"].rglob("*.png")):
            _copy(f, targets / f"c{copy:02d}" / f.parent.name / f.name)
    args = ["--dataset", str(published["release"]), "--exclude", "mvtec_ad", "--targets", str(targets), "--size", "256", "--seed", "3"]
    out = tmp_path / "killed"
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    proc = subprocess.Popen([sys.executable, "-m", "daad", "synthesize", *args, "--out", str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / ".daad-run.jsonl"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if journal.is_file() and journal.read_text().count("\n") >= 4:  # the fingerprint and three targets
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    entries = []
    for line in journal.read_text().splitlines()[1:]:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the line the kill cut short
    assert 3 <= len(entries) < 24
    for entry in entries:
        for row in entry["result"]:
            for kind in ("file", "mask", "normal"):
                with Image.open(out / row[kind]) as im:
                    im.load()  # whole: a truncated PNG raises here
    code, output = _synthesize(*args, "--out", str(out))
    assert code == 0, output
    assert f"({len(entries)} already complete, kept)" in output
    code, output = _synthesize(*args, "--out", str(tmp_path / "fresh"))
    assert code == 0, output
    assert _digests(out) == _digests(tmp_path / "fresh")
    assert (out / "manifest.jsonl").read_bytes() == (tmp_path / "fresh" / "manifest.jsonl").read_bytes()
