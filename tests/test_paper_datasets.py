"""A curator builds the paper's DAAD from its nine datasets: CrackForest from the real files,
MVTec LOCO AD, RSDDs and AeBAD-S from publisher-layout trees, then `collect paper-datasets`.

The fixture trees follow each publisher's layout as the code that reads them lays it out
(see each source card's "Layout read"), built from real images in ../shared/data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daad.collectors.datasets import PAPER_DATASETS, collect_dataset, collect_paper_datasets, find_paper_datasets, get_adapter
from daad.collectors.datasets.crackforest import CRACK_SEGMENTS, read_mat_segmentation, read_seg_file
from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import LayoutError
from daad.core.media_store import MediaStore


def _mask(store: MediaStore, rec) -> np.ndarray:
    return np.asarray(Image.open(store.mask_path(rec.mask_sha)))


def _tiles(shared: Path, n: int) -> list[Path]:
    return sorted((shared / "magnetic_tile/MT_Crack/Imgs").glob("*.jpg"))[:n]


def _save(src: Path, dest: Path, size: tuple[int, int] | None = None) -> Image.Image:
    dest.parent.mkdir(parents=True, exist_ok=True)
    im = Image.open(src).convert("RGB")
    if size:
        im = im.resize(size)
    im.save(dest)
    return im


def _region(size: tuple[int, int], box: tuple[int, int, int, int], value: int) -> np.ndarray:
    arr = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = value
    return arr


# -- CrackForest, the real files ----------------------------------------------------------


def test_crackforest_real_both_mask_sources_agree_binary_and_aligned(shared_data: Path, catalog: Catalog, store: MediaStore) -> None:
    root = shared_data / "crackforest"
    annotated = sorted(p.stem for p in (root / "groundTruth").glob("*.mat"))
    images = sorted(p.stem for p in (root / "image").glob("*.jpg"))
    assert len(annotated) == 118 and len(images) == 155
    for stem in annotated:  # the two publisher files hold the same segmentation
        assert np.array_equal(read_mat_segmentation(root / "groundTruth" / f"{stem}.mat"), read_seg_file(root / "seg" / f"{stem}.seg"))

    report = collect_dataset("crackforest", root, catalog=catalog, store=store, progress=False)

    assert report.count("added") == 118 and report.count("bad") == 0
    assert report.count("skipped") == len(images) - 118
    assert all("no ground truth" in o.reason for o in report.skipped)
    recs = catalog.find(origin="crackforest")
    assert len(recs) == 118
    lighter = []
    for r in recs:
        assert r.anomaly_class == "crack" and r.source == taxonomy.EXISTING_DATASET and r.mask_status == taxonomy.GROUND_TRUTH
        assert r.license == "terms:crackforest" and r.meta["citation_key"] == "shi2016automatic"
        stem = Path(r.origin_ref).stem
        assert r.origin_ref == f"image/{stem}.jpg" and (r.width, r.height) == (480, 320)
        mask = _mask(store, r)
        assert mask.shape == (320, 480) and set(np.unique(mask).tolist()) == {0, 255}
        seg = read_mat_segmentation(root / "groundTruth" / f"{stem}.mat")
        assert np.array_equal(mask > 0, np.isin(seg, CRACK_SEGMENTS))
        grey = np.asarray(Image.open(root / "image" / f"{stem}.jpg").convert("L"), dtype=float)
        if grey[mask > 0].mean() >= grey[mask == 0].mean():  # cracks are darker than the road
            lighter.append(stem)
    assert lighter == ["042"]  # the publisher's 042 mask does not follow the crack in its photo (see crackforest.py)


def test_crackforest_disagreeing_mask_files_are_bad_and_the_rest_is_collected(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    src, root = shared_data / "crackforest", tmp_path / "CrackForest-dataset"
    for stem in ("001", "002", "003"):
        for sub, ext in (("image", "jpg"), ("groundTruth", "mat"), ("seg", "seg")):
            (root / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{stem}.{ext}", root / sub / f"{stem}.{ext}")
    lines = (root / "seg/002.seg").read_text().splitlines()
    i = lines.index("data") + 1
    s, r, c1, c2 = lines[i].split()
    lines[i] = f"1 {r} {c1} {c2}"  # row 0 claimed by the crack segment in the .seg only
    (root / "seg/002.seg").write_text("\n".join(lines) + "\n")
    (root / "seg/003.seg").unlink()

    report = collect_dataset("crackforest", tmp_path, catalog=catalog, store=store, progress=False)  # the wrapper folder is found

    bad = {Path(o.name).name: o.reason for o in report.bad}
    assert report.count("added") == 1 and set(bad) == {"002.mat", "003.seg"}
    assert "disagree on 480 of 153600 pixels; not collected" in bad["002.mat"]
    assert "file is missing" in bad["003.seg"]


# -- MVTec LOCO AD, publisher layout --------------------------------------------------------


def _loco_tree(shared: Path, root: Path) -> dict:
    """breakfast_box and pushpins: structural images with 1-2 region masks, logical ones, good ones."""
    all_tiles = _tiles(shared, 16)
    size = (200, 160)
    cfg = [
        {"defect_name": "contamination", "pixel_value": 255, "saturation_threshold": 400, "relative_saturation": False},
        {"defect_name": "box_damaged", "pixel_value": 254, "saturation_threshold": 1.0, "relative_saturation": True},
        {"defect_name": "missing_almonds", "pixel_value": 253, "saturation_threshold": 1.0, "relative_saturation": True},
        {"defect_name": "broken", "pixel_value": 252, "saturation_threshold": 300, "relative_saturation": False},
    ]
    expect = {}
    for ci, cat in enumerate(("breakfast_box", "pushpins")):
        tiles = all_tiles[8 * ci : 8 * ci + 8]
        c = root / cat
        c.mkdir(parents=True)
        (c / "defects_config.json").write_text(json.dumps(cfg))
        _save(tiles[0], c / "train/good/000.png", size)
        _save(tiles[1], c / "validation/good/000.png", size)
        _save(tiles[2], c / "test/good/000.png", size)
        gt = c / "ground_truth"
        # structural 000: two regions of two defects (contamination larger); 001: one region
        _save(tiles[3], c / "test/structural_anomalies/000.png", size)
        (gt / "structural_anomalies/000").mkdir(parents=True)
        a, b = _region(size, (10, 10, 60, 60), 255), _region(size, (100, 100, 120, 120), 254)
        Image.fromarray(a).save(gt / "structural_anomalies/000/000.png")
        Image.fromarray(b).save(gt / "structural_anomalies/000/001.png")
        _save(tiles[4], c / "test/structural_anomalies/001.png", size)
        (gt / "structural_anomalies/001").mkdir(parents=True)
        value = 252 if cat == "pushpins" else 254
        Image.fromarray(_region(size, (30, 30, 90, 50), value)).save(gt / "structural_anomalies/001/000.png")
        # logical 000
        _save(tiles[5], c / "test/logical_anomalies/000.png", size)
        (gt / "logical_anomalies/000").mkdir(parents=True)
        Image.fromarray(_region(size, (0, 0, 200, 80), 253)).save(gt / "logical_anomalies/000/000.png")
        expect[f"{cat}/test/structural_anomalies/000.png"] = ((a > 0) | (b > 0), "impurity", f"{cat}/contamination")
        second = ("orifice", "pushpins/broken") if cat == "pushpins" else ("abrasion", "breakfast_box/box_damaged")
        expect[f"{cat}/test/structural_anomalies/001.png"] = (_region(size, (30, 30, 90, 50), 255) > 0, *second)
    return expect


def test_mvtec_loco_union_of_region_masks_structural_classes_logical_counted(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "mvtec_loco_anomaly_detection"
    expect = _loco_tree(shared_data, root)

    report = collect_dataset("mvtec_loco", root, catalog=catalog, store=store, progress=False)

    assert report.count("added") == 4 and report.count("bad") == 0
    skipped = sorted(o.reason for o in report.skipped)
    assert skipped == [f"{c}/logical_anomalies: mapped to null (not an appearance anomaly of the eight classes)" for c in ("breakfast_box", "pushpins")]
    for r in catalog.find(origin="mvtec_loco"):
        union, cls, label = expect[r.origin_ref]
        assert (r.anomaly_class, r.origin_label) == (cls, label)
        assert np.array_equal(_mask(store, r) > 0, union)
        assert r.license == "CC-BY-NC-SA-4.0" and r.meta["anomaly_type"] == "structural_anomalies"
    both = next(r for r in catalog.find(origin="mvtec_loco") if r.origin_ref == "pushpins/test/structural_anomalies/000.png")
    assert both.meta["defects"] == ["box_damaged", "contamination"]
    refs = [ref for ref, _ in get_adapter("mvtec_loco").iter_all_images(root)]
    assert len(refs) == 12 and "pushpins/validation/good/000.png" in refs


def test_mvtec_loco_missing_region_masks_are_bad_and_half_extracted_is_named(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "loco"
    _loco_tree(shared_data, root)
    shutil.rmtree(root / "pushpins/ground_truth/structural_anomalies/001")
    report = collect_dataset("mvtec_loco", root, catalog=catalog, store=store, progress=False)
    assert report.count("added") == 3
    assert [o.reason for o in report.bad] == ["no region masks (000.png, ...) in this ground-truth folder"]
    shutil.rmtree(root / "pushpins/ground_truth")
    with pytest.raises(LayoutError, match=r"pushpins/ground_truth/logical_anomalies/ \(the masks\) is missing"):
        get_adapter("mvtec_loco").check_layout(root)


# -- RSDDs, publisher layout -----------------------------------------------------------------


def test_rsdds_same_name_jpeg_masks_are_binarised(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "RSDDs dataset"
    tiles = _tiles(shared_data, 3)
    boxes = {}
    for i, (folder, size) in enumerate((("Type-I RSDDs dataset", (160, 1000)), ("Type-II RSDDs dataset", (55, 1250)))):
        for n in (1, 2):
            name = f"rail_{n}.jpg"
            _save(tiles[i + n - 1], root / folder / "Rail surface images" / name, size)
            box = (5, 100 * n, 40, 100 * n + 60)
            (root / folder / "GroundTruth").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_region(size, box, 255)).convert("RGB").save(root / folder / "GroundTruth" / name, quality=75)
            boxes[f"{folder}/Rail surface images/{name}"] = _region(size, box, 1) > 0
    noisy = np.unique(np.asarray(Image.open(root / "Type-I RSDDs dataset/GroundTruth/rail_1.jpg")))
    assert len(noisy) > 2  # JPEG masks really hold grey values

    report = collect_dataset("rsdds", tmp_path, catalog=catalog, store=store, progress=False)  # wrapper folder found

    assert report.count("added") == 4 and report.count("bad") == 0
    for r in catalog.find(origin="rsdds"):
        mask = _mask(store, r)
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert np.array_equal(mask > 0, boxes[r.origin_ref])
        assert r.anomaly_class == taxonomy.UNASSIGNED and r.origin_label in ("Type-I/defect", "Type-II/defect")
    with pytest.raises(LayoutError, match="'Type-II RSDDs dataset/GroundTruth/' is missing"):
        shutil.rmtree(root / "Type-II RSDDs dataset/GroundTruth")
        get_adapter("rsdds").check_layout(root)


# -- AeBAD-S, publisher layout ---------------------------------------------------------------


def _aebad_tree(shared: Path, root: Path) -> dict[str, np.ndarray]:
    tiles = _tiles(shared, 8)
    size = (128, 96)
    masks = {}
    k = 0
    for defect, domain in (("fracture", "same"), ("groove", "illumination"), ("ablation", "view"), ("breakdown", "background")):
        _save(tiles[k], root / "test" / defect / domain / "000.png", size)
        m = _region(size, (10 + k, 10, 50 + k, 40), 255)
        (root / "ground_truth" / defect / domain).mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "ground_truth" / defect / domain / "000.png")
        masks[f"test/{defect}/{domain}/000.png"] = m > 0
        k += 1
    for split in ("train", "test"):
        for domain in ("same", "view"):
            _save(tiles[k], root / split / "good" / domain / "000.png", size)
            k = min(k + 1, 7)
    return masks


def test_aebad_mirrored_ground_truth_and_domains(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "AeBAD" / "AeBAD_S"
    masks = _aebad_tree(shared_data, root)
    (tmp_path / "AeBAD" / "AeBAD_V").mkdir()  # the archive's video part sits beside it

    report = collect_dataset("aebad", tmp_path / "AeBAD", catalog=catalog, store=store, progress=False)

    assert report.count("added") == 4 and report.count("bad") == 0
    classes = {r.origin_label: r.anomaly_class for r in catalog.find(origin="aebad")}
    assert classes == {"fracture/same": "crack", "groove/illumination": "scratch", "ablation/view": "abrasion", "breakdown/background": "orifice"}
    for r in catalog.find(origin="aebad"):
        assert np.array_equal(_mask(store, r) > 0, masks[r.origin_ref]) and r.meta["domain"] == r.origin_label.split("/")[1]
    assert len(list(get_adapter("aebad").iter_all_images(root))) == 8
    os.remove(root / "ground_truth/groove/illumination/000.png")
    report = collect_dataset("aebad", root, catalog=catalog, store=store, progress=False)
    assert report.count("existing") == 3 and len(report.bad) == 1 and "groove/illumination/000.png" in report.bad[0].name


# -- collect paper-datasets --------------------------------------------------------------------


def test_paper_datasets_finds_some_of_the_nine_collects_them_and_lists_the_rest(shared_data: Path, tmp_path: Path, daad_home: Path) -> None:
    root = tmp_path / "data"
    mt = root / "downloads" / "Magnetic-tile-defect-datasets."  # one wrapper folder deep
    shutil.copytree(shared_data / "magnetic_tile" / "MT_Crack", mt / "MT_Crack")
    _aebad_tree(shared_data, root / "AeBAD" / "AeBAD_S")
    cf = root / "CrackForest-dataset"
    for stem in ("001", "002", "201"):
        (cf / "image").mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / "crackforest/image" / f"{stem}.jpg", cf / "image")
    for stem in ("001", "002"):
        for sub, ext in (("groundTruth", "mat"), ("seg", "seg")):
            (cf / sub).mkdir(exist_ok=True)
            shutil.copy(shared_data / "crackforest" / sub / f"{stem}.{ext}", cf / sub)
    (root / "notes").mkdir()
    (root / "too" / "deep" / "mvtec").mkdir(parents=True)
    shutil.copytree(shared_data / "mvtec_ad" / "capsule", root / "too" / "deep" / "mvtec" / "capsule")  # two wrappers: not looked at

    found = find_paper_datasets(root)
    assert list(found) == list(PAPER_DATASETS)
    assert found["magnetic_tile"] == mt and found["aebad"] == root / "AeBAD" / "AeBAD_S" and found["crackforest"] == cf
    assert found["mvtec_ad"] is None

    out = subprocess.run([sys.executable, "-m", "daad", "collect", "paper-datasets", str(root), "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows = {line.split("  ")[0].strip(): line for line in lines[1:10]}
    assert set(rows) == {"AeBAD-S", "DAGM 2007", "Magnetic Tile Defects", "MVTec AD", "MVTec LOCO AD", "RSDDs", "VisA", "BTAD", "CrackForest"}
    assert rows["AeBAD-S"].split()[1:6] == ["collected", "4", "0", "0", "0"]
    assert rows["CrackForest"].split()[1:6] == ["collected", "2", "0", "1", "0"]
    assert "collected" in rows["Magnetic Tile Defects"] and str(mt) in rows["Magnetic Tile Defects"]
    assert "missing" in rows["MVTec AD"] and "https://www.mvtec.com/company/research/datasets/mvtec-ad (licence CC-BY-NC-SA-4.0" in rows["MVTec AD"]
    assert "get it from https://ieee-dataport.org/documents/rsdds (licence terms:rsdds; cards/sources/rsdds.md)" in rows["RSDDs"]
    assert lines[10] == f"3 of the paper's 9 datasets collected, 0 found but not collected, 6 missing under {root}"
    n = len(Catalog(daad_home))
    again = collect_paper_datasets(root, catalog=Catalog(daad_home), progress=False)
    assert len(Catalog(daad_home)) == n and all(d.report is None or d.report.count("added") == 0 for d in again.datasets)

    nowhere = subprocess.run([sys.executable, "-m", "daad", "collect", "paper-datasets", str(tmp_path / "nope")], capture_output=True, text=True)
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr and "Traceback" not in nowhere.stderr
