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
from daad.collectors.search.base import Page, SearchResult, attribution_line, id_field, parse_each, plain_text, text_field, url_field
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
        if not isinstance(pages, list):
            raise ValueError(f"{self.endpoint}: 'query.pages' is {type(pages).__name__}, expected a list")
        pages = sorted(pages, key=lambda p: p.get("index", 0) if isinstance(p, dict) and isinstance(p.get("index"), int) else 0)
        results, bad = parse_each(pages, self._result, _name)
        cont = data.get("continue") or None
        if cont is not None and not isinstance(cont, dict):
            bad.append(("wikimedia answer", f"field 'continue' is {type(cont).__name__}, expected an object; no further pages"))
            cont = None
        return Page(results, cont, bad)

    def _result(self, p: dict) -> SearchResult | None:
        infos = p.get("imageinfo") or []
        if not infos:  # its imageinfo comes with a later continuation
            return None
        ii = infos[0]
        ext = ii.get("extmetadata") or {}
        meta = {k: plain_text(v["value"] if isinstance(v.get("value"), str) else "") for k, v in ext.items() if isinstance(v, dict)}
        lic = licenses.normalize(meta.get("LicenseUrl", ""))
        if not licenses.info(lic).redistributable:
            lic = licenses.normalize(meta.get("LicenseShortName", "")) or lic
        said = meta.get("LicenseShortName") or meta.get("LicenseUrl", "")
        title = meta.get("ObjectName") or text_field(p, "title").removeprefix("File:").rsplit(".", 1)[0]
        creator = meta.get("Artist", "")
        landing = url_field(ii, "descriptionurl")
        return SearchResult(
            provider=self.name,
            id=id_field(p, "pageid"),
            image_url=url_field(ii, "thumburl") or url_field(ii, "url", required=True),
            license=lic,
            license_url=meta.get("LicenseUrl", ""),
            title=title,
            creator=creator,
            landing_url=landing,
            attribution=attribution_line(title, creator, meta.get("LicenseShortName") or lic, landing, "Wikimedia Commons"),
            upstream="wikimedia",
            mime=text_field(ii, "mime"),
            license_text=said if lic == licenses.UNKNOWN else "",
        )


def _name(p: object, i: int) -> str:
    title = p.get("title") if isinstance(p, dict) else None
    return f"wikimedia result {title if isinstance(title, str) else '#' + str(i + 1)}"
