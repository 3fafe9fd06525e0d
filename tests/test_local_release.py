"""`daad publish --local`: a private release that holds what may not be redistributed, and feeds synthesis.

A user's catalog of real data: Magnetic Tile cracks (publisher's terms: research use, no
redistribution), MVTec AD capsule images (CC BY-NC-SA 4.0) and a photo with no licence.
The local release holds all of them and `daad synthesize` reads it; `daad push` refuses
it; a public release of the same catalog has neither Magnetic Tile nor the photo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from daad.cli import main
from daad.collectors.datasets import collect_dataset
from daad.collectors.photos import collect_photos
from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore
from daad.release.dataset_card import PRIVATE_USE_LINE

TILES = 3  # Magnetic Tile cracks collected


@pytest.fixture
def user_catalog(shared_data: Path, daad_home: Path, tmp_path: Path) -> Path:
    """Collect the mixed catalog into this test's DAAD_HOME; returns a folder of normal target images."""
    catalog, store = Catalog(daad_home), MediaStore(daad_home)
    tile = tmp_path / "Magnetic-tile-defect-datasets" / "MT_Crack" / "Imgs"
    tile.mkdir(parents=True)
    for jpg in sorted((shared_data / "magnetic_tile" / "MT_Crack" / "Imgs").glob("*.jpg"))[:TILES]:
        shutil.copy(jpg, tile)
        shutil.copy(jpg.with_suffix(".png"), tile)
    assert collect_dataset("magnetic_tile", tile.parents[1], catalog, store, progress=False).count("added") == TILES

    mvtec = tmp_path / "mvtec_anomaly_detection"
    for ref in ("crack/001", "scratch/002"):
        defect, stem = ref.split("/")
        for sub, name in (("test", f"{stem}.png"), ("ground_truth", f"{stem}_mask.png")):
            (mvtec / "capsule" / sub / defect).mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_data / "mvtec_ad" / "capsule" / sub / defect / name, mvtec / "capsule" / sub / defect / name)
    assert collect_dataset("mvtec_ad", mvtec, catalog, store, progress=False).count("added") == 2

    photos = tmp_path / "photos" / "stain"
    photos.mkdir(parents=True)
    src = shared_data / "mvtec_ad" / "bottle"
    shutil.copy(src / "test" / "contamination" / "005.png", photos / "bench.png")
    shutil.copy(src / "ground_truth" / "contamination" / "005_mask.png", photos / "bench_mask.png")
    assert collect_photos(photos.parent, catalog, store, name="bench", progress=False).count("added") == 1  # no licence given
    catalog.close()

    targets = tmp_path / "targets"
    targets.mkdir()
    shutil.copy(src / "test" / "good" / "001.png", targets / "001.png")
    return targets


def _origins(folder: Path) -> list[str]:
    return sorted(r["origin"] for r in pq.read_table(folder / "data").select(["origin"]).to_pylist())


def test_local_release_holds_magnetic_tile_feeds_synthesize_and_is_never_pushed(user_catalog: Path, tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["publish", "--version", "1.0.0", "--out", str(tmp_path / "local"), "--local", "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"local release, for private use only: {TILES + 1} samples may not be redistributed" in res.output
    assert f"{TILES}  magnetic_tile (terms:magnetic_tile): publisher's terms (magnetic_tile) allow research use" in res.output
    assert "photos:bench (unknown): no licence recorded" in res.output
    folder = tmp_path / "local" / "v1.0.0"
    assert _origins(folder) == sorted(["magnetic_tile"] * TILES + ["mvtec_ad"] * 2 + ["photos:bench"])

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["redistributable"] is False
    card = (folder / "README.md").read_text()
    body = card[card.index("\n---", 4) + 4:].lstrip("\n").splitlines()
    assert body[0].startswith("# DAAD 1.0.0") and body[2] == PRIVATE_USE_LINE
    assert f"| `magnetic_tile` | terms:magnetic_tile | publisher's terms (magnetic_tile) allow research use but not redistribution | {TILES} |" in card
    assert "| `photos:bench` | unknown | no licence recorded | 1 |" in card

    # datasets reads it like any release, in a fresh process
    code = ("import json, sys; from datasets import load_dataset; "
            "print(json.dumps({c: sorted(load_dataset(sys.argv[1], c, split='train')['origin']) for c in ('full', 'exclude_mvtec_ad')}))")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert loaded["exclude_mvtec_ad"] == sorted(["magnetic_tile"] * TILES + ["photos:bench"])

    # synthesis reads it: CAI injects Magnetic Tile cracks into an MVTec bottle
    syn = runner.invoke(main, ["synthesize", "--dataset", str(tmp_path / "local"), "--exclude", "mvtec_ad", "--classes", "crack",
                               "--targets", str(user_catalog), "--out", str(tmp_path / "cai"), "--per-image", "2", "--size", "64",
                               "--foreground", "full", "--quiet"])
    assert syn.exit_code == 0, syn.output
    assert f"[exclude_mvtec_ad]: {TILES} anomalies" in syn.output
    rows = [json.loads(x) for x in (tmp_path / "cai" / "manifest.jsonl").read_text().splitlines()]
    assert rows and {r["origin"] for r in rows} == {"magnetic_tile"}
    assert len(rows) == 2 and all((tmp_path / "cai" / r["file"]).is_file() and (tmp_path / "cai" / r["mask"]).is_file() for r in rows)

    # never pushed: refused before any request (the endpoint is a closed loopback port)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    push = runner.invoke(main, ["push", str(folder), "acme/daad"])
    assert push.exit_code == 1 and "Traceback" not in push.output
    assert push.output.count("\n") == 1 and push.output.startswith("Error: ") and "local release for private use only" in push.output
    both = runner.invoke(main, ["publish", "--version", "1.0.1", "--out", str(tmp_path / "local"), "--local", "--push", "acme/daad"])
    assert both.exit_code != 0 and "--local and --push exclude each other" in both.output
    assert not (tmp_path / "local" / "v1.0.1").exists()

    # a public release of the same catalog: no Magnetic Tile row, no unlicensed photo, as before local releases existed
    pub = runner.invoke(main, ["publish", "--version", "1.0.0", "--out", str(tmp_path / "public"), "--quiet"])
    assert pub.exit_code == 0, pub.output
    public = tmp_path / "public" / "v1.0.0"
    assert _origins(public) == ["mvtec_ad", "mvtec_ad"]
    assert json.loads((public / "manifest.json").read_text())["redistributable"] is True
    assert PRIVATE_USE_LINE not in (public / "README.md").read_text() and "local release" not in pub.output
    assert f"{TILES}  licence not redistributable: publisher's terms (magnetic_tile)" in pub.output
