"""The pyarrow reader of a local release gives what `datasets.load_dataset` gives, on a real published release.

The session: collect a few MVTec AD and Magnetic Tile anomalies from ../shared/data, publish
them in small shards (several parquet files and row groups per config, so order matters),
then read every config both ways: same rows in the same order, same ids, classes, origins
and bytes; the stored `mask_box` is the box of the decoded mask; a pool built from either
reader hands out the same patterns. A release from before `mask_box` (the column dropped
from its parquet) still works, its masks measured on load, with the same sides.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from daad.core.mask_box import bbox, mask_array
from daad.release.reader import ReleaseRows, config_files, config_names, read_config
from daad.synthesis.cai import patterns

MT_SUBSET = {"MT_Crack": 4, "MT_Blowhole": 4, "MT_Uneven": 3}


@pytest.fixture(scope="module")
def release(shared_data, tmp_path_factory) -> Path:
    """A real release in shards of ~150 kB: several files per config, rows from two leak groups."""
    from daad.collectors.datasets import collect_dataset
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.release.publish import publish

    root = tmp_path_factory.mktemp("reader")
    for kind, n in MT_SUBSET.items():
        for jpg in sorted((shared_data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:n]:
            for f in (jpg, jpg.with_suffix(".png")):
                (root / "magnetic_tile" / kind / "Imgs").mkdir(parents=True, exist_ok=True)
                shutil.copy(f, root / "magnetic_tile" / kind / "Imgs" / f.name)
    for png in sorted((shared_data / "mvtec_ad" / "bottle" / "test" / "contamination").glob("*.png"))[:3]:
        gt = shared_data / "mvtec_ad" / "bottle" / "ground_truth" / "contamination" / f"{png.stem}_mask.png"
        for f, sub in ((png, "test"), (gt, "ground_truth")):
            (root / "mvtec_ad" / "bottle" / sub / "contamination").mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / "mvtec_ad" / "bottle" / sub / "contamination" / f.name)
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAAD_HOME", str(home))
        catalog, store = Catalog(home), MediaStore(home)
        collect_dataset("mvtec_ad", root / "mvtec_ad", catalog=catalog, store=store, progress=False)
        collect_dataset("magnetic_tile", root / "magnetic_tile", catalog=catalog, store=store, progress=False)
        for rec in catalog.find(origin="magnetic_tile"):  # stands in for permission obtained (nothing leaves tmp)
            catalog.update(rec.id, who="test", license="CC-BY-4.0", attribution="Huang et al. 2018")
        result = publish(catalog, "1.0.0", root / "release", store=store, progress=False, shard_bytes=150_000)
        catalog.close()
    return result.path


def _load(folder: Path, config: str, cache: Path):
    import datasets

    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def test_every_config_reads_as_datasets_reads_it(release, tmp_path):
    names = config_names(release)
    assert set(names) == {"full", "exclude_mvtec_ad", "exclude_magnetic_tile"}
    assert len(config_files(release, "full")) > 2  # shards: the order across files is exercised
    for config in names:
        ds = _load(release, config, tmp_path / "hf")
        rows = read_config(release, config)
        assert len(rows) == len(ds) > 0
        assert rows.ids == ds["id"]
        labels = ds.features["anomaly_class"].names
        assert rows.classes == [labels[c] for c in ds["anomaly_class"]]
        assert rows.origins == ds["origin"]
        boxes = rows.boxes
        assert boxes is not None and boxes == ds["mask_box"]
        arrow = ds.with_format("arrow")
        for i in range(len(ds)):
            image, mask = rows.cells(i)
            assert image == arrow[i].column("image")[0].as_py() and mask == arrow[i].column("mask")[0].as_py()
            box = bbox(mask_array(mask["bytes"]))
            assert boxes[i] == ([] if box is None else list(box))


def test_a_pool_from_either_reader_gives_the_same_patterns(release, tmp_path):
    ds = _load(release, "exclude_mvtec_ad", tmp_path / "hf")
    rows, config, path = patterns.open_published(release, "mvtec_ad")
    assert isinstance(rows, ReleaseRows) and config == "exclude_mvtec_ad" and path == str(release)
    a, b = patterns.PublishedPool(ds), patterns.PublishedPool(pickle.loads(pickle.dumps(rows)))
    assert a.ids == b.ids and a.classes == b.classes and a.origins == b.origins
    assert np.array_equal(a.sides, b.sides)
    for i in range(len(a)):
        pa_, pb = a.get(i), b.get(i)
        assert np.array_equal(pa_.image, pb.image) and np.array_equal(pa_.mask, pb.mask) and pa_.id == pb.id


def test_a_release_without_mask_box_is_measured_on_load(release, tmp_path):
    import pyarrow.parquet as pq

    old = tmp_path / "old"
    shutil.copytree(release, old)
    for f in old.rglob("*.parquet"):
        table = pq.read_table(f)
        pq.write_table(table.drop_columns(["mask_box"]), f, row_group_size=4)
    rows = read_config(old, "full")
    assert rows.boxes is None
    new_pool, old_pool = patterns.PublishedPool(read_config(release, "full")), patterns.PublishedPool(rows)
    assert np.array_equal(new_pool.sides, old_pool.sides) and new_pool.ids == old_pool.ids
    assert (new_pool.sides > 0).all()


def test_a_missing_config_is_refused_and_classes_filter(release):
    with pytest.raises(patterns.ConfigMissingError, match="refusing to fall back to 'full'"):
        patterns.open_published(release, "visa")
    rows, _, _ = patterns.open_published(release, None, ["crack"])
    assert rows.classes and set(rows.classes) == {"crack"}
    everything = read_config(release, "full")
    assert len(rows) == everything.classes.count("crack")


def test_a_broken_shard_is_named(release, tmp_path):
    from daad.core.errors import DaadError

    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    shard = config_files(broken, "full")[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DaadError, match=shard.name):
        read_config(broken, "full")


def test_synthesize_from_a_local_release_imports_no_datasets_pandas_torch_fiftyone_or_scipy_fft(release, shared_data, tmp_path):
    """The start-up work: `datasets` alone was ~1 s of a fresh `daad synthesize` (benchmarks/cai.py --startup), `scipy.fft` 0.12-0.16 s."""
    import subprocess
    import sys

    targets = tmp_path / "targets"
    targets.mkdir()
    shutil.copy(shared_data / "mvtec_ad" / "bottle" / "test" / "good" / "001.png", targets / "001.png")
    code = ("import sys\nfrom daad.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('datasets', 'pandas', 'torch', 'fiftyone', 'huggingface_hub', 'scipy.fft') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code, "synthesize", "--dataset", str(release), "--exclude", "mvtec_ad",
                          "--targets", str(targets), "--out", str(tmp_path / "out"), "--per-image", "2", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "2 pseudo anomalies" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "[]"
