"""`daad demo`: the README's first command, end to end on the packaged demo set, in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _daad(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "daad", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_demo_runs_end_to_end_and_again(tmp_path: Path, daad_home: Path, artifacts: Path):
    out = tmp_path / "demo"
    user = tmp_path / "user"  # a HOME of its own: the demo must write no cache there (~/.cache/huggingface, matplotlib)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HOME": str(user)}
    for var in ("HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        env.pop(var, None)
    first = _daad("demo", "--out", str(out), "--quiet", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert not user.exists() or not any(user.rglob("*")), sorted(map(str, user.rglob("*")))
    assert "5 added, 0 already there, 0 bad" in first.stdout
    assert "3/4 publish: 5 samples" in first.stdout
    assert not daad_home.exists(), "the demo must keep its catalog under --out, not in DAAD_HOME"

    # The release is a real dataset that `datasets` reads in this process too.
    from datasets import load_dataset

    ds = load_dataset(str(out / "release" / "v1.0.0"), "full", split="train")
    assert len(ds) == 5 and sorted(ds["origin"]) == ["mvtec_ad"] * 5
    for row in ds:
        assert row["mask"].size == row["image"].size and set(np.unique(np.asarray(row["mask"]))) <= {0, 255}

    # CAI output: anomalib Folder layout, one mask per abnormal image, provenance per row.
    cai = out / "cai"
    abnormal = sorted(p.name for p in (cai / "abnormal").glob("*.png"))
    assert abnormal and abnormal == sorted(p.name for p in (cai / "mask").glob("*.png"))
    rows = [json.loads(line) for line in (cai / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(abnormal) == 16
    for name in abnormal[:4]:
        mask = np.asarray(Image.open(cai / "mask" / name))
        assert mask.shape == (256, 256) and mask.any() and set(np.unique(mask)) <= {0, 255}
    assert (out / "status.png").stat().st_size > 0 and (cai / "preview.png").stat().st_size > 0
    # The demo's own picture shows every target (4), each with its 4 pseudo anomalies, with gaps and labels.
    with Image.open(out / "preview.png") as sheet:
        assert sheet.size == (8 + 5 * (160 + 8), 32 + 4 * (16 + 160 + 8))
        assert sheet.getpixel((4, 100)) == (255, 255, 255)  # a gap, not a tile
    (artifacts / "demo_preview.png").write_bytes((out / "preview.png").read_bytes())

    # Again: nothing new collected, the release reused, the same pixels (same seed).
    before = (cai / "abnormal" / abnormal[0]).read_bytes()
    second = _daad("demo", "--out", str(out), "--quiet", env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "0 added, 5 already there" in second.stdout and "exists, reused" in second.stdout
    assert (cai / "abnormal" / abnormal[0]).read_bytes() == before
