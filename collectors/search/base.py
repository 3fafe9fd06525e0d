"""What every search provider returns: results with their licence, and where to continue.

A provider is a small class with one method, `page(query, cursor, allow_nc)`: it asks its
API for one page and returns the results plus the cursor of the next page (None at the
end). Cursors are JSON values (a page number, MediaWiki's `continue` object) so a
query's progress can be saved in the catalog and resumed.
"""

from __future__ import annotations

import dataclasses
import html
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from daad.collectors.search.http import PoliteSession


@dataclass
class SearchResult:
    """One image a search API returned, with everything its record needs."""

    provider: str  # the API asked: openverse, wikimedia, flickr (the record's origin)
    id: str  # the provider's id for it
    image_url: str
    license: str  # normalised id (daad.core.licenses.normalize), "" when none was given
    license_url: str = ""
    title: str = ""
    creator: str = ""
    creator_url: str = ""
    landing_url: str = ""
    attribution: str = ""
    upstream: str = ""  # where the provider got it (Openverse indexes Flickr, Wikimedia, ...)
    mime: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Page:
    results: list[SearchResult] = field(default_factory=list)
    next_cursor: Any = None  # None: this was the last page


class SearchProvider(Protocol):
    name: str

    def page(self, query: str, cursor: Any, allow_nc: bool) -> Page: ...


def make_provider(name: str, http: PoliteSession, endpoint: str | None = None, token: str = "", api_key: str = "") -> SearchProvider:
    """The provider called `name`, talking to `endpoint` (default: the public API)."""
    from daad.collectors.search.flickr import Flickr
    from daad.collectors.search.openverse import Openverse
    from daad.collectors.search.wikimedia import Wikimedia

    if name == "openverse":
        return Openverse(http, endpoint, token=token)
    if name == "wikimedia":
        return Wikimedia(http, endpoint)
    if name == "flickr":
        return Flickr(http, endpoint, api_key=api_key)
    raise ValueError(f"unknown search provider {name!r}; expected one of {', '.join(PROVIDERS)}")


PROVIDERS = ("openverse", "wikimedia", "flickr")  # the registry: `daad collect search --provider` lists these

_TAG = re.compile(r"<[^>]+>")


def plain_text(value: str) -> str:
    """HTML (as MediaWiki's extmetadata gives it) to one line of plain text."""
    return " ".join(html.unescape(_TAG.sub(" ", value or "")).split())


def attribution_line(title: str, creator: str, license_id: str, landing_url: str, via: str) -> str:
    """A TASL attribution (title, author, source, licence) for providers that do not give one."""
    name = f'"{title}"' if title else "Image"
    by = f" by {creator}" if creator else ""
    return f"{name}{by}, {license_id or 'no licence'}, via {via} ({landing_url})"
