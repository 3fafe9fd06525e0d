"""Collect the paper's listed web sources into the catalog: one record per resolvable source, resumably.

Every record: class = the sheet, `source=online_search`, `origin=daad_sources`,
`origin_ref` = the sheet and cell (`crack!B17`), licence `unknown` (the images behind the
URLs carry no licence DAAD knows, so they never enter a public release), no mask
(`mask_status` missing).

How a run resumes: each source's outcome lives in the catalog's state table under
`daad_sources:<sheet>!<cell>` (with the cell's text, so an edited sheet is tried again).
Final outcomes (fetched, dead, not an image, unresolvable) are never tried again;
`retry` ones (5xx, 429, a dropped connection, an unresolvable host: the server may be back)
are tried on the next run. Every image URL tried is also recorded (`seen_urls`, provider
`daad_sources`), so an image listed twice is downloaded once. `limit` caps the sources
tried in one run; the next run continues with the first source not finished.

A page listed k times in one sheet (the authors took k images from it) gives up to k
records: its candidate images (`page_images.py`, at most `max_page_images` per page) are
downloaded, those smaller than `min_side` on either side or identical to another are
dropped, and the rest ranked by area; the page's i-th listing gets the i-th largest.

`mirror` fetches every URL (listed or found in a page) as `<mirror>/<scheme>/<host><path>?<query>`
instead: an offline mirror or a cache laid out that way, or a test server on 127.0.0.1
(the mirror's host is trusted even when private, like a search endpoint; every other
host must be public).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Union
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from tqdm import tqdm

from daad.collectors.search.credentials import load_credentials, user_agent
from daad.collectors.search.http import FetchError, HttpConfig, NotAnImageError, PoliteSession
from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import BadItemError
from daad.core.images import load_image
from daad.core.ingest import Item, ingest_one
from daad.core.media_store import MediaStore

from .page_images import decode_html, page_images
from .resolve import KINDS, Resolution, resolve
from .sheet import Source, read_sources

ORIGIN = "daad_sources"
LICENSE = "unknown"
FINAL = ("fetched", "dead", "not_image", "unresolvable")
OUTCOMES = FINAL + ("retry",)
HOW = {"direct": "direct image URL", "search": "search-engine URL", "data": "data: URI", "page": "web page", "title": "title only"}
COLUMNS = {"fetched": "fetched", "dead": "dead", "not_image": "not an image", "unresolvable": "unresolvable", "retry": "retry later"}


def mirror_url(mirror: str, url: str) -> str:
    """`url` as `<mirror>/<scheme>/<host>/<path>?<query>` (the layout of a mirror or cache)."""
    p = urlsplit(url)
    return f"{mirror.rstrip('/')}/{p.scheme}/{p.netloc}{p.path or '/'}" + (f"?{p.query}" if p.query else "")


def state_key(src: Source) -> str:
    return f"{ORIGIN}:{src.ref}"


@dataclass
class SourceOutcome:
    ref: str
    kind: str  # how it was listed (resolve.KINDS)
    outcome: str  # one of OUTCOMES
    reason: str = ""
    image_url: str = ""
    sample_id: str | None = None
    status: str = ""  # ingest's: added | existing


@dataclass
class DaadSourcesReport:
    listed: int = 0  # sources in the chosen sheets
    done_before: int = 0  # finished in earlier runs (not tried again)
    left: int = 0  # not tried in this run because of the limit
    requests: int = 0
    outcomes: list[SourceOutcome] = field(default_factory=list)
    overall: Counter = field(default_factory=Counter)  # final state of every listed source, all runs

    def count(self, outcome: str) -> int:
        return sum(o.outcome == outcome for o in self.outcomes)

    def summary(self) -> str:
        """This run's table (how listed x outcome), then where the whole list stands."""
        head = ["how listed", "tried", "resolved", *COLUMNS.values()]
        rows = []
        for kind in KINDS:
            mine = [o for o in self.outcomes if o.kind == kind]
            c = Counter(o.outcome for o in mine)
            rows.append([HOW[kind], len(mine), len(mine) - c["unresolvable"], *(c[k] for k in COLUMNS)])
        c = Counter(o.outcome for o in self.outcomes)
        rows.append(["total", len(self.outcomes), len(self.outcomes) - c["unresolvable"], *(c[k] for k in COLUMNS)])
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(str(v).ljust(widths[0]) if i == 0 else str(v).rjust(widths[i]) for i, v in enumerate(r))  # noqa: E731
        added = sum(o.status == "added" for o in self.outcomes)
        lines = [fmt(head), *map(fmt, rows)]
        lines.append(
            f"this run: {len(self.outcomes)} source(s) tried, {added} new record(s), "
            f"{c['fetched'] - added} already in the catalog; {self.requests} HTTP request(s)"
        )
        so_far = ", ".join(f"{COLUMNS[k]} {self.overall[k]}" for k in OUTCOMES if self.overall[k])
        lines.append(
            f"all runs: {self.listed} listed; {so_far or 'nothing done yet'}; "
            f"{self.listed - sum(self.overall[k] for k in FINAL)} left to try"
            + (" (run again to continue)" if self.left or self.overall["retry"] else "")
        )
        return "\n".join(lines)


