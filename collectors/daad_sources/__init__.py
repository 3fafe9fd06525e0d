"""The paper's own list of DAAD's web sources (`source of real anomalies.xlsx`), resolved and fetched.

    from daad.collectors.daad_sources import collect_daad_sources
    report = collect_daad_sources("source of real anomalies.xlsx", classes=["crack"], limit=50)
    print(report.summary())

`sheet.py` reads the spreadsheet (one `Source` per listed row), `resolve.py` decides what
each entry is and which image URLs it holds, `page_images.py` finds the images of a web
page, and `collect.py` fetches them through the polite HTTP layer into the catalog,
resumably.
"""

from __future__ import annotations

from .collect import DaadSourcesReport, collect_daad_sources, mirror_url
from .resolve import Resolution, resolve
from .sheet import Source, read_sources

__all__ = ["DaadSourcesReport", "Resolution", "Source", "collect_daad_sources", "mirror_url", "read_sources", "resolve"]
