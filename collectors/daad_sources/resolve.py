"""What one listed source is, and which image URLs it holds, without any request.

The kinds, tried in this order (the issue's and the spreadsheet's):

- `data`: a `data:image/...;base64,` URI (19 cells; one was cut by Excel's 32,767-character
  cell limit and cannot decode).
- `search`: a search engine's detail or redirect URL whose query holds the image's own
  URL: Bing `mediaurl` (a Bing thumbnail URL whose `riu` is the original), `cdnurl`;
  Baidu `objurl`; Google `imgurl`; Baidu image search `image`. Values are decoded as often
  as they are nested (`riu=http%253a%252f%252f...` inside `mediaurl=`), and the candidates
  are ordered innermost first: the original image, then the engine's cached copies.
- `direct`: a URL that is an image itself (an image file suffix in its path, or an image
  CDN path: Bing `/th`, Google `encrypted-tbn*/images`, Baidu `/it/u=`).
- `page`: any other http(s) URL, and a search engine's redirect (`google.com/url?url=`)
  to one: the page is fetched and its images taken (`page_images.py`).
- `title`: only a title (and no hyperlink): unresolvable, reported as such.

A cell's text wins over its hyperlink; when both are URLs and differ, the hyperlink's
image candidates are tried after the text's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from .sheet import Source

IMAGE_KEYS = ("riu", "mediaurl", "objurl", "imgurl", "cdnurl", "image", "picurl", "img_url", "imgsrc")
REDIRECT_KEYS = ("url", "u", "q", "target")
SEARCH_HOSTS = ("bing.com", "bing.net", "baidu.com", "google.com", "google.cn", "so.com", "sogou.com")
_IMAGE_SUFFIX = re.compile(r"\.(jpe?g|png|gif|webp|bmp|tiff?|jfif)(?:$|[^a-z0-9])", re.I)
KINDS = ("direct", "search", "data", "page", "title")


@dataclass
class Resolution:
    kind: str  # one of KINDS
    images: list[str] = field(default_factory=list)  # candidate image URLs (or one data: URI), best first
    page: str = ""  # for kind "page": the page whose images are taken
    why: str = ""  # for kind "title": why it cannot be resolved


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _decoded(value: str) -> str:
    """Unquote until the value is a plain URL (nested percent-encoding), or return it as is."""
    for _ in range(4):
        if _is_url(value) and "%" not in urlsplit(value).netloc and not value.lower().startswith(("http%3a", "https%3a")):
            return value
        nxt = unquote(value)
        if nxt == value:
            break
        value = nxt
    return value


def embedded_images(url: str, depth: int = 0) -> list[str]:
    """Image URLs held in `url`'s query (recursively), innermost first."""
    if depth > 3:
        return []
    out: list[str] = []
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    lower = {k.lower(): v for k, v in query.items()}
    for key in IMAGE_KEYS:
        value = _decoded(lower.get(key, ""))
        if _is_url(value):
            for inner in embedded_images(value, depth + 1) + [value]:
                if inner not in out:
                    out.append(inner)
    return out


def is_search_host(host: str) -> bool:
    return any(host == h or host.endswith("." + h) for h in SEARCH_HOSTS)


def looks_like_image(url: str) -> bool:
    parts = urlsplit(url)
    host, path = (parts.hostname or "").lower(), parts.path
    if _IMAGE_SUFFIX.search(path):
        return True
    if host.endswith("gstatic.com") and path.startswith("/images"):
        return True
    if host.endswith("bing.net") and path.startswith("/th"):
        return True
    return host.endswith("baidu.com") and path.startswith("/it/u=") or (host.endswith("baidu.com") and path == "/it/u")


def _resolve_url(url: str) -> Resolution:
    host = (urlsplit(url).hostname or "").lower()
    inner = embedded_images(url)
    if looks_like_image(url):
        return Resolution("direct", [u for u in inner if u != url] + [url] if inner else [url])
    if inner:
        return Resolution("search", inner)
    if is_search_host(host):
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query)}
        for key in REDIRECT_KEYS:
            target = _decoded(query.get(key, ""))
            if _is_url(target) and not is_search_host((urlsplit(target).hostname or "").lower()):
                res = _resolve_url(target)
                return Resolution("search", res.images) if res.images else Resolution("page", page=res.page)
    return Resolution("page", page=url)


def resolve(src: Source) -> Resolution:
    """The kind of `src` and its candidate image URLs (or page)."""
    text, link = src.value, src.link
    if text.lower().startswith("data:"):
        return Resolution("data", [text])
    primary = text if _is_url(text) else link if _is_url(link) else ""
    if not primary:
        return Resolution("title", why=f"only a title ({text[:60]!r}), no URL or hyperlink")
    res = _resolve_url(primary)
    if primary == text and _is_url(link) and link != text and res.kind != "page":
        alt = _resolve_url(link)
        res.images += [u for u in alt.images if u not in res.images]
    return res
