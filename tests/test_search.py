"""Search collectors against a real HTTP server on 127.0.0.1 started by the test.

The server answers like Openverse, MediaWiki (Wikimedia Commons) and Flickr (JSON in
their documented response shapes) and serves real image bytes from ../shared/data, plus
the hostile cases: a 429 with Retry-After, a 500 once, a truncated image, an HTML page,
a redirect to another host that resolves to loopback, an oversized body without
Content-Length. The tests assert what lands, what is skipped and why, and that a re-run
sends no request and adds nothing.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from daad.collectors.search.collect import collect_search, state_key
from daad.collectors.search.credentials import Credentials, user_agent
from daad.collectors.search.http import FetchError, HttpConfig, PoliteSession

FLICKR_KEY = "flickr-secret-key-0123456789"
OPENVERSE_TOKEN = "openverse-secret-token-abcdef"

FLICKR_LICENSES = [  # as flickr.photos.licenses.getInfo answers (ids -> names and URLs)
    {"id": 0, "name": "All Rights Reserved", "url": ""},
    {"id": 1, "name": "Attribution-NonCommercial-ShareAlike License", "url": "https://creativecommons.org/licenses/by-nc-sa/2.0/"},
    {"id": 4, "name": "Attribution License", "url": "https://creativecommons.org/licenses/by/2.0/"},
    {"id": 5, "name": "Attribution-ShareAlike License", "url": "https://creativecommons.org/licenses/by-sa/2.0/"},
    {"id": 6, "name": "Attribution-NoDerivs License", "url": "https://creativecommons.org/licenses/by-nd/2.0/"},
    {"id": 7, "name": "No known copyright restrictions", "url": "https://www.flickr.com/commons/usage/"},
    {"id": 9, "name": "Public Domain Dedication (CC0)", "url": "https://creativecommons.org/publicdomain/zero/1.0/"},
    {"id": 10, "name": "Public Domain Mark", "url": "https://creativecommons.org/publicdomain/mark/1.0/"},
]


class SearchServer:
    """Start with `with SearchServer(images) as srv:`; `srv.base` is http://127.0.0.1:PORT."""

    def __init__(self, images: dict[str, bytes], max_body: int = 0):
        self.images = images  # name -> bytes served at /img/<name>
        self.log: list[tuple[float, str, dict]] = []  # (time, path, headers) of every request
        self.failed_once: set[str] = set()
        self.openverse_pages: list[list[dict]] = []
        self.wikimedia_pages: list[list[dict]] = []
        self.flickr_pages: list[list[dict]] = []
        self.api_down = 0  # the next N API requests answer 503
        self.openverse_page_count: object = None  # what Openverse answers claim instead of the real page count
        self.endless_nd: bool = False  # Openverse: every page has one no-derivatives result, for ever
        self.throttle: list[bytes] = []  # the next API requests answer 429 with these bodies (no Retry-After)
        self.image_delay = 0.0  # seconds before each image answer
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "SearchServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def hits(self, prefix: str) -> list[tuple[float, str, dict]]:
        return [h for h in self.log if h[1].startswith(prefix)]

    # -- the handler ----------------------------------------------------------------------
    def _handler(self):
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None, length: bool = True) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _json(self, obj: object) -> None:
                self._send(200, json.dumps(obj).encode(), "application/json")

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                srv.log.append((time.monotonic(), self.path, dict(self.headers)))
                if srv.api_down and not parts.path.startswith("/img/"):
                    srv.api_down -= 1
                    return self._send(503, b"maintenance", "text/plain")
                if srv.throttle and not parts.path.startswith(("/img/", "/trickle")):
                    return self._send(429, srv.throttle.pop(0), "application/json")
                if parts.path.startswith("/trickle"):
                    return self._trickle(parts.path)
                if parts.path == "/v1/images/":
                    return self._openverse(q)
                if parts.path == "/w/api.php":
                    return self._wikimedia(q)
                if parts.path == "/services/rest/":
                    return self._flickr(q)
                if parts.path.startswith("/img/"):
                    return self._image(parts.path[len("/img/"):])
                self._send(404, b"not found", "text/plain")

            def _openverse(self, q: dict) -> None:
                page, size = int(q.get("page", 1)), int(q.get("page_size", 20))
                pages = srv.openverse_pages
                results = pages[page - 1] if page <= len(pages) else []
                count = len(pages) if srv.openverse_page_count is None else srv.openverse_page_count
                if srv.endless_nd:
                    results, count = [ov(f"nd{page}.jpg", "by-nd", "4.0", srv.base)], 1e9
                self._json({"result_count": sum(map(len, pages)), "page_count": count, "page_size": size, "page": page, "results": results})

            def _trickle(self, path: str) -> None:
                """/trickle-head/<img>: headers one byte per 50 ms; /trickle-body/<img>: the body so.
                At most 80 bytes are trickled, then the rest comes at once: without a deadline
                the request succeeds after 4 s, which is what the tests tell apart."""
                data = srv.images["good1.jpg"]
                head = f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\nX-Pad: {'x' * 80}\r\n\r\n".encode()
                slow_head = path.startswith("/trickle-head/")
                payload = head + data
                start = 0 if slow_head else len(head)
                try:
                    self.wfile.write(payload[:start])
                    self.wfile.flush()
                    for i in range(start, start + 80):
                        self.wfile.write(payload[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.05)
                    self.wfile.write(payload[start + 80:])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    srv.log.append((time.monotonic(), "cut off: " + path, {}))
                self.close_connection = True

            def _wikimedia(self, q: dict) -> None:
                offset = int(q.get("gsroffset", 0) or 0)
                idx = offset // 20
                pages = srv.wikimedia_pages
                body: dict = {"batchcomplete": True, "query": {"pages": pages[idx] if idx < len(pages) else []}}
                if idx + 1 < len(pages):
                    body["continue"] = {"gsroffset": offset + 20, "continue": "gsroffset||"}
                self._json(body)

            def _flickr(self, q: dict) -> None:
                if q.get("api_key") != FLICKR_KEY:
                    return self._json({"stat": "fail", "code": 100, "message": "Invalid API Key (Key has invalid format)"})
                if q.get("method") == "flickr.photos.licenses.getInfo":
                    return self._json({"licenses": {"license": FLICKR_LICENSES}, "stat": "ok"})
                allowed = set(q.get("license", "").split(","))
                page = int(q.get("page", 1))
                pages = srv.flickr_pages
                photos = [p for p in (pages[page - 1] if page <= len(pages) else []) if str(p["license"]) in allowed]
                total = sum(map(len, pages))
                self._json({"photos": {"page": page, "pages": len(pages), "perpage": 100, "total": total, "photo": photos}, "stat": "ok"})

            def _image(self, name: str) -> None:
                time.sleep(srv.image_delay)
                if name.startswith("ratelimited-") and name not in srv.failed_once:
                    srv.failed_once.add(name)
                    return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                if name.startswith("flaky-") and name not in srv.failed_once:
                    srv.failed_once.add(name)
                    return self._send(500, b"oops", "text/plain")
                if name == "page.html":
                    return self._send(200, b"<html><body>Image not found</body></html>", "text/html; charset=utf-8")
                if name == "redirect-private.png":
                    return self._send(302, b"", "text/plain", {"Location": f"http://localhost:{srv.port}/img/secret.png"})
                if name == "huge.png":  # no Content-Length: only a streaming cap stops it
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()
                    try:
                        for _ in range(64):
                            self.wfile.write(b"\0" * 65536)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                data = srv.images.get(name.split("-", 1)[-1] if name.startswith(("ratelimited-", "flaky-")) else name)
                if data is None:
                    return self._send(404, b"no such image", "text/plain")
                ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
                self._send(200, data, ctype)

        return Handler


# -- fixtures -------------------------------------------------------------------------------


def _images(shared_data: Path) -> dict[str, bytes]:
    """Real JPEGs from Magnetic Tile (small, distinct) named good1.jpg ... good6.jpg."""
    files = sorted((shared_data / "magnetic_tile").glob("MT_*/Imgs/*.jpg"))[:6]
    assert len(files) == 6
    imgs = {f"good{i + 1}.jpg": f.read_bytes() for i, f in enumerate(files)}
    imgs["copy-of-good1.jpg"] = imgs["good1.jpg"]
    imgs["truncated.jpg"] = imgs["good2.jpg"][: len(imgs["good2.jpg"]) // 2]
    imgs["secret.png"] = (shared_data / "magnetic_tile" / "MT_Crack" / "Imgs").glob("*.jpg").__next__().read_bytes()
    return imgs


@pytest.fixture
def server(shared_data: Path):
    with SearchServer(_images(shared_data)) as srv:
        yield srv


def fast(**kw) -> HttpConfig:
    """Short waits so tests stay fast; the 429 still waits its real Retry-After (1 s)."""
    return HttpConfig(user_agent="daad-test (tests@example.org)", backoff=0.01, rate=0, max_bytes=1_000_000, timeout=5, **kw)


def ov(name: str, lic: str, ver: str, base: str, **extra) -> dict:
    """One Openverse /v1/images/ result."""
    return {
        "id": f"id-{name}", "title": f"Scratch {name}", "indexed_on": "2024-01-01T00:00:00",
        "foreign_landing_url": f"https://www.flickr.com/photos/someone/{name}", "url": f"{base}/img/{name}",
        "creator": "Jane Doe", "creator_url": "https://www.flickr.com/photos/someone", "license": lic,
        "license_version": ver, "license_url": f"https://creativecommons.org/licenses/{lic}/{ver}/",
        "provider": "flickr", "source": "flickr", "category": "photograph", "filesize": None, "filetype": "jpg",
        "tags": [], "attribution": f'"Scratch {name}" by Jane Doe is licensed under CC {lic.upper()} {ver}.',
        "fields_matched": ["title"], "mature": False, "height": 200, "width": 200, "thumbnail": "",
        "detail_url": "", "related_url": "", "unstable__sensitivity": [], **extra,
    }


# -- Openverse: the whole hostile session ----------------------------------------------------


def test_openverse_collects_licensed_images_skips_the_rest_and_rerun_adds_nothing(server, catalog, store):
    b = server.base
    server.openverse_pages = [
        [
            ov("good1.jpg", "by", "2.0", b),
            ov("good2.jpg", "cc0", "1.0", b),
            ov("nd.jpg", "by-nd", "4.0", b),
            ov("ratelimited-good3.jpg", "by-sa", "4.0", b),
            ov("flaky-good4.jpg", "pdm", "1.0", b),
            ov("truncated.jpg", "by", "4.0", b),
            ov("page.html", "by", "4.0", b),
            ov("redirect-private.png", "by", "4.0", b),
            ov("huge.png", "by", "4.0", b),
            ov("copy-of-good1.jpg", "by", "4.0", b),
            ov("nc.jpg", "by-nc", "4.0", b),
            {**ov("ftp.jpg", "by", "4.0", b), "url": "file:///etc/passwd"},
        ],
        [ov("good5.jpg", "by-sa", "2.0", b)],
    ]
    report = collect_search("metal scratch", "openverse", "scratch", 50, catalog=catalog, store=store,
                            endpoint=f"{b}/v1/images/", http_config=fast(), credentials=Credentials(), progress=False)
    by_name = {o.name.rsplit("/", 1)[-1]: o for o in report.outcomes}
    assert {n for n, o in by_name.items() if o.status == "added"} == {"good1.jpg", "good2.jpg", "ratelimited-good3.jpg", "flaky-good4.jpg", "good5.jpg"}
    assert by_name["copy-of-good1.jpg"].status == "origin_added"  # same pixels: stored once, its URL kept as a second origin
    assert len(catalog.get(by_name["copy-of-good1.jpg"].sample_id).origins) == 2
    assert "no derivatives" in by_name["nd.jpg"].reason and by_name["nd.jpg"].status == "skipped"
    assert "non-commercial" in by_name["nc.jpg"].reason
    assert by_name["truncated.jpg"].status == "bad" and "decode" in by_name["truncated.jpg"].reason
    assert "text/html is not an image" in by_name["page.html"].reason
    assert "non-public address" in by_name["redirect-private.png"].reason and "localhost" in by_name["redirect-private.png"].reason
    assert "size cap" in by_name["huge.png"].reason
    ftp = next(o for o in report.bad if o.name == "openverse result id-ftp.jpg on page 1")
    assert "field 'url' is not a valid http(s) URL: 'file:///etc/passwd'" in ftp.reason
    assert not server.hits("/img/secret.png"), "the redirect target on a private host was contacted"
    assert not server.hits("/img/nd.jpg") and not server.hits("/img/nc.jpg"), "unlicensed images were downloaded"

    # 429: the retry came no sooner than Retry-After (1 s) asked; 500: retried once.
    rl = server.hits("/img/ratelimited-good3.jpg")
    assert len(rl) == 2 and rl[1][0] - rl[0][0] >= 0.95
    assert len(server.hits("/img/flaky-good4.jpg")) == 2

    recs = catalog.find(origin="openverse")
    assert len(recs) == 5
    r = next(r for r in recs if r.origin_ref.endswith("/good1.jpg"))
    assert (r.source, r.anomaly_class, r.mask_status, r.license, r.origin_label) == ("online_search", "scratch", "missing", "CC-BY-2.0", "metal scratch")
    assert r.attribution.startswith('"Scratch good1.jpg" by Jane Doe')
    assert r.meta["creator"] == "Jane Doe" and r.meta["landing_url"].endswith("/good1.jpg") and r.meta["provider"] == "flickr"
    assert {x.license for x in recs} == {"CC-BY-2.0", "CC0-1.0", "CC-BY-SA-4.0", "PDM-1.0", "CC-BY-SA-2.0"}
    assert store.image_path(r.id).is_file()
    assert report.exhausted and report.pages == 2

    # Re-run: nothing is asked of the server, nothing is added.
    before = len(server.log)
    again = collect_search("metal scratch", "openverse", "scratch", 50, catalog=catalog, store=store,
                           endpoint=f"{b}/v1/images/", http_config=fast(), credentials=Credentials(), progress=False)
    assert again.outcomes == [] and again.requests == 0 and len(server.log) == before
    assert len(catalog) == 5

    # The same URLs found by another query are never downloaded again.
    other = collect_search("steel scratch", "openverse", "scratch", 50, catalog=catalog, store=store,
                           endpoint=f"{b}/v1/images/", http_config=fast(), credentials=Credentials(), progress=False)
    assert other.count("added") == 0 and other.count("existing") == 6
    image_hits = [h for h in server.log[before:] if h[1].startswith("/img/")]
    assert image_hits == [], f"downloaded again: {[h[1] for h in image_hits]}"


def test_limit_stops_mid_page_and_a_larger_limit_resumes_without_refetching(server, catalog, store):
    b = server.base
    server.openverse_pages = [[ov(f"good{i}.jpg", "by", "4.0", b) for i in (1, 2, 3)], [ov("good4.jpg", "cc0", "1.0", b)]]
    kw: dict[str, Any] = dict(catalog=catalog, store=store, endpoint=f"{b}/v1/images/", http_config=fast(), credentials=Credentials(), progress=False)
    first = collect_search("crack", "openverse", "crack", 2, **kw)
    assert first.count("added") == 2 and not first.exhausted
    assert len(server.hits("/img/")) == 2
    st = catalog.get_state(state_key("openverse", "crack", False))
    assert catalog.count_meta("openverse", "search", state_key("openverse", "crack", False)) == 2
    assert len(st["queue"]) == 1 and st["cursor"] == 2
    same = collect_search("crack", "openverse", "crack", 2, **kw)
    assert same.outcomes == [] and same.requests == 0
    more = collect_search("crack", "openverse", "crack", 10, **kw)
    assert more.count("added") == 2 and more.exhausted
    assert len(server.hits("/v1/images/")) == 2  # page 1 once, page 2 once
    assert sorted(h[1] for h in server.hits("/img/")) == [f"/img/good{i}.jpg" for i in (1, 2, 3, 4)]
    assert len(catalog) == 4


def test_transient_failure_is_retried_on_the_next_run(server, catalog, store):
    b = server.base
    server.openverse_pages = [[ov("flaky-good1.jpg", "by", "4.0", b), ov("good2.jpg", "by", "4.0", b)]]
    kw: dict[str, Any] = dict(catalog=catalog, store=store, endpoint=f"{b}/v1/images/", credentials=Credentials(), progress=False)
    first = collect_search("hole", "openverse", "hole", 10, http_config=fast(retries=0), **kw)
    assert first.count("added") == 1 and first.retry_later == [f"{b}/img/flaky-good1.jpg"]
    assert "HTTP 500" in first.bad[0].reason
    second = collect_search("hole", "openverse", "hole", 10, http_config=fast(retries=0), **kw)
    assert second.count("added") == 1 and second.requests == 1
    assert len(catalog) == 2


def test_api_outage_stops_the_run_with_a_clear_error_and_the_next_run_resumes(server, daad_home):
    from daad.core.catalog import Catalog
    from daad.cli import main

    b = server.base
    server.openverse_pages = [[ov("good1.jpg", "by", "4.0", b)], [ov("good2.jpg", "by", "4.0", b)]]
    args = ["collect", "search", "abrasion", "--provider", "openverse", "--class", "abrasion", "--limit", "1", "--endpoint", f"{b}/v1/images/", "--rate", "0", "--backoff", "0.01", "--quiet"]
    env = {"DAAD_HOME": str(daad_home)}
    assert CliRunner().invoke(main, args, env=env).exit_code == 0
    server.api_down = 10  # more than the tries of one request (4 retries -> 5 tries)
    args[8] = "5"
    down = CliRunner().invoke(main, args, env=env)
    assert down.exit_code == 1 and "HTTP 503" in down.output and "run again to resume" in down.output
    server.api_down = 0
    up = CliRunner().invoke(main, args, env=env)
    assert up.exit_code == 0 and "2/5 added by this query so far (no more results)" in up.output, up.output
    assert len(Catalog(daad_home)) == 2
    assert [h[1].split("page=")[1][0] for h in server.hits("/v1/images/") if "503" not in h[1]][-1] == "2"


# -- Wikimedia Commons ------------------------------------------------------------------------


def wm(pageid: int, name: str, base: str, short: str, url: str = "", mime: str = "image/jpeg", artist: str = '<a href="//commons.wikimedia.org/wiki/User:Ann">Ann &amp; Bo</a>') -> dict:
    ext = {"ObjectName": {"value": name.rsplit(".", 1)[0], "source": "mediawiki-metadata"},
           "Artist": {"value": artist, "source": "commons-desc-page"},
           "LicenseShortName": {"value": short, "source": "commons-desc-page", "hidden": ""}}
    if url:
        ext["LicenseUrl"] = {"value": url, "source": "commons-desc-page", "hidden": ""}
    return {"pageid": pageid, "ns": 6, "title": f"File:{name}", "index": pageid, "imagerepository": "local",
            "imageinfo": [{"size": 1000, "width": 200, "height": 200, "thumburl": f"{base}/img/{name}", "thumbwidth": 200,
                           "thumbheight": 200, "url": f"{base}/img/{name}", "descriptionurl": f"https://commons.wikimedia.org/wiki/File:{name}",
                           "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={pageid}", "mime": mime, "extmetadata": ext}]}


def test_wikimedia_licences_from_extmetadata_continue_and_user_agent(server, catalog, store):
    b = server.base
    server.wikimedia_pages = [
        [wm(1, "good1.jpg", b, "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0"),
         wm(2, "good2.jpg", b, "Public domain"),
         wm(3, "good3.jpg", b, "GFDL", "https://www.gnu.org/copyleft/fdl.html"),
         wm(4, "drawing.svg", b, "CC0", "http://creativecommons.org/publicdomain/zero/1.0/deed.en", mime="image/svg+xml")],
        [wm(21, "good4.jpg", b, "CC BY 3.0 de", "https://creativecommons.org/licenses/by/3.0/de/deed.en")],
    ]
    cfg = fast()
    cfg.user_agent = user_agent("curator@example.org")
    report = collect_search("concrete crack", "wikimedia", "crack", 50, catalog=catalog, store=store,
                            endpoint=f"{b}/w/api.php", http_config=cfg, credentials=Credentials(), progress=False)
    assert report.count("added") == 3 and report.pages == 2
    reasons = {o.name.rsplit("/", 1)[-1]: o.reason for o in report.skipped}
    assert "GFDL" in reasons["good3.jpg"] and "svg" in reasons["drawing.svg"]
    lic = {r.origin_ref.rsplit("/", 1)[-1]: r for r in catalog.find(origin="wikimedia")}
    assert lic["good1.jpg"].license == "CC-BY-SA-4.0" and lic["good2.jpg"].license == "PDM-1.0" and lic["good4.jpg"].license == "CC-BY-3.0"
    assert lic["good1.jpg"].meta["creator"] == "Ann & Bo"  # HTML stripped
    assert "via Wikimedia Commons" in lic["good1.jpg"].attribution
    api_hits = server.hits("/w/api.php")
    assert all(h[2]["User-Agent"].startswith("daad/") and "curator@example.org" in h[2]["User-Agent"] for h in api_hits)
    assert "gsroffset=20" in api_hits[1][1]


# -- Flickr: keys stay secret ------------------------------------------------------------------


def fl(pid: str, lic: int, base: str, name: str) -> dict:
    return {"id": pid, "owner": "12345@N00", "secret": "abc", "server": "65535", "farm": 66, "title": f"rust {pid}",
            "ispublic": 1, "isfriend": 0, "isfamily": 0, "license": str(lic), "ownername": "Rusty", "url_l": f"{base}/img/{name}",
            "height_l": 200, "width_l": 200}


def test_flickr_cli_filters_licences_and_never_shows_the_key(server, daad_home, shared_data):
    b = server.base
    server.flickr_pages = [[fl("1", 4, b, "good1.jpg"), fl("2", 0, b, "good2.jpg"), fl("3", 1, b, "good3.jpg"),
                            fl("4", 9, b, "good4.jpg"), fl("5", 7, b, "good5.jpg"), fl("6", 6, b, "good6.jpg")]]
    from daad.cli import main

    env = {"DAAD_HOME": str(daad_home), "FLICKR_API_KEY": FLICKR_KEY}
    args = ["collect", "search", "rust stain", "--provider", "flickr", "--class", "stain", "--endpoint", f"{b}/services/rest/", "--rate", "0", "--quiet"]
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code == 0, res.output
    assert FLICKR_KEY not in res.output
    search_hits = [h for h in server.hits("/services/rest/") if "photos.search" in h[1]]
    assert "license=4%2C5%2C9%2C10" in search_hits[0][1]  # only collectable licence ids are asked for
    from daad.core.catalog import Catalog

    recs = Catalog(daad_home).find(origin="flickr")
    assert sorted(r.license for r in recs) == ["CC-BY-2.0", "CC0-1.0"]
    assert recs[0].meta["landing_url"].startswith("https://www.flickr.com/photos/12345@N00/")
    for f in daad_home.rglob("*"):
        if f.is_file():
            assert FLICKR_KEY.encode() not in f.read_bytes(), f"API key stored in {f}"

    # A wrong key: the error names Flickr's complaint, never the key.
    bad = CliRunner().invoke(main, [*args[:2], "other query", *args[3:]], env={**env, "FLICKR_API_KEY": "wrong-key-987654321"})
    assert bad.exit_code != 0 and "Invalid API Key" in bad.output and "wrong-key-987654321" not in bad.output
    # No key at all: a clear message.
    none = CliRunner().invoke(main, args, env={"DAAD_HOME": str(daad_home), "FLICKR_API_KEY": ""})
    assert none.exit_code != 0 and "FLICKR_API_KEY" in none.output


def test_openverse_token_is_sent_only_to_the_api_and_redacted_from_errors(server, catalog, store):
    b = server.base
    server.openverse_pages = [[ov("good1.jpg", "by", "4.0", b)]]
    collect_search("pits", "openverse", "pits", 5, catalog=catalog, store=store, endpoint=f"{b}/v1/images/", http_config=fast(),
                   credentials=Credentials(openverse_token=OPENVERSE_TOKEN), progress=False)
    api = server.hits("/v1/images/")[0]
    assert api[2]["Authorization"] == f"Bearer {OPENVERSE_TOKEN}" and "page_size=50" in api[1]
    assert "Authorization" not in server.hits("/img/good1.jpg")[0][2]
    s = PoliteSession(fast(trusted_hosts=frozenset({"127.0.0.1"})), secrets=[OPENVERSE_TOKEN])
    with pytest.raises(FetchError) as e:
        s.get_json(f"{b}/nothing?token={OPENVERSE_TOKEN}")
    assert "HTTP 404" in str(e.value) and OPENVERSE_TOKEN not in str(e.value)


# -- the HTTP layer on its own -----------------------------------------------------------------


def test_http_refuses_other_schemes_and_private_hosts_but_trusts_the_endpoint(server):
    s = PoliteSession(fast())
    for url, why in [("file:///etc/passwd", "only http and https"), ("ftp://example.org/x.jpg", "only http and https"),
                     ("http://10.1.2.3/x.jpg", "non-public address 10.1.2.3"), ("http://[::1]/x.jpg", "non-public address ::1"),
                     ("http://169.254.169.254/latest/meta-data", "non-public"), (f"{server.base}/img/good1.jpg", "127.0.0.1")]:
        with pytest.raises(FetchError, match=why.replace(".", r"\.")):
            s.check_url(url)
    trusted = PoliteSession(fast(trusted_hosts=frozenset({"127.0.0.1"})))
    assert trusted.get_image(f"{server.base}/img/good1.jpg") == server.images["good1.jpg"]


def test_http_rate_limit_per_host(server):
    s = PoliteSession(fast(trusted_hosts=frozenset({"127.0.0.1"})))
    s.config.rate = 20.0
    t0 = time.monotonic()
    for _ in range(6):
        s.get_image(f"{server.base}/img/good1.jpg")
    assert time.monotonic() - t0 >= 5 / 20 - 0.01


def test_http_gives_up_when_retry_after_is_too_long(server):
    s = PoliteSession(fast(trusted_hosts=frozenset({"127.0.0.1"}), max_retry_after=0.5))
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        s.get_image(f"{server.base}/img/ratelimited-good1.jpg")
    assert e.value.transient and "asks to wait 1 s" in e.value.reason and time.monotonic() - t0 < 0.5


def test_credentials_from_config_file_env_wins_and_repr_hides_secrets(tmp_path, monkeypatch):
    from daad.collectors.search.credentials import load_credentials

    for var in ("DAAD_CONTACT", "OPENVERSE_TOKEN", "FLICKR_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    conf = tmp_path / "search.yaml"
    conf.write_text(f"contact: me@lab.org\nopenverse:\n  token: {OPENVERSE_TOKEN}\nflickr:\n  api_key: file-key-123456\n")
    conf.chmod(0o600)
    creds = load_credentials(tmp_path)
    assert (creds.contact, creds.openverse_token, creds.flickr_api_key) == ("me@lab.org", OPENVERSE_TOKEN, "file-key-123456")
    assert OPENVERSE_TOKEN not in repr(creds) and "file-key-123456" not in repr(creds)
    monkeypatch.setenv("FLICKR_API_KEY", FLICKR_KEY)
    assert load_credentials(tmp_path).flickr_api_key == FLICKR_KEY
    conf.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by other users"):
        load_credentials(tmp_path)


# -- hostile servers: slow, endless, malformed, throttled, concurrent -------------------------


@pytest.mark.parametrize("phase", ["head", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(server, phase):
    s = PoliteSession(fast(trusted_hosts=frozenset({"127.0.0.1"}), deadline=0.5))
    with pytest.raises(FetchError) as e:
        s.get_image(f"{server.base}/trickle-{phase}/good1.jpg")
    assert "deadline of 0.5 s" in e.value.reason and e.value.transient
    assert len(server.hits(f"/trickle-{phase}/")) == 1, "a deadline that fired was retried"


def test_a_trickled_image_does_not_hold_the_collect(server, catalog, store):
    b = server.base
    server.openverse_pages = [[{**ov("slow.jpg", "by", "4.0", b), "url": f"{b}/trickle-body/good1.jpg"}, ov("good2.jpg", "by", "4.0", b)]]
    report = collect_search("dent", "openverse", "pits", 10, catalog=catalog, store=store, endpoint=f"{b}/v1/images/",
                            http_config=fast(deadline=0.5), credentials=Credentials(), progress=False)
    assert report.count("added") == 1 and report.retry_later == [f"{b}/trickle-body/good1.jpg"]
    assert "deadline" in report.bad[0].reason


def test_an_endless_api_of_skipped_results_is_paged_only_up_to_the_budget(server, catalog, store):
    server.endless_nd = True
    kw: dict[str, Any] = dict(catalog=catalog, store=store, endpoint=f"{server.base}/v1/images/", http_config=fast(), credentials=Credentials(), progress=False)
    report = collect_search("scratch", "openverse", "scratch", 10, max_pages=3, **kw)
    assert report.pages == 3 and report.page_budget_hit and not report.exhausted and report.count("skipped") == 3
    assert "budget of 3 pages: run again to continue" in report.summary()
    again = collect_search("scratch", "openverse", "scratch", 10, max_pages=2, **kw)
    assert [h[1].split("page=")[1].split("&")[0] for h in server.hits("/v1/images/")] == ["1", "2", "3", "4", "5"]
    assert again.pages == 2


def test_malformed_results_are_bad_items_naming_the_field_and_the_page_goes_on(server, catalog, store):
    b = server.base
    server.openverse_page_count = "many"
    server.openverse_pages = [[
        {**ov("a.jpg", "by", "4.0", b), "url": 123},
        {**ov("b.jpg", "by", "4.0", b), "license": 4},
        {**ov("c.jpg", "by", "4.0", b), "license": ["by", "by-sa"]},
        {**ov("d.jpg", "by", "4.0", b), "url": "http://[::1/x.jpg"},
        {**ov("e.jpg", "by", "4.0", b), "url": "not a url"},
        {**ov("f.jpg", "by", "4.0", b), "url": f"{b}:notaport/img/f.jpg"},
        {**ov("g.jpg", "by", "4.0", b), "title": {"en": "nested"}},
        "just a string",
        ov("good1.jpg", "by", "4.0", b),
    ], [ov("good2.jpg", "by", "4.0", b)]]
    report = collect_search("crack", "openverse", "crack", 10, catalog=catalog, store=store, endpoint=f"{b}/v1/images/",
                            http_config=fast(), credentials=Credentials(), progress=False)
    bad = {o.name: o.reason for o in report.bad}
    assert "field 'url' is int 123, expected a string" in bad["openverse result id-a.jpg on page 1"]
    assert "field 'license' is int 4" in bad["openverse result id-b.jpg on page 1"]
    assert "field 'license' is list" in bad["openverse result id-c.jpg on page 1"]
    assert "field 'url' is not a valid URL" in bad["openverse result id-d.jpg on page 1"]
    assert "field 'url' is not a valid http(s) URL" in bad["openverse result id-e.jpg on page 1"]
    assert "field 'url' is not a valid URL" in bad["openverse result id-f.jpg on page 1"]
    assert "field 'title' is dict" in bad["openverse result id-g.jpg on page 1"]
    assert "result is str 'just a string'" in bad["openverse result #8 on page 1"]
    assert "field 'page_count' is 'many'" in bad["openverse page 1"]
    assert report.count("added") == 2  # the page went on, and so did paging
    assert len(catalog) == 2 and len(server.hits("/img/")) == 2


def test_openverse_throttle_in_the_body_stops_with_when_to_resume(server, daad_home):
    from daad.cli import main

    b = server.base
    server.openverse_pages = [[ov("good1.jpg", "by", "4.0", b)]]
    server.throttle = [b'{"detail":"Request was throttled. Expected available in 3600 seconds."}']
    args = ["collect", "search", "pits", "--provider", "openverse", "--class", "pits", "--endpoint", f"{b}/v1/images/", "--rate", "0", "--backoff", "0.01", "--quiet"]
    res = CliRunner().invoke(main, args, env={"DAAD_HOME": str(daad_home)})
    assert res.exit_code == 1 and "asks to wait 3600 s" in res.output and "run again after" in res.output, res.output
    assert len(server.hits("/v1/images/")) == 1, "the closed quota was asked again"
    # A short wait in the body is waited for, then the request goes through.
    server.throttle = [b'{"detail":"Request was throttled. Expected available in 1 second."}']
    ok = CliRunner().invoke(main, args, env={"DAAD_HOME": str(daad_home)})
    assert ok.exit_code == 0 and "1/50 added" in ok.output, ok.output
    assert len(server.hits("/v1/images/")) == 3


def test_openverse_without_attribution_gets_one_built(server, catalog, store):
    b = server.base
    res = ov("good1.jpg", "by", "2.0", b)
    del res["attribution"]
    server.openverse_pages = [[res, {**ov("good2.jpg", "cc0", "1.0", b), "attribution": None, "title": "", "creator": ""}]]
    collect_search("pits", "openverse", "pits", 5, catalog=catalog, store=store, endpoint=f"{b}/v1/images/", http_config=fast(),
                   credentials=Credentials(), progress=False)
    got = {r.origin_ref.rsplit("/", 1)[-1]: r.attribution for r in catalog.find(origin="openverse")}
    assert got["good1.jpg"] == '"Scratch good1.jpg" by Jane Doe, CC-BY-2.0, via Openverse (flickr) (https://www.flickr.com/photos/someone/good1.jpg)'
    assert got["good2.jpg"] == "Image, CC0-1.0, via Openverse (flickr) (https://www.flickr.com/photos/someone/good2.jpg)"


def test_two_processes_on_the_same_query_download_each_url_once_and_count_every_addition(server, daad_home):
    import subprocess
    import sys

    b = server.base
    server.image_delay = 0.3  # each download takes a while, so the runs overlap
    server.openverse_pages = [[ov(f"good{i}.jpg", "by", "4.0", b) for i in range(1, 6)]]
    cmd = [sys.executable, "-c", "from daad.cli import main; main()", "collect", "search", "weld crack", "--provider", "openverse", "--class", "crack",
           "--limit", "5", "--endpoint", f"{b}/v1/images/", "--rate", "0", "--quiet"]
    import os

    env = {**os.environ, "DAAD_HOME": str(daad_home)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    downloads = sorted(h[1] for h in server.hits("/img/"))
    assert downloads == [f"/img/good{i}.jpg" for i in range(1, 6)], f"downloaded more than once: {downloads}"
    assert all("5/5 added by this query so far" in o[0] for o in outs), outs
    from daad.core.catalog import Catalog

    cat = Catalog(daad_home)
    assert len(cat) == 5 and cat.count_meta("openverse", "search", state_key("openverse", "weld crack", False)) == 5
