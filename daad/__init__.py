"""daad: build, curate, publish and use DAAD, a domain-agnostic dataset of real anomalies.

The plain Python API comes first; the `daad` command is a thin layer over it.

    from daad import Catalog, MediaStore, taxonomy
    from daad.collectors.photos import collect_photos

The names below are imported when first used (PEP 562), so `import daad.cli` does not
load the catalog (sqlite3, records) for commands that never open it: `daad synthesize`
reads only a release.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daad.core import taxonomy
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.core.record import Record

__version__ = "0.1.0"
__all__ = ["Catalog", "MediaStore", "Record", "taxonomy", "__version__"]
_WHERE = {"Catalog": "daad.core.catalog", "MediaStore": "daad.core.media_store", "Record": "daad.core.record"}


def __getattr__(name: str) -> Any:
    if name == "taxonomy":
        return importlib.import_module("daad.core.taxonomy")
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'daad' has no attribute {name!r}")
