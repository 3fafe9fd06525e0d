"""Wikimedia Commons through the MediaWiki Action API (no key; contact details in the User-Agent).

Request: `action=query&generator=search&gsrsearch=<query> filetype:bitmap&gsrnamespace=6
&prop=imageinfo&iiprop=url|size|mime|extmetadata&iiurlwidth=2048&formatversion=2`, and
the answer's `continue` object is sent back to get the next page. Each page carries
`imageinfo[0]` with `url`, `thumburl` (at most 2048 px wide, so 50 MP scans do not
hit the size cap), `descriptionurl`, `mime` and `extmetadata` (`LicenseShortName`,
`LicenseUrl`, `Artist` as HTML, `ObjectName`, ...). The licence id is taken from
`LicenseUrl` when present (it is exact), else from `LicenseShortName`.
"""

from __future__ import annotations

from typing import Any

from daad.core import licenses
from daad.collectors.search.base import Page, SearchResult, attribution_line, plain_text
from daad.collectors.search.http import PoliteSession

DEFAULT_ENDPOINT = "https://commons.wikimedia.org/w/api.php"
THUMB_WIDTH = 2048


class Wikimedia:
    name = "wikimedia"

    def __init__(self, http: PoliteSession, endpoint: str | None = None):
        self.http, self.endpoint = http, endpoint or DEFAULT_ENDPOINT

    def page(self, query: str, cursor: Any, allow_nc: bool) -> Page:
        params: dict[str, Any] = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "generator": "search",
            "gsrsearch": f"{query} filetype:bitmap",
            "gsrnamespace": "6",
            "gsrlimit": "20",
            "prop": "imageinfo",
            "iiprop": "url|size|mime|extmetadata",
            "iiurlwidth": str(THUMB_WIDTH),
            "iiextmetadatafilter": "LicenseShortName|LicenseUrl|License|Artist|ObjectName|Credit",
        }
        if cursor:
            params.update(cursor)
        else:
            params["continue"] = ""
        data = self.http.get_json(self.endpoint, params=params)
        if "error" in data:
            raise ValueError(f"{self.endpoint}: MediaWiki error {data['error'].get('code')}: {data['error'].get('info')}")
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1 answers key pages by id
            pages = list(pages.values())
        pages = sorted(pages, key=lambda p: p.get("index", 0))
        results = [r for r in (self._result(p) for p in pages) if r is not None]
        return Page(results, data.get("continue") or None)

    def _result(self, p: dict) -> SearchResult | None:
        infos = p.get("imageinfo") or []
        if not infos:  # its imageinfo comes with a later continuation
            return None
        ii = infos[0]
        meta = {k: plain_text(str(v.get("value", ""))) for k, v in (ii.get("extmetadata") or {}).items()}
        lic = licenses.normalize(meta.get("LicenseUrl", ""))
        if not licenses.info(lic).redistributable:
            lic = licenses.normalize(meta.get("LicenseShortName", "")) or lic
        title = meta.get("ObjectName") or p.get("title", "").removeprefix("File:").rsplit(".", 1)[0]
        creator = meta.get("Artist", "")
        landing = ii.get("descriptionurl", "")
        return SearchResult(
            provider=self.name,
            id=str(p.get("pageid", "")),
            image_url=ii.get("thumburl") or ii.get("url", ""),
            license=lic,
            license_url=meta.get("LicenseUrl", ""),
            title=title,
            creator=creator,
            landing_url=landing,
            attribution=attribution_line(title, creator, meta.get("LicenseShortName") or lic, landing, "Wikimedia Commons"),
            upstream="wikimedia",
            mime=ii.get("mime", ""),
        )
