"""Openverse (api.openverse.org): openly licensed images indexed from Flickr, Wikimedia and more.

Request: `GET /v1/images/?q=...&page=N&page_size=20&license=by,by-sa,cc0,pdm&mature=false`.
Answer: `{"result_count", "page_count", "page_size", "page", "results": [{"id", "title",
"url", "foreign_landing_url", "creator", "creator_url", "license", "license_version",
"license_url", "provider", "source", "attribution", "filetype", "width", "height", ...}]}`.
Anonymous clients get at most 20 per page; a token (OPENVERSE_TOKEN, sent as
`Authorization: Bearer`) allows more, so pages are then 50.

`attribution` is missing from answers of older API versions and of mirrors; CC BY
requires one, so it is then built from title, creator, licence and landing page, the
way the Commons and Flickr providers build theirs. A `page_count` that is not a number
is reported (the page's results still count) and paging goes on while pages have results.
"""

from __future__ import annotations

from typing import Any

from daad.core import licenses
from daad.collectors.search.base import BadResult, Page, SearchResult, attribution_line, id_field, numbered_page, parse_each, text_field, url_field
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
        if not isinstance(data, dict) or not isinstance(data.get("results", []), list):
            raise ValueError(f"{self.endpoint}: page {page} is not an Openverse answer (no results list)")
        results, bad = parse_each(data.get("results", []), self._result, lambda r, i: _name(r, i, page))
        return numbered_page(results, bad, data, "page_count", page, "openverse")

    def _result(self, r: dict) -> SearchResult | None:
        image_url = url_field(r, "url")
        if not image_url:
            return None
        raw_license, version = r.get("license"), r.get("license_version")
        if raw_license is not None and not isinstance(raw_license, str):
            raise BadResult(f"field 'license' is {type(raw_license).__name__} {raw_license!r:.40}, expected a string")
        if version is not None and not isinstance(version, (str, int, float)):
            raise BadResult(f"field 'license_version' is {type(version).__name__}, expected a string")
        lic = licenses.normalize(raw_license, str(version) if version is not None else None)
        title, creator, landing = text_field(r, "title"), text_field(r, "creator"), url_field(r, "foreign_landing_url")
        upstream = text_field(r, "source") or text_field(r, "provider")
        filetype = text_field(r, "filetype")
        return SearchResult(
            provider=self.name,
            id=id_field(r, "id"),
            image_url=image_url,
            license=lic,
            license_url=text_field(r, "license_url"),
            title=title,
            creator=creator,
            creator_url=text_field(r, "creator_url"),
            landing_url=landing,
            attribution=text_field(r, "attribution") or attribution_line(title, creator, lic, landing, f"Openverse ({upstream})" if upstream else "Openverse"),
            upstream=upstream,
            mime=f"image/{filetype}" if filetype else "",
            license_text=f"{raw_license} {version or ''}".strip() if lic == licenses.UNKNOWN else "",
        )


def _name(r: object, i: int, page: int) -> str:
    rid = r.get("id") if isinstance(r, dict) else None
    return f"openverse result {rid if isinstance(rid, (str, int)) else '#' + str(i + 1)} on page {page}"
