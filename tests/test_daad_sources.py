"""A curator collects the paper's web sources from the authors' real spreadsheet, through a mirror.

The mirror is a real HTTP server on 127.0.0.1 started by the test, laid out as
`/m/<scheme>/<host>/<path>`. For some of the crack sheet's URLs it serves real images from
../shared/data, for one listed page an HTML page with several images, and for others a
404, an HTML page instead of the image, or a 503 once. Everything else is a 404. The test
checks the outcome of each kind, resumption across runs (a limit, a retry, nothing twice),
and that no request leaves loopback.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from daad.cli import main
from daad.collectors.daad_sources import collect_daad_sources, mirror_url
from daad.collectors.search.http import HttpConfig
from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore

XLSX = "daad_sources/source of real anomalies.xlsx"
PAGE = "https://www.ganginn.cn/news/cpzs/711.html"  # listed 7 times in the crack sheet (B151-B157)
PAGE_HTML = b"""<!doctype html><html><head><meta charset="utf-8">
<meta property="og:image" content="https://www.ganginn.cn/uploads/big.png">
<title>cracks</title></head><body>
<img src="/icon.png" width="16" height="16" alt="logo">
<img srcset="/uploads/a-small.jpg 300w, /uploads/a-large.png 900w" src="/uploads/a-small.jpg">
<p><img src="img/road.jpg"></p>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="https://img.ganginn.cn/steel.jpg">
<img src="https://www.ganginn.cn/uploads/copy-of-big.png">
</body></html>"""
HTML = b"<html><body><h1>Not found (a soft 404 that answers 200)</h1></body></html>"


class Mirror:
    """`with Mirror(routes) as m:`; `m.base` is http://127.0.0.1:PORT/m; routes: original URL (no query) -> (code, type, body)."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]], fail_once: set[str]):
        self.routes, self.fail_once = routes, set(fail_once)
        self.log: list[str] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                srv.log.append(self.path)
                parts = urlsplit(self.path)
                bits = parts.path.split("/", 4)  # "", "m", scheme, host, rest
                original = f"{bits[2]}://{bits[3]}/{bits[4] if len(bits) > 4 else ''}" if len(bits) >= 4 and bits[1] == "m" else ""
                if original in srv.fail_once:
                    srv.fail_once.discard(original)
                    code, ctype, body = 503, "text/plain", b"busy"
                else:
                    code, ctype, body = srv.routes.get(original, (404, "text/html", b"<h1>404</h1>"))
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/m"

    def __enter__(self) -> "Mirror":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved during the test; anything but 127.0.0.1 is refused (and recorded)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        asked.append(str(host))
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise socket.gaierror(f"test: refusing to resolve {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return asked


def _titles_without_link(xlsx: Path, sheet: str) -> int:
    """Cells that are only a title (no URL, no data: URI, no hyperlink), counted straight from the workbook."""
    import openpyxl

    ws = openpyxl.load_workbook(xlsx)[sheet]
    n = 0
    for (cell,) in ws.iter_rows(min_col=2, max_col=2):
        text = str(cell.value or "").strip()
        if text and not text.startswith(("http://", "https://", "data:")) and cell.hyperlink is None:
            n += 1
    return n


def test_mirror_url_layout() -> None:
    assert mirror_url("http://127.0.0.1:8000/m/", "https://cn.bing.com/images/search?view=detailV2&id=1") == "http://127.0.0.1:8000/m/https/cn.bing.com/images/search?view=detailV2&id=1"
    assert mirror_url("http://h/m", "http://a.b:8080") == "http://h/m/http/a.b:8080/"


def test_daad_sources_real_xlsx_through_a_loopback_mirror(shared_data: Path, daad_home: Path, only_loopback: list[str]) -> None:
    pytest.importorskip("openpyxl")
    xlsx = shared_data / XLSX
    img = {  # real images, distinct sizes
        "bottle": (shared_data / "mvtec_ad/bottle/test/broken_large/006.png").read_bytes(),  # 900x900
        "bottle2": (shared_data / "mvtec_ad/bottle/test/broken_small/000.png").read_bytes(),
        "capsule": (shared_data / "mvtec_ad/capsule/test/crack/001.png").read_bytes(),  # 1000x1000
        "capsule2": (shared_data / "mvtec_ad/capsule/test/crack/010.png").read_bytes(),
        "road": (shared_data / "crackforest/image/001.jpg").read_bytes(),  # 480x320
        "steel": (shared_data / "neu_det/NEU-DET/IMAGES/inclusion_1.jpg").read_bytes(),  # 200x200
        "tile": sorted((shared_data / "magnetic_tile/MT_Crack/Imgs").glob("*.jpg"))[0].read_bytes(),
        "tile2": sorted((shared_data / "magnetic_tile/MT_Crack/Imgs").glob("*.jpg"))[1].read_bytes(),
    }
    png, jpg = "image/png", "image/jpeg"
    routes = {
        # B1: Bing detail URL; the image's own URL is nested in mediaurl -> riu
        "http://www.idacn.org/photo/2017/08-01/qjg201708010906255414.jpg": (200, png, img["bottle2"]),
        # B2: the original is gone (404); Bing's cached copy (the mediaurl itself) answers
        "https://ts1.cn.mm.bing.net/th/id/R-C.413190df93a582892670f19c1075b5fd": (200, png, img["capsule2"]),
        # B3: the original answers an HTML page instead of the image; the Bing copy is a 404
        "http://www.yulinhancai.com/uploadFiles/images/20170328161012.png": (200, "text/html; charset=utf-8", HTML),
        # B4: 503 on the first run (both candidates), the original on the next
        "http://yhndt.com/public/ueditor/upload/image/20200827/1598515816560917.jpg": (200, jpg, img["tile2"]),
        # B7: a direct image URL
        "https://cdn.pixabay.com/photo/2016/02/04/18/45/wall-1179614_640.jpg": (200, jpg, img["tile"]),
        # B30: a direct (Bing thumbnail) URL that answers HTML
        "https://tse1-mm.cn.bing.net/th/id/OIP-C.JB-GjvuoGeFyn_b4wD_lCgHaFA": (200, "text/html", HTML),
        # B151-B157: one page, listed 7 times, with 4 distinct images >= 100 px (+ an icon, a copy)
        PAGE: (200, "text/html; charset=utf-8", PAGE_HTML),
        "https://www.ganginn.cn/uploads/big.png": (200, png, img["capsule"]),
        "https://www.ganginn.cn/uploads/copy-of-big.png": (200, png, img["capsule"]),
        "https://www.ganginn.cn/uploads/a-large.png": (200, png, img["bottle"]),
        "https://www.ganginn.cn/news/cpzs/img/road.jpg": (200, jpg, img["road"]),
        "https://img.ganginn.cn/steel.jpg": (200, jpg, img["steel"]),
    }
    fail_once = {"http://yhndt.com/public/ueditor/upload/image/20200827/1598515816560917.jpg",
                 "https://ts1.cn.mm.bing.net/th/id/R-C.d6ac89c66b6c76f55330a27c2015d011"}  # fmt: skip
    fast = HttpConfig(user_agent="daad-test", rate=0, retries=0, backoff=0)
    catalog, store = Catalog(daad_home), MediaStore(daad_home)

    with Mirror(routes, fail_once) as m:
        # run 1: the first 153 of the crack sheet's 221 sources (it stops inside the page's 7 listings)
        r1 = collect_daad_sources(xlsx, classes=["crack"], limit=153, mirror=m.base, catalog=catalog, store=store, http_config=fast, progress=False)
        assert r1.listed == 221 and len(r1.outcomes) == 153 and r1.left == 68
        by_ref = {o.ref: o for o in r1.outcomes}
        assert by_ref["crack!B1"].outcome == "fetched" and by_ref["crack!B1"].image_url.startswith("http://www.idacn.org/")
        assert by_ref["crack!B2"].outcome == "fetched" and "ts1.cn.mm.bing.net" in by_ref["crack!B2"].image_url
        seen = catalog.url_seen("daad_sources", "http://www.hs-ss.com/uploadfile/image/20190527/20190527144530_1961695365.jpg")
        assert by_ref["crack!B2"].kind == "search" and seen is not None and "HTTP 404" in seen["reason"]
        assert by_ref["crack!B3"].outcome == "not_image" and "content-type text/html is not an image" in by_ref["crack!B3"].reason
        assert by_ref["crack!B4"].outcome == "retry" and "503" in by_ref["crack!B4"].reason
        assert (by_ref["crack!B7"].kind, by_ref["crack!B7"].outcome) == ("direct", "fetched")
        assert (by_ref["crack!B30"].kind, by_ref["crack!B30"].outcome) == ("direct", "not_image")
        assert by_ref["crack!B56"].kind == "data" and by_ref["crack!B56"].status == "added"
        assert by_ref["crack!B57"].status == "origin_added"  # the same data: URI listed twice: one record, both sheet rows among its origins
        assert [by_ref[f"crack!B{r}"].outcome for r in (151, 152, 153)] == ["fetched"] * 3
        assert by_ref["crack!B83"].outcome == "unresolvable" and "only a title" in by_ref["crack!B83"].reason
        requests_1 = len(m.log)
        assert requests_1 == r1.requests

        # run 2, through the CLI: continues after B153, retries B4, never asks for a finished source again
        out = CliRunner().invoke(main, ["collect", "daad-sources", str(xlsx), "--classes", "crack", "--mirror", m.base, "--rate", "0", "--retries", "0", "--quiet"])
        assert out.exit_code == 0, out.output
        table = {line[:18].strip(): line[18:].split() for line in out.output.splitlines()[1:7]}
        assert table["total"][0] == "69"  # 68 not tried yet + B4 to retry
        assert "all runs: 221 listed;" in out.output and "0 left to try" in out.output
        log_2 = m.log[requests_1:]
        assert not any("wall-1179614" in p or "qjg201708010906255414" in p for p in log_2)  # finished sources are not fetched again
        assert any("yhndt.com" in p for p in log_2)

        # run 3: nothing left, no request
        r3 = collect_daad_sources(xlsx, classes=["crack"], mirror=m.base, catalog=catalog, store=store, http_config=fast, progress=False)
        assert r3.outcomes == [] and r3.requests == 0 and r3.done_before == 221
        assert not any(p.endswith("/icon.png") for p in m.log)  # a 16 px icon is never downloaded

    titles = _titles_without_link(xlsx, "crack")
    assert r3.overall == Counter({"fetched": 14, "not_image": 2, "unresolvable": titles + 3, "dead": 221 - 14 - 2 - titles - 3})
    recs = catalog.find(origin="daad_sources")
    assert len(recs) == 13  # 14 fetched, one data: URI listed twice
    for r in recs:
        assert (r.anomaly_class, r.source, r.license, r.mask_status) == ("crack", taxonomy.ONLINE_SEARCH, "unknown", taxonomy.MISSING)
        assert r.origin_ref.startswith("crack!B") and r.origin_label == "crack"
    sizes = {r.origin_ref: (r.width, r.height) for r in recs}
    assert [sizes[f"crack!B{r}"] for r in (151, 152, 153, 154)] == [(1000, 1000), (900, 900), (480, 320), (200, 200)]  # largest first, across runs
    st = catalog.get_state("daad_sources:crack!B155")
    assert st["outcome"] == "unresolvable" and "4 distinct image(s) of at least 100 px; this is listing 5 of 7" in st["reason"]
    assert set(only_loopback) <= {"127.0.0.1"} and only_loopback  # every request went to the mirror on loopback


def test_daad_sources_bad_input_is_one_line(shared_data: Path, tmp_path: Path, daad_home: Path) -> None:
    pytest.importorskip("openpyxl")
    runner = CliRunner()
    out = runner.invoke(main, ["collect", "daad-sources", str(shared_data / XLSX), "--classes", "dent"])
    assert out.exit_code == 1 and "Error: unknown anomaly class 'dent'" in out.output and "Traceback" not in out.output
    notxlsx = tmp_path / "list.xlsx"
    notxlsx.write_text("crack,https://example.org/a.jpg\n")
    out = runner.invoke(main, ["collect", "daad-sources", str(notxlsx)])
    assert out.exit_code == 1 and "not a readable .xlsx workbook" in out.output
    out = runner.invoke(main, ["collect", "daad-sources", str(shared_data / XLSX), "--mirror", "ftp://x"])
    assert out.exit_code == 1 and "expected an http(s) URL" in out.output
