"""A curator collects the public IAD datasets: real MVTec AD and Magnetic Tile, the others as fixture trees.

Fixture trees follow each publisher's documented layout (file names, mask suffixes,
label files) and are built from real images in ../shared/data.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.collectors.datasets import ADAPTERS, collect_dataset, get_adapter, load_mapping, summary
from daad.core.errors import LayoutError
from daad.core.media_store import MediaStore

MT_IMAGES = "magnetic_tile/MT_Crack/Imgs"


def _mask_array(store: MediaStore, rec) -> np.ndarray:
    return np.asarray(Image.open(store.mask_path(rec.mask_sha)))


def _tile_images(shared: Path, n: int) -> list[Path]:
    """Small real photographs (magnetic tiles) to build fixture trees from."""
    return sorted((shared / MT_IMAGES).glob("*.jpg"))[:n]


def _save_as(src: Path, dest: Path) -> Image.Image:
    """Re-save a real image in the format the publisher uses (by suffix); returns it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    im = Image.open(src).convert("L")
    im.save(dest, format={".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[dest.suffix.lower()])
    return im


def _draw_mask(dest: Path, size: tuple[int, int], value: int = 255, empty: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), np.uint8)
    if not empty:
        arr[size[1] // 4 : size[1] // 2, size[0] // 4 : size[0] // 2] = value
    Image.fromarray(arr, "L").save(dest)


# -- MVTec AD, real data ------------------------------------------------------------------


def test_mvtec_ad_real(shared_data: Path, catalog: Catalog, store: MediaStore) -> None:
    root = shared_data / "mvtec_ad"
    mapping = load_mapping("mvtec_ad")
    on_disk = sorted(p for p in root.glob("*/test/*/*.png") if p.parent.name != "good")
    assert on_disk, "no anomalous MVTec images in the sample data"
    expected = Counter(mapping[f"{p.parts[-4]}/{p.parent.name}"] for p in on_disk)

    report = collect_dataset("mvtec_ad", root, catalog=catalog, store=store, progress=False)

    recs = catalog.find(origin="mvtec_ad")
    unmapped = expected.pop(None, 0)
    assert len(recs) == report.count("added") == sum(expected.values())
    assert report.count("skipped") == unmapped > 0  # capsule/squeeze is a shape defect
    assert report.count("bad") == 0
    assert Counter(r.anomaly_class for r in recs) == expected
    for r in recs:
        assert "/good/" not in r.origin_ref
        assert r.anomaly_class == mapping[r.origin_label]
        assert r.source == taxonomy.EXISTING_DATASET and r.mask_status == taxonomy.GROUND_TRUTH
        assert r.license == "CC-BY-NC-SA-4.0" and "MVTec" in r.attribution
        assert r.meta == {"citation_key": "bergmann2019mvtec", "split": "test"}
        cat, _, defect, name = r.origin_ref.split("/")
        publisher_mask = np.asarray(Image.open(root / cat / "ground_truth" / defect / name.replace(".png", "_mask.png")))
        assert np.array_equal(_mask_array(store, r), publisher_mask)
        assert (r.width, r.height) == Image.open(root / r.origin_ref).size

    again = collect_dataset("mvtec_ad", root, catalog=catalog, store=store, progress=False)
    assert again.count("added") == 0 and again.count("existing") == len(recs)
    assert len(catalog) == len(recs)

    table = summary(report)
    assert "crack" in table and "capsule/squeeze: mapped to null" in table

    every = list(get_adapter("mvtec_ad").iter_all_images(root))
    assert sorted(p for _, p in every) == sorted(p for p in root.glob("*/*/*/*.png") if "ground_truth" not in p.parts)
    assert all(not ref.startswith("/") and (root / ref).is_file() for ref, _ in every)


def test_mvtec_ad_missing_mask_is_bad_and_batch_goes_on(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "mvtec"
    shutil.copytree(shared_data / "mvtec_ad" / "bottle", root / "bottle")
    missing = root / "bottle/ground_truth/contamination/005_mask.png"
    missing.unlink()
    report = collect_dataset("mvtec_ad", root, catalog=catalog, store=store, progress=False)
    assert [o.name for o in report.bad] == [str(missing)]
    assert report.count("added") == 7
    assert "bad:" in summary(report)


def test_mapping_override(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "mvtec"
    for cat, defect in (("capsule", "squeeze"), ("capsule", "crack"), ("bottle", "contamination")):
        for part in ("test", "ground_truth"):
            shutil.copytree(shared_data / "mvtec_ad" / cat / part / defect, root / cat / part / defect)
    mine = tmp_path / "mine.yaml"
    mine.write_text("capsule/squeeze: abrasion\nbottle/contamination: null\n")
    report = collect_dataset("mvtec_ad", root, catalog=catalog, store=store, mapping_file=mine, progress=False)
    got = Counter((r.origin_label, r.anomaly_class) for r in catalog.find(origin="mvtec_ad"))
    assert got == {("capsule/squeeze", "abrasion"): 1, ("capsule/crack", "crack"): 2}  # the rest of the default stays
    assert report.count("skipped") == 4  # the four contamination images

    bad = tmp_path / "bad.yaml"
    bad.write_text("capsule/squeeze: dent\n")
    with pytest.raises(ValueError, match="bad.yaml: capsule/squeeze: unknown anomaly class 'dent'"):
        collect_dataset("mvtec_ad", root, catalog=catalog, store=store, mapping_file=bad, progress=False)


# -- Magnetic Tile, real data -------------------------------------------------------------


def test_magnetic_tile_real(shared_data: Path, catalog: Catalog, store: MediaStore) -> None:
    root = shared_data / "magnetic_tile"
    anomalous = sorted(p for p in root.glob("MT_*/Imgs/*.jpg") if p.parts[-3] != "MT_Free")
    report = collect_dataset("magnetic_tile", root, catalog=catalog, store=store, progress=False)
    recs = catalog.find(origin="magnetic_tile")
    # The publisher's masks of four MT_Uneven images mark no pixel at all: an anomaly mask
    # with no anomaly is reported as bad, never collected as ground truth.
    empty = {"exp3_num_45042.jpg", "exp4_num_124690.jpg", "exp4_num_352527.jpg", "exp4_num_45057.jpg"}
    assert {Path(o.name).name for o in report.bad} == empty and report.count("skipped") == 0
    assert all("is empty (all zero)" in o.reason and "MT_Uneven" in o.name for o in report.bad)
    # Identical images inside the dataset are stored once: count distinct ids.
    assert len(recs) == report.count("added") == len(anomalous) - report.count("existing") - len(empty)
    assert not any(r.origin_label == "MT_Free" or "MT_Free" in r.origin_ref for r in recs)
    assert {r.origin_label for r in recs} == {"MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"}
    grey_seen = False
    for r in recs[::7]:
        stored = _mask_array(store, r)
        assert set(np.unique(stored)) <= {0, 255}
        publisher = np.asarray(Image.open((root / r.origin_ref).with_suffix(".png")))
        grey_seen |= len(np.unique(publisher)) > 2
        assert np.array_equal(stored == 255, publisher >= 128)
    assert grey_seen, "the publisher's masks should hold grey values"
    assert recs[0].license == "terms:magnetic_tile"

    every = [ref for ref, _ in get_adapter("magnetic_tile").iter_all_images(root)]
    assert len(every) == len(list(root.glob("MT_*/Imgs/*.jpg")))
    assert any(ref.startswith("MT_Free/") for ref in every) and not any(ref.endswith(".png") for ref in every)


# -- VisA, fixture built from the real split CSV ------------------------------------------


@pytest.fixture
def visa_root(shared_data: Path, tmp_path: Path) -> Path:
    """Rows of the real split_csv/1cls.csv, their files created at the CSV's own paths."""
    rows = list(csv.DictReader(open(shared_data / "visa/split_csv/1cls.csv", newline="")))
    picked = []
    for obj in ("candle", "pcb1", "capsules"):
        picked += [r for r in rows if r["object"] == obj and r["label"] == "anomaly"][:3]
        picked += [r for r in rows if r["object"] == obj and r["label"] == "normal"][:1]
    root = tmp_path / "VisA"
    labels = {
        "candle": ["chunk of wax missing", "weird candle wick", "different colour spot,foreign particals on candle"],
        "pcb1": ["scratch", "bent", "melt,scratch"],
        "capsules": ["scratch", "bubble", "leak"],
    }
    annos: dict[str, list[list[str]]] = {}
    srcs = iter(_tile_images(shared_data, 20))
    for r in picked:
        im = _save_as(next(srcs), root / r["image"])
        anno = annos.setdefault(r["object"], [["image", "label", "mask"]])
        if r["label"] == "anomaly":
            _draw_mask(root / r["mask"], im.size, value=len(anno))  # instance ids 1, 2, 3 as VisA stores them
            anno.append([r["image"], labels[r["object"]][len(anno) - 1], r["mask"]])
        else:
            anno.append([r["image"], "normal", ""])
    for obj, anno in annos.items():
        with open(root / obj / "image_anno.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(anno)
    (root / "split_csv").mkdir()
    with open(root / "split_csv/1cls.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["object", "split", "label", "image", "mask"])
        w.writeheader()
        w.writerows(picked)
    return root


def test_visa_fixture(visa_root: Path, catalog: Catalog, store: MediaStore) -> None:
    report = collect_dataset("visa", visa_root, catalog=catalog, store=store, progress=False)
    got = {r.origin_label: r.anomaly_class for r in catalog.find(origin="visa")}
    # two defects mapping to different classes (stain, impurity) are skipped, not guessed
    assert "candle/different colour spot,foreign particals on candle" not in got
    assert got == {
        "candle/chunk of wax missing": "orifice",
        "pcb1/scratch": "scratch",
        "capsules/scratch": "scratch",
        "capsules/bubble": "pits",
        "capsules/leak": "stain",
    }
    reasons = sorted(o.reason for o in report.skipped)
    assert any("weird candle wick: mapped to null" in r for r in reasons)
    assert any("pcb1/bent: mapped to null" in r for r in reasons)
    assert any("different classes" in r for r in reasons)
    assert report.count("skipped") == 4  # wick, bent, melt+scratch (stain vs scratch), spot+particles
    for r in catalog.find(origin="visa"):
        assert set(np.unique(_mask_array(store, r))) == {0, 255}  # ids 1..3 binarised
        assert r.license == "CC-BY-4.0" and r.meta["split"] == "test"
    every = list(get_adapter("visa").iter_all_images(visa_root))
    assert len(every) == 12 and all("/Data/Images/" in ref for ref, _ in every)


# -- the other datasets, fixture trees in their publishers' layouts -----------------------


def test_ksdd2_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "KolektorSDD2"
    src = _tile_images(shared_data, 4)
    for i, (split, defect) in enumerate([("train", True), ("train", False), ("test", True), ("test", False)]):
        im = _save_as(src[i], root / split / f"{10000 + i}.png")
        _draw_mask(root / split / f"{10000 + i}_GT.png", im.size, empty=not defect)
    report = collect_dataset("ksdd2", root, catalog=catalog, store=store, progress=False)
    recs = catalog.find(origin="ksdd2")
    assert sorted(r.origin_ref for r in recs) == ["test/10002.png", "train/10000.png"]
    assert {r.anomaly_class for r in recs} == {"unassigned"} and report.count("bad") == 0
    assert sorted(ref for ref, _ in get_adapter("ksdd2").iter_all_images(root)) == [
        "test/10002.png", "test/10003.png", "train/10000.png", "train/10001.png"]  # fmt: skip


def test_ksdd_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "KolektorSDD"
    src = iter(_tile_images(shared_data, 6))
    for kos in ("kos01", "kos02"):
        for part, defect in ((0, kos == "kos02"), (1, False), (2, kos == "kos01")):
            im = _save_as(next(src), root / kos / f"Part{part}.jpg")
            _draw_mask(root / kos / f"Part{part}_label.bmp", im.size, empty=not defect)
    collect_dataset("ksdd", root, catalog=catalog, store=store, progress=False)
    recs = catalog.find(origin="ksdd")
    assert sorted(r.origin_ref for r in recs) == ["kos01/Part2.jpg", "kos02/Part0.jpg"]
    assert {r.anomaly_class for r in recs} == {"crack"}
    assert len(list(get_adapter("ksdd").iter_all_images(root))) == 6


def test_dagm_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "DAGM"
    src = iter(_tile_images(shared_data, 8))
    for cls in ("Class1", "Class10"):
        for split, first in (("Train", 576), ("Test", 1)):
            folder = root / cls / split
            lines = ["2"]
            for n, defect in ((first, False), (first + 1, True)):
                name = f"{n:04d}.PNG"
                im = _save_as(next(src), folder / name)
                label = f"{n:04d}_label.PNG"
                if defect:
                    _draw_mask(folder / "Label" / label, im.size)
                lines.append(f"{n}\t{int(defect)}\t{name}\t{int(defect)}" + (f"\t{label}" if defect else ""))
            (folder / "Label").mkdir(exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n")
    collect_dataset("dagm", root, catalog=catalog, store=store, progress=False)
    refs = sorted(r.origin_ref for r in catalog.find(origin="dagm"))
    assert refs == ["Class1/Test/0002.PNG", "Class1/Train/0577.PNG", "Class10/Test/0002.PNG", "Class10/Train/0577.PNG"]
    assert {r.origin_label for r in catalog.find(origin="dagm")} == {"Class1", "Class10"}
    every = [ref for ref, _ in get_adapter("dagm").iter_all_images(root)]
    assert len(every) == 8 and not any("Label" in ref for ref in every)


def test_btad_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "btad" / "BTech_Dataset_transformed"
    src = iter(_tile_images(shared_data, 6))
    for product, img_ext, mask_ext in (("01", ".bmp", ".png"), ("03", ".bmp", ".bmp")):
        _save_as(next(src), root / product / "train/ok" / f"0000{img_ext}")
        _save_as(next(src), root / product / "test/ok" / f"0001{img_ext}")
        im = _save_as(next(src), root / product / "test/ko" / f"0002{img_ext}")
        _draw_mask(root / product / "ground_truth/ko" / f"0002{mask_ext}", im.size)
    # The archive wraps the products in BTech_Dataset_transformed/: its parent works too.
    report = collect_dataset("btad", root.parent, catalog=catalog, store=store, progress=False)
    recs = catalog.find(origin="btad")
    assert sorted(r.origin_ref for r in recs) == ["01/test/ko/0002.bmp", "03/test/ko/0002.bmp"]
    assert report.count("bad") == 0 and {r.origin_label for r in recs} == {"01/ko", "03/ko"}
    assert len(list(get_adapter("btad").iter_all_images(root))) == 6


def test_mpdd_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "MPDD"
    src = iter(_tile_images(shared_data, 5))
    _save_as(next(src), root / "bracket_black/train/good/000.png")
    _save_as(next(src), root / "bracket_black/test/good/000.png")
    for cat, defect in (("bracket_black", "hole"), ("metal_plate", "major_rust"), ("bracket_brown", "parts_mismatch")):
        im = _save_as(next(src), root / cat / "test" / defect / "000.png")
        _draw_mask(root / cat / "ground_truth" / defect / "000_mask.png", im.size)
    report = collect_dataset("mpdd", root, catalog=catalog, store=store, progress=False)
    got = {r.origin_label: r.anomaly_class for r in catalog.find(origin="mpdd")}
    assert got == {"bracket_black/hole": "hole", "metal_plate/major_rust": "stain"}
    assert report.count("skipped") == 1
    assert len(list(get_adapter("mpdd").iter_all_images(root))) == 5


def test_mvtec_3d_fixture(shared_data: Path, tmp_path: Path, catalog: Catalog, store: MediaStore) -> None:
    root = tmp_path / "mvtec_3d_anomaly_detection"
    src = iter(_tile_images(shared_data, 5))
    _save_as(next(src), root / "bagel/train/good/rgb/000.png")
    _save_as(next(src), root / "bagel/validation/good/rgb/000.png")
    (root / "bagel/train/good/xyz").mkdir(parents=True)
    (root / "bagel/train/good/xyz/000.tiff").write_bytes(b"II*\x00 point cloud, not an image")
    for cat, defect in (("bagel", "crack"), ("rope", "contamination"), ("cable_gland", "bent")):
        im = _save_as(next(src), root / cat / "test" / defect / "rgb/000.png")
        _draw_mask(root / cat / "test" / defect / "gt/000.png", im.size, value=1)  # grey, not 255
    report = collect_dataset("mvtec_3d", root, catalog=catalog, store=store, progress=False)
    recs = catalog.find(origin="mvtec_3d")
    assert {r.origin_label: r.anomaly_class for r in recs} == {"bagel/crack": "crack", "rope/contamination": "impurity"}
    assert report.count("skipped") == 1
    assert all(set(np.unique(_mask_array(store, r))) == {0, 255} for r in recs)
    every = [ref for ref, _ in get_adapter("mvtec_3d").iter_all_images(root)]
    assert len(every) == 5 and all("/rgb/" in ref for ref in every)


# -- wrong paths ----------------------------------------------------------------------------


def test_wrong_paths_get_clear_errors(shared_data: Path, tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(LayoutError, match=r"magnetic_tile: this is not MVTec AD .*It looks like magnetic_tile"):
        collect_dataset("mvtec_ad", shared_data / "magnetic_tile", catalog=catalog, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ADAPTERS:
        with pytest.raises(LayoutError, match="an empty folder"):
            collect_dataset(name, empty, catalog=catalog, progress=False)
    with pytest.raises(LayoutError, match="the path does not exist"):
        collect_dataset("visa", tmp_path / "nowhere", catalog=catalog, progress=False)
    half = tmp_path / "half"
    shutil.copytree(shared_data / "mvtec_ad" / "capsule" / "test", half / "capsule" / "test")
    with pytest.raises(LayoutError, match=r"capsule/ground_truth/ is missing.*half-extracted"):
        collect_dataset("mvtec_ad", half, catalog=catalog, progress=False)
    with pytest.raises(LayoutError, match=r"split_csv/1cls.csv is missing"):
        collect_dataset("visa", shared_data / "mvtec_ad", catalog=catalog, progress=False)
    assert len(catalog) == 0
    with pytest.raises(ValueError, match="mvtec_ad, visa, ksdd2, btad, mpdd, ksdd, dagm, magnetic_tile, mvtec_3d"):
        get_adapter("mvtec")


@pytest.mark.parametrize(
    "name, files, expected",
    [
        ("ksdd2", ["train/10000.png"], r"train/ holds no <id>_GT.png masks"),
        ("ksdd", ["kos01/Part0.jpg"], r"kos01/ has PartN.jpg but no PartN_label.bmp"),
        ("dagm", ["Class1/Train/0001.PNG"], r"Class1/Train/Label/Labels.txt is missing"),
        ("btad", ["01/test/ko/0000.bmp"], r"01/ground_truth/ko/ \(the masks\) is missing"),
        ("mvtec_3d", ["bagel/test/crack/rgb/000.png"], r"bagel/test/crack/gt/ \(the masks\) is missing"),
        ("magnetic_tile", ["MT_Crack/readme.txt"], r"MT_Crack/Imgs/ is missing"),
        ("mpdd", ["tubes/train/good/000.png"], r"tubes/test/ is missing"),
    ],
)
def test_half_extracted_trees_are_named(tmp_path: Path, name: str, files: list[str], expected: str) -> None:
    for f in files:
        (tmp_path / "ds" / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ds" / f).write_bytes(b"")
    with pytest.raises(LayoutError, match=expected):
        get_adapter(name).check_layout(tmp_path / "ds")


def test_adapters_carry_licence_citation_and_a_valid_mapping() -> None:
    from daad.core.licenses import info

    assert list(ADAPTERS) == ["mvtec_ad", "visa", "ksdd2", "btad", "mpdd", "ksdd", "dagm", "magnetic_tile", "mvtec_3d",
                             "crackforest", "mvtec_loco", "rsdds", "aebad"]
    cards = Path(__file__).resolve().parents[1] / "cards" / "sources"
    for name, a in ADAPTERS.items():
        assert a.name == name and a.citation and a.homepage.startswith("http") and a.citation_key
        assert info(a.license).id == a.license, f"{name}: licence id {a.license!r} is not normalised"
        mapping = a.mapping()
        assert mapping and all(v is None or v in taxonomy.CLASSES_AND_UNASSIGNED for v in mapping.values())
        raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "collectors/datasets" / f"{name}.yaml").read_text())
        assert raw == mapping
        card = (cards / f"{name}.md").read_text()
        assert a.citation_key in card and a.homepage in card


def test_cli_collect_dataset(shared_data: Path, tmp_path: Path, daad_home: Path) -> None:
    root = tmp_path / "mvtec"
    for defect in ("crack", "squeeze"):
        for part in ("test", "ground_truth"):
            shutil.copytree(shared_data / "mvtec_ad/capsule" / part / defect, root / "capsule" / part / defect)
    env = os.environ.copy()
    out = subprocess.run([sys.executable, "-m", "daad", "collect", "dataset", "mvtec_ad", str(root), "--quiet"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "collected" in out.stdout and "1  capsule/squeeze: mapped to null" in out.stdout
    table = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:4]}
    assert table == {"(unmapped)": ["0", "0", "1", "0"], "crack": ["2", "0", "0", "0"], "total": ["2", "0", "1", "0"]}
    assert len(Catalog(daad_home)) == 2

    wrong = subprocess.run([sys.executable, "-m", "daad", "collect", "dataset", "ksdd2", str(shared_data / "mvtec_ad"), "--quiet"],
                           capture_output=True, text=True, env=env)  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("Error: ") and "this is not KolektorSDD2" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "It looks like mvtec_ad" in wrong.stderr

    nodl = subprocess.run([sys.executable, "-m", "daad", "collect", "dataset", "mpdd", str(daad_home / "x"), "--download"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert nodl.returncode == 1 and "no direct download URL" in nodl.stderr
