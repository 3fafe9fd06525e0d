"""Collect one query from one image-search API into the catalog: licensed, resumable, polite.

How a query resumes: its progress lives in the catalog's state table under
`search:<provider>:<free|nc>:<query>`: the cursor of the next page, whether the API ran
out of results, results fetched but not handled yet (the rest of a page when the limit
was reached), and results whose download failed transiently (retried first on the next
run). Every URL tried is recorded (`seen_urls`), so an image is never downloaded twice,
whatever query or run finds it again.

`limit` counts images *added by this query across runs*, counted from the catalog (each
record keeps its query's state key in `meta.search`), so a run killed between storing an
image and saving the state loses nothing from the count. A re-run with the same limit
does nothing (no request is sent); a larger limit continues where the last run stopped.

Two runs of the same query at once: the query's state is taken under a lock
(`DAAD_HOME/locks/`, see daad.core.locks) for the whole run, so the second one waits,
says so, then resumes from where the first stopped; nothing is downloaded twice and no
addition is lost. Different queries run in parallel freely.

Budgets: `max_pages` API pages per run (an API that claims a billion pages of results
that are all skipped must not be paged for ever; the next run continues), and the HTTP
layer's per-request deadline. A malformed result is one bad item; the page goes on.

Licences: only results whose licence allows redistribution and derivatives are
downloaded (CC0, PDM, CC BY, CC BY-SA; CC BY-NC(-SA) with `allow_nc`); the rest are
reported as skipped with the reason, without a download.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from daad.core import licenses, locks, taxonomy
from daad.core.catalog import Catalog
from daad.collectors.search.base import PROVIDERS, SearchResult, make_provider
from daad.collectors.search.credentials import Credentials, load_credentials, user_agent
from daad.collectors.search.http import FetchError, HttpConfig, PoliteSession
from daad.core.errors import BadItemError
from daad.core.ingest import CollectReport, Item, Outcome, ingest_one
from daad.core.media_store import MediaStore

DEFAULT_MAX_PAGES = 100  # per run: 2,000 Openverse or Wikimedia results, far more than a limit of 50 needs
RASTER_PREFIXES = ("image/jpeg", "image/jpg", "image/png", "image/webp", "image/tiff", "image/bmp", "image/gif")


@dataclass
class SearchReport(CollectReport):
    """A CollectReport plus where the query stands."""

    provider: str = ""
    query: str = ""
    added_total: int = 0  # by this query, over all runs
    limit: int = 0
    exhausted: bool = False
    pages: int = 0  # pages fetched in this run
    requests: int = 0  # HTTP requests sent in this run
    retry_later: list[str] = field(default_factory=list)
    page_budget_hit: bool = False

    def summary(self) -> str:
        state = "no more results" if self.exhausted else ("limit reached" if self.added_total >= self.limit else "more results left")
        tail = f"{self.provider} {self.query!r}: {self.added_total}/{self.limit} added by this query so far ({state}); {self.pages} page(s), {self.requests} request(s) this run"
        if self.page_budget_hit:
            tail += f"; stopped at this run's budget of {self.pages} pages: run again to continue"
        if self.retry_later:
            tail += f"; {len(self.retry_later)} download(s) failed for now and will be retried on the next run"
        return super().summary() + "\n" + tail


def state_key(provider: str, query: str, allow_nc: bool) -> str:
    return f"search:{provider}:{'nc' if allow_nc else 'free'}:{' '.join(query.lower().split())}"


def _lock_path(catalog: Catalog, key: str) -> Path:
    return catalog.home / "locks" / f"search-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


def _waiting(holder: str) -> None:
    print(f"another run of this query is in progress ({holder}); waiting for it to finish...", file=sys.stderr)


def _raster(mime: str) -> bool:
    return not mime or mime.lower().startswith(RASTER_PREFIXES)


def collect_search(
    query: str,
    provider: str,
    anomaly_class: str,
    limit: int,
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    endpoint: str | None = None,
    allow_nc: bool = False,
    http_config: HttpConfig | None = None,
    credentials: Credentials | None = None,
    progress: bool = True,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> SearchReport:
    """Search `provider` for `query` and add up to `limit` licensed images (this query's total) as `anomaly_class`.

    Fetches at most `max_pages` API pages in this run. Raises FetchError or ValueError
    when the API itself fails (after retries); everything done until then is kept and
    the next run resumes from there.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown search provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    cls = taxonomy.check_class(anomaly_class)
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    store.clean_stale_temps()
    creds = credentials or load_credentials(catalog.home)
    if http_config is None:
        http_config = HttpConfig(user_agent=user_agent(creds.contact))
    if endpoint:  # the user chose this host: it may be a mirror on a private network
        http_config = dataclasses.replace(http_config, trusted_hosts=http_config.trusted_hosts | {urlsplit(endpoint).hostname or ""})
    http = PoliteSession(http_config, secrets=creds.secrets)
    api = make_provider(provider, http, endpoint, token=creds.openverse_token, api_key=creds.flickr_api_key)

    key = state_key(provider, query, allow_nc)
    with locks.exclusive(_lock_path(catalog, key), on_wait=_waiting):
        return _run(query, provider, cls, limit, catalog, store, api, http, key, allow_nc, progress, max_pages)


def _run(
    query: str, provider: str, cls: str, limit: int, catalog: Catalog, store: MediaStore, api: Any, http: PoliteSession,
    key: str, allow_nc: bool, progress: bool, max_pages: int,
) -> SearchReport:
    """The query's run, with its state held under the query's lock."""
    st: dict[str, Any] = {"cursor": None, "exhausted": False, "queue": [], "retry": [], **catalog.get_state(key, {})}
    st.pop("added", None)  # catalogs from before the count moved to the records
    st["queue"] = st["retry"] + st["queue"]  # last run's transient failures first
    st["retry"] = []
    added = catalog.count_meta(provider, "search", key)
    report = SearchReport(provider=provider, query=query, limit=limit)
    bar = tqdm(total=limit, initial=min(added, limit), desc=f"{provider} {query}", unit="img", disable=not progress)

    def handle(res: SearchResult) -> Outcome:
        name = res.image_url
        ok, why = licenses.collectable(res.license, allow_nc)
        if not ok:
            said = f" ({res.license_text})" if res.license_text else ""
            return Outcome(name, "skipped", reason=f"licence {res.license or '(none)'}{said}: {why}", anomaly_class=cls)
        if not _raster(res.mime):
            return Outcome(name, "skipped", reason=f"{res.mime} is not a raster image", anomaly_class=cls)
        seen = catalog.url_seen(provider, name)
        if seen is not None:
            if seen["sample_id"]:
                return Outcome(name, "existing", seen["sample_id"], anomaly_class=cls)
            return Outcome(name, "skipped", reason=f"tried before: {seen['reason'] or seen['outcome']}", anomaly_class=cls)
        try:
            data = http.get_image(name)
        except FetchError as exc:
            if exc.transient:
                st["retry"].append(res.to_dict())
                report.retry_later.append(name)
            else:
                catalog.mark_url(provider, name, "bad", reason=exc.reason)
            return Outcome(name, "bad", reason=exc.reason, anomaly_class=cls)
        item = Item(
            image=data,
            name=name,
            source=taxonomy.ONLINE_SEARCH,
            origin=provider,
            anomaly_class=cls,
            origin_label=query,
            origin_ref=name,
            license=res.license,
            attribution=res.attribution,
            meta={
                "creator": res.creator,
                "creator_url": res.creator_url,
                "landing_url": res.landing_url,
                "license_url": res.license_url,
                "provider": res.upstream or provider,
                "title": res.title,
                "query": query,
                "search_id": res.id,
                "search": key,
            },
        )
        try:
            with catalog.transaction():
                out = ingest_one(item, catalog, store)
                catalog.mark_url(provider, name, out.status, sample_id=out.sample_id)
        except BadItemError as exc:
            catalog.mark_url(provider, name, "bad", reason=exc.reason)
            return Outcome(name, "bad", reason=exc.reason, anomaly_class=cls)
        return out

    try:
        while added < limit:
            if st["queue"]:
                res = SearchResult(**st["queue"].pop(0))
                out = handle(res)
                report.add(out)
                if out.status == "added":
                    added += 1
                    bar.update(1)
                catalog.set_state(key, st)
                continue
            if st["exhausted"]:
                break
            if report.pages >= max_pages:
                report.page_budget_hit = True
                break
            try:
                page = api.page(query, st["cursor"], allow_nc)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{provider}: unexpected answer from {getattr(api, 'endpoint', provider)} ({type(exc).__name__}: {exc})") from None
            report.pages += 1
            for name, reason in page.bad:
                report.add(Outcome(name, "bad", reason=reason, anomaly_class=cls))
            st["queue"] = [r.to_dict() for r in page.results]
            st["cursor"], st["exhausted"] = page.next_cursor, page.next_cursor is None
            catalog.set_state(key, st)
    finally:
        bar.close()
        catalog.set_state(key, st)
        report.added_total, report.exhausted, report.requests = added, st["exhausted"] and not st["queue"], http.requests_made
    return report
