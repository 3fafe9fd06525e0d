"""What every search provider returns: results with their licence, and where to continue.

A provider is a small class with one method, `page(query, cursor, allow_nc)`: it asks its
API for one page and returns the results plus the cursor of the next page (None at the
end). Cursors are JSON values (a page number, MediaWiki's `continue` object) so a
query's progress can be saved in the catalog and resumed.

An answer is other people's JSON: a result whose `url` is not a string, whose licence
is a number or a list, or whose URL does not parse is one bad item (`Page.bad`, named by
provider, page and id, with the field at fault); the rest of the page goes on.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import urlsplit

from daad.collectors.search.http import PoliteSession


@dataclass
class SearchResult:
    """One image a search API returned, with everything its record needs."""

    provider: str  # the API asked: openverse, wikimedia, flickr (the record's origin)
    id: str  # the provider's id for it
    image_url: str
    license: str  # normalised id (daad.core.licenses.normalize), "" when none was given, "unknown"
    license_url: str = ""
    title: str = ""
    creator: str = ""
    creator_url: str = ""
    landing_url: str = ""
    attribution: str = ""
    upstream: str = ""  # where the provider got it (Openverse indexes Flickr, Wikimedia, ...)
    mime: str = ""
    license_text: str = ""  # what the provider said, when it was not understood (for the skip reason)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Page:
    results: list[SearchResult] = field(default_factory=list)
    next_cursor: Any = None  # None: this was the last page
    bad: list[tuple[str, str]] = field(default_factory=list)  # (result's name, what is wrong with it)


class BadResult(ValueError):
    """One result (or one field of a page) that does not have the documented shape."""


def text_field(r: dict, key: str) -> str:
    """Field `key` of result `r` as a string ("" when absent or null); BadResult when it is another type."""
    v = r.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BadResult(f"field {key!r} is {type(v).__name__} {_short(v)}, expected a string")
    return v


def id_field(r: dict, key: str) -> str:
    """An id field: a string or an integer (MediaWiki page ids are numbers)."""
    v = r.get(key)
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return text_field(r, key)


def url_field(r: dict, key: str, required: bool = False) -> str:
    """A URL field: a string that parses as an http(s) URL with a host."""
    v = text_field(r, key)
    if not v:
        if required:
            raise BadResult(f"field {key!r} is missing")
        return ""
    try:
        parts = urlsplit(v)
        _ = parts.port  # raises for a port that is not a number
    except ValueError as exc:
        raise BadResult(f"field {key!r} is not a valid URL ({exc}): {_short(v)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() or ord(c) < 32 for c in v):
        raise BadResult(f"field {key!r} is not a valid http(s) URL: {_short(v)}")
    return v


def count_field(data: dict, key: str) -> int | None:
    """A page count or number: an int, a whole finite float, or digits; None when it is anything else."""
    v = data.get(key)
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    return None


def numbered_page(results: list[SearchResult], bad: list[tuple[str, str]], data: dict, key: str, page: int, who: str) -> Page:
    """The page and where to go next for APIs that number their pages and state the count in `data[key]`.

    A count that is not a number is reported once as a bad item of the page and paging goes on
    while pages have results (the per-run page budget bounds it), rather than stopping the query.
    """
    pages = count_field(data, key)
    if pages is None:
        bad.append((f"{who} page {page}", f"field {key!r} is {data.get(key)!r}, expected a number; going on while pages have results"))
    more = bool(results or bad) and (pages is None or page < pages)
    return Page(results, page + 1 if more else None, bad)


def parse_each(rows: Iterable[Any], parse: Callable[[dict], SearchResult | None], name: Callable[[Any, int], str]) -> tuple[list[SearchResult], list[tuple[str, str]]]:
    """Parse every row of a page; a row that does not parse is reported (name, reason), the rest go on."""
    results, bad = [], []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise BadResult(f"result is {type(row).__name__} {_short(row)}, expected an object")
            res = parse(row)
        except BadResult as exc:
            bad.append((name(row, i), str(exc)))
            continue
        except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a nested field of the wrong shape
            bad.append((name(row, i), f"malformed result ({type(exc).__name__}: {exc})"))
            continue
        if res is not None:
            results.append(res)
    return results, bad


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


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
    where = f" ({landing_url})" if landing_url else ""
    return f"{name}{by}, {license_id or 'no licence'}, via {via}{where}"
