"""The floors in pyproject.toml admit only versions that have what the code uses.

A floor below what the code needs installs fine and fails at run time on the user's
machine (np.bitwise_count under NumPy 1.26 is an AttributeError deep in dedupe). Each
rule here names a feature the code uses and the first version that has it; the
measurements behind the extras' floors are in pyproject.toml's comment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("daad", "collectors", "synthesis") for p in (REPO / d).rglob("*.py")]

# (package, first version with the feature, regex of the feature in the sources or pyproject)
RULES = [
    ("numpy", "2.0", r"np\.bitwise_count\("),
    ("setuptools", "77", r'^license = "[A-Za-z0-9.+-]+"$'),  # a PEP 639 SPDX string
    ("matplotlib", "3.8.4", r"import matplotlib"),  # 3.7 does not import under NumPy 2
    ("scipy", "1.13", r"(import|from) scipy"),
    ("opencv-python-headless", "4.10.0.84", r"import cv2"),
    ("pyarrow", "16", r"import pyarrow"),
    ("isal", "1.6", r"from isal import"),  # 1.5.0 is yanked (a memory leak); 1.6.0 checked with NumPy 2.0.0
]


def _floors() -> dict[str, list[Version]]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = list(meta["project"]["dependencies"]) + list(meta["build-system"]["requires"])
    reqs += [r for extra in meta["project"]["optional-dependencies"].values() for r in extra if not r.startswith("daad[")]
    floors: dict[str, list[Version]] = {}
    for r in map(Requirement, reqs):
        for spec in r.specifier:
            if spec.operator in (">=", "=="):
                floors.setdefault(r.name.lower(), []).append(Version(spec.version))
    return floors


def test_every_floor_admits_only_versions_with_what_the_code_uses():
    floors = _floors()
    text = "\n".join(p.read_text() for p in SOURCES) + "\n" + (REPO / "pyproject.toml").read_text()
    for package, needed, feature in RULES:
        if not re.search(feature, text, re.M):
            continue
        assert package in floors, f"{package} is used ({feature}) but has no floor"
        low = min(floors[package])
        assert low >= Version(needed), f"{package}>={low} admits versions without {feature!r} (needs >={needed})"