@dataclass
class _PageImages:
    """A page's distinct images of at least min_side, largest first; or why there are none."""

    images: list[tuple[str, bytes]] = field(default_factory=list)
    failure: str = ""  # "", dead, not_image, retry (the page itself failed)
    why: str = ""
    partial: bool = False  # some image failed transiently: a later run may find more


class _Fetcher:
    """Fetches through the polite session, via the mirror when one is given."""

    def __init__(self, http: PoliteSession, mirror: str | None):
        self.http, self.mirror = http, mirror

    def where(self, url: str) -> str:
        return mirror_url(self.mirror, url) if self.mirror else url

    def image(self, url: str) -> bytes:
        return self.http.get_image(self.where(url))

    def body(self, url: str) -> tuple[str, bytes]:
        return self.http.get_body(self.where(url))


def _failure(exc: FetchError) -> str:
    if isinstance(exc, NotAnImageError):
        return "not_image"
    return "retry" if exc.transient else "dead"


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """The bytes of a `data:image/...` URI; ValueError naming why not."""
    head, sep, data = uri.partition(",")
    if not sep:
        raise ValueError("data: URI without a comma")
    media = head[5:].split(";")[0].strip().lower()
    if media and not media.startswith("image/"):
        raise ValueError(f"data: URI of type {media}, not an image")
    if len(data) * 3 // 4 > max_bytes:
        raise ValueError(f"data: URI of about {len(data) * 3 // 4} bytes exceeds the size cap of {max_bytes}")
    if head.endswith(";base64"):
        try:
            return base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"data: URI is not valid base64 ({exc})") from None
    return unquote_to_bytes(data)


