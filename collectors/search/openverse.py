"""Openverse (api.openverse.org): openly licensed images indexed from Flickr, Wikimedia and more.

Request: `GET /v1/images/?q=...&page=N&page_size=20&license=by,by-sa,cc0,pdm&mature=false`.
Answer: `{"result_count", "page_count", "page_size", "page", "results": [{"id", "title",
"url", "foreign_landing_url", "creator", "creator_url", "license", "license_version",
"license_url", "provider", "source", "attribution", "filetype", "width", "height", ...}]}`.
Anonymous clients get at most 20 per page; a token (OPENVERSE_TOKEN, sent as
`Authorization: Bearer`) allows more, so pages are then 50.
"""

from __future__ import annotations

from typing import Any

from daad.core import licenses
from daad.collectors.search.base import Page, SearchResult
from daad.collectors.search.http import PoliteSession

DEFAULT_ENDPOINT = "https://api.openverse.org/v1/images/"
FREE = ("by", "by-sa", "cc0", "pdm")
NONCOMMERCIAL = ("by-nc", "by-nc-sa")


class Openverse:
    name = "openverse"

    def __init__(self, http: PoliteSession, endpoint: str | None = None, token: str = ""):
        self.http, self.endpoint, self._token = http, endpoint or DEFAULT_ENDPOINT, token

    def page(self, query: str, cursor: Any, allow_nc: bool) -> Page:
        page = int(cursor or 1)
        params = {
            "q": query,
            "page": page,
            "page_size": 50 if self._token else 20,
            "license": ",".join(FREE + (NONCOMMERCIAL if allow_nc else ())),
            "mature": "false",
        }
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        data = self.http.get_json(self.endpoint, params=params, headers=headers)
        results = [self._result(r) for r in data.get("results", []) if r.get("url")]
        more = results and page < int(data.get("page_count") or 0)
        return Page(results, page + 1 if more else None)

    def _result(self, r: dict) -> SearchResult:
        return SearchResult(
            provider=self.name,
            id=str(r.get("id", "")),
            image_url=r["url"],
            license=licenses.normalize(r.get("license", ""), r.get("license_version")),
            license_url=r.get("license_url") or "",
            title=r.get("title") or "",
            creator=r.get("creator") or "",
            creator_url=r.get("creator_url") or "",
            landing_url=r.get("foreign_landing_url") or "",
            attribution=r.get("attribution") or "",
            upstream=r.get("source") or r.get("provider") or "",
            mime=f"image/{r['filetype']}" if r.get("filetype") else "",
        )
