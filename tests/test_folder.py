"""The one Folder writer (daad.synthesis.folder): names that cannot collide, re-runs, refusal of a foreign folder.

Real CAI on the packaged demo targets (DeepPCB boards) with real MVTec AD demo anomalies
as patterns; the CAI+CDM session in one folder is in tests/test_cdm.py (it needs the tiny model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daad.core.images import load_image, load_mask
from daad.demo import DEMO_DATA
from daad.synthesis.cai import CAI, Pattern
from daad.synthesis.cai.output import find_targets, run
from daad.synthesis.folder import FolderInUseError, stem_for

BOARD = DEMO_DATA / "targets" / "capsule_good_001.png"


def test_stems_keep_names_readable_and_never_meet():
    assert stem_for("bottle/000.png") == "bottle__000"
    assert stem_for("00041000_temp.jpg") == "00041000_temp.jpg"
    keys = ["a_b/x.png", "a/b_x.png", "a/b/x.png", "a__b/x.png", "a/_b/x.png", "x.png", "x.jpg", "x.jpg.png", "x",
            "a b/x.png", "a_b/x.PNG", "é/x.png", "a" * 250 + ".png", "a" * 251 + ".png"]
    stems = [stem_for(k) for k in keys]
    assert len(set(stems)) == len(keys), dict(zip(keys, stems, strict=True))
    assert all(len(s.encode()) <= 120 for s in stems)


@pytest.fixture(scope="module")
def cai() -> CAI:
    patterns = []
    for img in sorted((DEMO_DATA / "mvtec_ad").glob("*/test/*/*.png")):
        m = DEMO_DATA / "mvtec_ad" / img.parts[-4] / "ground_truth" / img.parent.name / f"{img.stem}_mask.png"
        im = load_image(img)
        patterns.append(Pattern(np.asarray(im.convert("RGB")), np.asarray(load_mask(m, im.size)) > 0, img.name, "crack", "mvtec_ad"))
    return CAI(patterns, quota=(1, 1, 0), foreground="full", size=64, seed=1)


def _targets(root: Path, names: list[str]) -> Path:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BOARD, root / n)
    return root


def test_colliding_looking_targets_and_a_254_byte_name_keep_every_file(cai, tmp_path):
    names = ["a/b_x.jpg", "a_b/x.jpg", "a/b/x.jpg", "a__b/x.jpg", "b" * 250 + ".jpg"]
    targets = _targets(tmp_path / "t", names)
    report = run(cai, find_targets(targets), tmp_path / "out", progress=False)
    assert report.images == 10 and not report.failed
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["target"] for r in rows) == sorted(names * 2)
    assert len({r["file"] for r in rows}) == 10 and [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    assert len(list((tmp_path / "out" / "abnormal").iterdir())) == 10 == len(list((tmp_path / "out" / "mask").iterdir()))
    assert len(list((tmp_path / "out" / "normal").iterdir())) == 5
    assert not list((tmp_path / "out").rglob("*.tmp"))
    for r in rows:  # normal images at the working size, the size of their pseudo anomalies
        assert Image.open(tmp_path / "out" / r["normal"]).size == Image.open(tmp_path / "out" / r["file"]).size == (64, 64)


def test_other_settings_are_refused_unless_overwrite_which_removes_the_rest(cai, tmp_path):
    targets = _targets(tmp_path / "t", ["p.jpg", "q.jpg"])
    out = tmp_path / "out"
    run(cai, find_targets(targets), out, progress=False)
    first = {p.name: p.read_bytes() for p in (out / "abnormal").iterdir()}
    run(cai, find_targets(targets), out, progress=False)  # same settings: a re-run, same bytes, one row per file
    assert {p.name: p.read_bytes() for p in (out / "abnormal").iterdir()} == first
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4
    other = CAI(cai.pool, quota=(1, 0, 0), foreground="full", size=64, seed=2)
    with pytest.raises(FolderInUseError, match=r"seed 1 -> 2"):
        run(other, find_targets(targets), out, progress=False)
    assert {p.name: p.read_bytes() for p in (out / "abnormal").iterdir()} == first  # nothing touched
    run(other, find_targets(targets / "p.jpg"), out, progress=False, overwrite=True)
    assert sorted(p.name for p in (out / "abnormal").iterdir()) == ["p.jpg_00.png"]
    assert sorted(p.name for p in (out / "normal").iterdir()) == ["p.jpg.png"]
    assert [json.loads(line)["seed"] for line in (out / "manifest.jsonl").read_text().splitlines()] == [2]
    assert json.loads((out / "daad_run.json").read_text())["cai"]["seed"] == 2


def test_a_folder_with_files_no_run_recorded_is_refused(cai, tmp_path):
    (tmp_path / "out" / "abnormal").mkdir(parents=True)
    (tmp_path / "out" / "abnormal" / "mine.png").write_bytes(b"x")
    with pytest.raises(FolderInUseError, match="no run recorded"):
        run(cai, find_targets(_targets(tmp_path / "t", ["p.jpg"])), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "abnormal" / "mine.png").read_bytes() == b"x"


def test_the_png_level_changes_bytes_never_pixels_and_a_folder_of_another_level_is_reused(cai, tmp_path):
    """Level 1 (the default) and 6 (PIL's bytes of earlier versions) decode to the same pixels;
    a folder whose run record holds a `png_level` (as runs before level 1 became the default wrote) is not refused."""
    targets = find_targets(_targets(tmp_path / "t", ["p.jpg", "q.jpg"]))
    run(cai, targets, tmp_path / "one", progress=False)
    run(cai, targets, tmp_path / "six", progress=False, png_level=6)
    names = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").glob("*/*.png"))
    assert names and names == sorted(p.relative_to(tmp_path / "six") for p in (tmp_path / "six").glob("*/*.png"))
    assert any((tmp_path / "one" / n).read_bytes() != (tmp_path / "six" / n).read_bytes() for n in names)
    for n in names:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / n)), np.asarray(Image.open(tmp_path / "six" / n))), n
    record = tmp_path / "six" / "daad_run.json"
    runs = json.loads(record.read_text())
    assert "png_level" not in runs["cai"]
    runs["cai"]["png_level"] = 6  # an older version's record
    record.write_text(json.dumps(runs))
    run(cai, targets, tmp_path / "six", progress=False)  # accepted: same settings but the level


def test_settled_names_a_target_only_once_its_files_are_whole_and_in_write_order(cai, tmp_path):
    """The driver journals a target when `settled` names it, while the next one computes: every file of a named
    target must already decode to the pixels handed to `write`; a pickled (worker's) copy is not the driver's."""
    import pickle

    from daad.synthesis.cai.cai import resize_target
    from daad.synthesis.folder import FolderWriter, Output

    board = resize_target(np.asarray(load_image(BOARD).convert("RGB")), cai.size)
    writer = FolderWriter(tmp_path / "out", run="cai", threads=2)
    assert not pickle.loads(pickle.dumps(writer)).in_driver and writer.in_driver
    keys = [f"t{i:02d}.png" for i in range(12)]
    written: dict[str, tuple[np.ndarray, list]] = {}
    named: list[str] = []

    def check(key: str) -> None:
        normal, outputs = written[key]
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "normal" / f"{key[:-4]}.png")), normal)
        for o in outputs:
            assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "abnormal" / f"{key[:-4]}_{o.tag}.png")), o.image)
            assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "mask" / f"{key[:-4]}_{o.tag}.png")), o.mask)

    for key in keys:
        normal = np.ascontiguousarray(np.roll(board, len(written), axis=1))  # other pixels per target
        outputs = [Output(f"{k:02d}", inj.image, inj.mask, inj.provenance) for k, inj in enumerate(cai(normal, key=key))]
        written[key] = (normal, outputs)
        rows, bad = writer.write(key, tmp_path / key, normal, outputs)
        assert rows and not bad and writer.writing(key)
        for done in writer.settled():
            check(done)
            assert not writer.writing(done)
            named.append(done)
    rest = writer.wait()
    for done in rest:
        check(done)
    assert named + rest == keys
    assert writer.settled() == [] and writer.wait() == []
