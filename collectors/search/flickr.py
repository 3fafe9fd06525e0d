"""Flickr through its REST API (an API key is required: FLICKR_API_KEY or search.yaml).

Flickr names licences by number. Rather than trusting a table copied into this file,
the provider asks `flickr.photos.licenses.getInfo` once per run (`{"licenses": {"license":
[{"id", "name", "url"}]}}`), maps each licence's URL through `daad.core.licenses.normalize`,
and searches only the ids whose licence DAAD may collect:
`flickr.photos.search&text=...&license=4,5,9,10,...&extras=license,owner_name,url_o,url_l
&per_page=100&page=N&content_type=1&safe_search=1`, answered by `{"photos": {"page",
"pages", "perpage", "total", "photo": [{"id", "owner", "title", "license", "ownername",
"url_o", "url_l", ...}]}, "stat": "ok"}`. Licences without a creativecommons.org URL
("No known copyright restrictions", "United States Government Work") are not collected.
"""

from __future__ import annotations

from typing import Any

from daad.core import licenses
from daad.collectors.search.base import BadResult, Page, SearchResult, attribution_line, id_field, numbered_page, parse_each, text_field, url_field
from daad.collectors.search.http import PoliteSession

DEFAULT_ENDPOINT = "https://api.flickr.com/services/rest/"
SIZES = ("url_o", "url_l")  # the original when the owner allows it, else 1024 px


class Flickr:
    name = "flickr"

    def __init__(self, http: PoliteSession, endpoint: str | None = None, api_key: str = ""):
        if not api_key:
            raise ValueError("Flickr needs an API key: set FLICKR_API_KEY or flickr: api_key: in DAAD_HOME/search.yaml")
        self.http, self.endpoint, self._key = http, endpoint or DEFAULT_ENDPOINT, api_key
        self._licenses: dict[str, tuple[str, str]] | None = None

    def _call(self, method: str, **params: Any) -> dict:
        data = self.http.get_json(self.endpoint, params={"method": method, "api_key": self._key, "format": "json", "nojsoncallback": "1", **params})
        if data.get("stat") != "ok":
            raise ValueError(f"{self.endpoint}: Flickr error {data.get('code')}: {self.http.redact(str(data.get('message')))}")
        return data

    def licenses(self) -> dict[str, tuple[str, str]]:
        """Flickr licence number -> (normalised id, licence URL), asked once per run."""
        if self._licenses is None:
            rows = self._call("flickr.photos.licenses.getInfo")["licenses"]["license"]
            self._licenses = {str(r["id"]): (licenses.normalize(r.get("url") or r.get("name", "")), r.get("url", "")) for r in rows}
        return self._licenses

    def page(self, query: str, cursor: Any, allow_nc: bool) -> Page:
        page = int(cursor or 1)
        wanted = sorted((n for n, (lic, _) in self.licenses().items() if licenses.collectable(lic, allow_nc)[0]), key=int)
        if not wanted:
            return Page([], None)
        data = self._call(
            "flickr.photos.search",
            text=query,
            license=",".join(wanted),
            extras="license,owner_name," + ",".join(SIZES),
            per_page="100",
            page=str(page),
            content_type="1",
            safe_search="1",
            media="photos",
            sort="relevance",
        )["photos"]
        photos = data.get("photo", [])
        if not isinstance(photos, list):
            raise ValueError(f"{self.endpoint}: 'photos.photo' is {type(photos).__name__}, expected a list")
        results, bad = parse_each(photos, self._result, lambda p, i: f"flickr photo {p.get('id') if isinstance(p, dict) else '#' + str(i + 1)} on page {page}")
        return numbered_page(results, bad, data, "pages", page, "flickr")

    def _result(self, p: dict) -> SearchResult | None:
        url = next((u for u in (url_field(p, s) for s in SIZES) if u), "")
        if not url:
            return None
        number = p.get("license", "")
        if not isinstance(number, (str, int)) or isinstance(number, bool):
            raise BadResult(f"field 'license' is {type(number).__name__} {number!r:.40}, expected a licence number")
        lic, lic_url = self.licenses().get(str(number), (licenses.UNKNOWN, ""))
        owner, pid = text_field(p, "owner"), id_field(p, "id")
        landing = f"https://www.flickr.com/photos/{owner}/{pid}"
        creator = text_field(p, "ownername") or owner
        title = text_field(p, "title")
        return SearchResult(
            provider=self.name,
            id=pid,
            image_url=url,
            license=lic,
            license_url=lic_url,
            title=title,
            creator=creator,
            creator_url=f"https://www.flickr.com/photos/{owner}" if owner else "",
            landing_url=landing,
            attribution=attribution_line(title, creator, lic, landing, "Flickr"),
            upstream="flickr",
            license_text=f"Flickr licence {number}" if lic == licenses.UNKNOWN else "",
        )
