"""The images a web page shows, as candidate URLs: `og:image` first, then `<img>` and `srcset`.

Why a parser of our own (stdlib `html.parser`) and not a browser: the pages are other
people's and untrusted; nothing is executed, only attributes are read. Lazy-loading
sites put the real URL in `data-src`/`data-original`; of a `srcset` the widest candidate
is taken. Images whose declared width or height is below `min_side` (icons, logos,
spacers) are left out here; the rest are measured after download (`collect.py`).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

LAZY_ATTRS = ("data-src", "data-original", "data-lazy-src", "data-url", "src")
META_KEYS = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")


def _int(value: str | None) -> int | None:
    try:
        return int(float((value or "").strip().rstrip("px")))
    except ValueError:
        return None


def widest_srcset(srcset: str) -> str:
    """The candidate of a `srcset` with the largest width (`640w`) or density (`2x`) descriptor."""
    best, best_score = "", -1.0
    for part in srcset.split(","):
        bits = part.strip().split()
        if not bits:
            continue
        score = 1.0
        if len(bits) > 1 and bits[1][-1:] in ("w", "x"):
            try:
                score = float(bits[1][:-1]) * (1.0 if bits[1].endswith("w") else 1000.0)
            except ValueError:
                score = 1.0
        if score > best_score:
            best, best_score = bits[0], score
    return best


class _Collector(HTMLParser):
    def __init__(self, min_side: int):
        super().__init__(convert_charrefs=True)
        self.min_side = min_side
        self.base = ""
        self.meta: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and not self.base:
            self.base = a["href"]
        elif tag == "meta" and (a.get("property") or a.get("name") or "").lower() in META_KEYS and a.get("content"):
            self.meta.append(a["content"])
        elif tag == "link" and a.get("rel", "").lower() == "image_src" and a.get("href"):
            self.meta.append(a["href"])
        elif tag in ("img", "source"):
            w, h = _int(a.get("width")), _int(a.get("height"))
            if (w is not None and w < self.min_side) or (h is not None and h < self.min_side):
                return
            url = widest_srcset(a.get("data-srcset") or a.get("srcset") or "")
            if not url:
                url = next((a[k] for k in LAZY_ATTRS if a.get(k) and not a[k].startswith("data:")), "")
            if url:
                self.imgs.append(url)


def page_images(html: str, page_url: str, min_side: int = 100) -> list[str]:
    """Absolute http(s) URLs of the page's candidate images, distinct, in page order (og:image first)."""
    p = _Collector(min_side)
    try:
        p.feed(html)
        p.close()
    except Exception:  # html.parser is lenient; a pathological page yields what was read so far
        pass
    base = urljoin(page_url, p.base) if p.base else page_url
    out: list[str] = []
    for raw in p.meta + p.imgs:
        url = urljoin(base, raw.strip())
        if urlsplit(url).scheme in ("http", "https") and not urlsplit(url).path.lower().endswith(".svg") and url not in out:
            out.append(url)
    return out


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def decode_html(body: bytes, content_type: str = "") -> str:
    """A page's text: the header's charset, else a `<meta charset>` in the first 2 KB, else UTF-8.

    Undecodable bytes are replaced: only attribute values (URLs, mostly ASCII) are read.
    Many of the listed pages are Chinese sites that still serve GBK.
    """
    m = _CHARSET.search(content_type) or _CHARSET.search(body[:2048].decode("ascii", "replace"))
    try:
        return body.decode(m.group(1) if m else "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")
