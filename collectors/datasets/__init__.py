"""Adapters for the public IAD datasets, one module each, in their publishers' on-disk layouts.

    from daad.collectors.datasets import ADAPTERS, get_adapter, collect_dataset
    report = collect_dataset("mvtec_ad", "~/data/mvtec_anomaly_detection")
    print(summary(report))
    print(collect_paper_datasets("~/data").summary())   # the paper's nine, wherever they are under ~/data
    for ref, path in get_adapter("visa").iter_all_images("~/data/VisA"):   # leakage checks
        ...

Each adapter (`base.DatasetAdapter`) has `name` (the records' origin), `license`,
`citation`, `homepage`, `check_layout(root)`, `iter_items(root, mapping)` (anomalous
images with ground-truth masks, mapped to DAAD classes by `<name>.yaml`) and
`iter_all_images(root)` (every image, normal and anomalous, train and test).
"""

from __future__ import annotations

from .base import DatasetAdapter, Download, load_mapping
from .collect import collect_dataset, find_root, summary
from .aebad import AeBAD
from .btad import BTAD
from .crackforest import CrackForest
from .dagm import DAGM
from .ksdd import KSDD
from .ksdd2 import KSDD2
from .magnetic_tile import MagneticTile
from .mpdd import MPDD
from .mvtec_3d import MVTec3D
from .mvtec_ad import MVTecAD
from .mvtec_loco import MVTecLOCO
from .paper import EXTRA_DATASETS, PAPER_DATASETS, collect_paper_datasets, find_paper_datasets
from .rsdds import RSDDs
from .visa import VisA

ADAPTERS: dict[str, DatasetAdapter] = {
    a.name: a
    for a in (
        MVTecAD(), VisA(), KSDD2(), BTAD(), MPDD(), KSDD(), DAGM(), MagneticTile(), MVTec3D(),
        CrackForest(), MVTecLOCO(), RSDDs(), AeBAD(),
    )
}


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter called `name`; ValueError listing the known names otherwise."""
    key = name.strip().lower().replace("-", "_")
    if key not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(ADAPTERS)}")
    return ADAPTERS[key]


__all__ = [
    "ADAPTERS", "EXTRA_DATASETS", "PAPER_DATASETS", "DatasetAdapter", "Download", "collect_dataset", "collect_paper_datasets",
    "find_paper_datasets", "find_root", "get_adapter", "load_mapping", "summary",
]