def collect_daad_sources(
    xlsx: Union[str, Path],
    classes: Iterable[str] | None = None,
    limit: int | None = None,
    mirror: str | None = None,
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    http_config: HttpConfig | None = None,
    min_side: int = 100,
    max_page_images: int = 24,
    progress: bool = True,
) -> DaadSourcesReport:
    """Resolve and fetch the sources listed in `xlsx` (sheets `classes`, default all eight).

    Bad sources are reported by kind and never stop the run; everything finished is kept
    (each source in its own transaction), so an interrupted run resumes.
    """
    sources = read_sources(xlsx, classes)
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    config = http_config if http_config is not None else HttpConfig(user_agent=user_agent(load_credentials(catalog.home).contact))
    if mirror:
        host = urlsplit(mirror).hostname
        if urlsplit(mirror).scheme not in ("http", "https") or not host:
            raise ValueError(f"--mirror {mirror!r}: expected an http(s) URL such as http://127.0.0.1:8000/mirror")
        config = dataclasses.replace(config, trusted_hosts=config.trusted_hosts | {host})
    http = PoliteSession(config)
    fetcher = _Fetcher(http, mirror)

    resolutions = {s.ref: resolve(s) for s in sources}
    groups: dict[tuple[str, str], list[str]] = {}
    for s in sources:
        r = resolutions[s.ref]
        if r.kind == "page":
            groups.setdefault((s.sheet, r.page), []).append(s.ref)

    report = DaadSourcesReport(listed=len(sources))
    todo: list[Source] = []
    for s in sources:
        st = catalog.get_state(state_key(s))
        if st and st.get("value") == s.value and st.get("link") == s.link and st.get("outcome") in FINAL:
            report.done_before += 1
        else:
            todo.append(s)
    if limit is not None:
        report.left = max(0, len(todo) - limit)
        todo = todo[:limit]

    ranked_pages: dict[str, _PageImages] = {}

    def record(src: Source, res: Resolution, out: SourceOutcome) -> SourceOutcome:
        catalog.set_state(state_key(src), {"value": src.value, "link": src.link, "kind": res.kind, "outcome": out.outcome,
                                           "reason": out.reason, "image_url": out.image_url, "sample_id": out.sample_id})  # fmt: skip
        return out

    def store_image(src: Source, res: Resolution, data: bytes, url: str, page: str = "") -> SourceOutcome:
        shown = url if not url.startswith("data:") else f"{src.ref} (data: URI, {len(url)} characters)"
        item = Item(
            image=data,
            name=shown,
            source=taxonomy.ONLINE_SEARCH,
            origin=ORIGIN,
            anomaly_class=src.sheet,
            origin_label=src.sheet,
            origin_ref=src.ref,
            license=LICENSE,
            attribution=f"listed in the DAAD authors' 'source of real anomalies.xlsx' ({src.ref}); image from {page or shown}; licence unknown",
            meta={"listed": src.value[:500], "link": src.link, "listed_as": res.kind, "image_url": shown, "page_url": page},
        )
        try:
            with catalog.transaction():
                o = ingest_one(item, catalog, store)
                if not url.startswith("data:"):
                    catalog.mark_url(ORIGIN, url, o.status, sample_id=o.sample_id)
                return record(src, res, SourceOutcome(src.ref, res.kind, "fetched", image_url=shown, sample_id=o.sample_id, status=o.status))
        except BadItemError as exc:
            if not url.startswith("data:"):
                catalog.mark_url(ORIGIN, url, "bad", reason=exc.reason)
            return record(src, res, SourceOutcome(src.ref, res.kind, "not_image", f"{shown}: {exc.reason}"))

    def fetch_candidates(src: Source, res: Resolution) -> SourceOutcome:
        failures: list[tuple[str, str]] = []
        for url in res.images:
            seen = catalog.url_seen(ORIGIN, url)
            if seen is not None and seen["sample_id"]:
                o = SourceOutcome(src.ref, res.kind, "fetched", image_url=url, sample_id=seen["sample_id"], status="existing")
                return record(src, res, o)
            if seen is not None:
                failures.append(("dead" if seen["outcome"] == "dead" else "not_image", f"{url}: {seen['reason']}"))
                continue
            try:
                data = fetcher.image(url)
            except FetchError as exc:
                kind = _failure(exc)
                failures.append((kind, f"{url}: {exc.reason}"))
                if kind != "retry":
                    catalog.mark_url(ORIGIN, url, kind, reason=exc.reason)
                continue
            out = store_image(src, res, data, url)
            if out.outcome == "fetched":
                return out
            failures.append(("not_image", out.reason))
        kinds = {k for k, _ in failures}
        outcome = "retry" if "retry" in kinds else "not_image" if "not_image" in kinds else "dead"
        return record(src, res, SourceOutcome(src.ref, res.kind, outcome, "; ".join(r for _, r in failures)))

    def rank_page(page: str) -> _PageImages:
        if page in ranked_pages:
            return ranked_pages[page]
        try:
            ctype, body = fetcher.body(page)
        except FetchError as exc:
            ranked_pages[page] = _PageImages(failure=_failure(exc), why=f"{page}: {exc.reason}")
            return ranked_pages[page]
        if ctype.startswith("image/"):  # the "page" is an image itself
            ranked_pages[page] = _PageImages(images=[(page, body)])
            return ranked_pages[page]
        if ctype and not ctype.startswith(("text/html", "application/xhtml")):
            why = f"{page}: content-type {ctype.split(';')[0]} is neither an image nor a web page"
            ranked_pages[page] = _PageImages(failure="not_image", why=why)
            return ranked_pages[page]
        found: list[tuple[int, int, str, bytes]] = []
        digests: set[str] = set()
        partial = False
        for order, url in enumerate(page_images(decode_html(body, ctype), page, min_side)[:max_page_images]):
            try:
                data = fetcher.image(url)
                im = load_image(data, url)
            except FetchError as exc:
                partial |= exc.transient
                continue
            except BadItemError:
                continue
            if min(im.size) < min_side:
                continue
            digest = hashlib.sha256(im.tobytes() + repr(im.size).encode()).hexdigest()
            if digest not in digests:
                digests.add(digest)
                found.append((-im.width * im.height, order, url, data))
        found.sort()
        ranked_pages[page] = _PageImages(images=[(u, d) for _, _, u, d in found], partial=partial)
        return ranked_pages[page]

    def handle(src: Source) -> SourceOutcome:
        res = resolutions[src.ref]
        if res.kind == "title":
            return record(src, res, SourceOutcome(src.ref, res.kind, "unresolvable", res.why))
        if res.kind == "data":
            try:
                data = decode_data_uri(res.images[0], config.max_bytes)
            except ValueError as exc:
                return record(src, res, SourceOutcome(src.ref, res.kind, "not_image", f"{src.ref}: {exc}"))
            return store_image(src, res, data, res.images[0])
        if res.kind in ("direct", "search"):
            return fetch_candidates(src, res)
        listing = groups[(src.sheet, res.page)]
        i, k = listing.index(src.ref), len(listing)
        page = rank_page(res.page)
        if i < len(page.images):
            url, data = page.images[i]
            return store_image(src, res, data, url, page=res.page)
        if page.failure:
            return record(src, res, SourceOutcome(src.ref, res.kind, page.failure, page.why))
        why = f"{res.page}: the page has {len(page.images)} distinct image(s) of at least {min_side} px; this is listing {i + 1} of {k}"
        return record(src, res, SourceOutcome(src.ref, res.kind, "retry" if page.partial else "unresolvable", why))

    bar = tqdm(todo, desc="daad-sources", unit="src", disable=not progress)
    for src in bar:
        report.outcomes.append(handle(src))
    report.requests = http.requests_made
    for s in sources:
        st: dict[str, Any] = catalog.get_state(state_key(s)) or {}
        if st.get("value") == s.value and st.get("link") == s.link and st.get("outcome") in OUTCOMES:
            report.overall[st["outcome"]] += 1
    return report
