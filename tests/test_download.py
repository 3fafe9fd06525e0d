"""Downloading and unpacking a dataset archive, against a real HTTP server on 127.0.0.1.

The server speaks HTTP Range like the publishers' servers do, can drop a connection
half-way, and can ignore Range; the archives include malicious ones.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import pytest

from daad.core.catalog import Catalog
from daad.collectors.datasets import collect_dataset
from daad.collectors.datasets.base import Download
from click.testing import CliRunner

from daad.collectors.download import BadArchiveError, DownloadError, UnsafeArchiveError, download, fetch, safe_extract


class _Server:
    """Files served from memory; `requests` records (path, Range header) of each GET."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.flaky: set[str] = set()  # first GET of these is cut after half the body
        self.no_range: set[str] = set()  # these ignore Range and always send everything
        self.no_length: set[str] = set()  # these are sent without Content-Length (read until close)
        self.trickle: set[str] = set()  # these send their first 60 bytes one per 50 ms
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                owner.requests.append((self.path, rng))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and self.path not in owner.no_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if self.path in owner.no_length:
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in owner.trickle:
                    try:
                        for i in range(min(60, len(body))):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(0.05)
                        self.wfile.write(body[60:])
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                if self.path in owner.flaky:
                    owner.flaky.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: Literal["w:gz", "w"] = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


# -- download -------------------------------------------------------------------------------


def test_download_verifies_and_is_not_repeated(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    server.files["/a.zip"] = data
    dest = download(server.url("/a.zip"), tmp_path / "a.zip", sha256=_sha(data), progress=False)
    assert dest.read_bytes() == data and not (tmp_path / "a.zip.part").exists()
    download(server.url("/a.zip"), tmp_path / "a.zip", sha256=_sha(data), progress=False)
    assert len(server.requests) == 1  # the verified file was kept

    md5 = hashlib.md5(data).hexdigest()
    assert download(server.url("/a.zip"), tmp_path / "b.zip", md5=md5, progress=False).read_bytes() == data


def test_download_resumes_a_partial_file_with_range(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(500_000)
    server.files["/big.tar"] = data
    (tmp_path / "big.tar.part").write_bytes(data[:123_456])  # what a killed earlier run left
    download(server.url("/big.tar"), tmp_path / "big.tar", sha256=_sha(data), progress=False)
    assert (tmp_path / "big.tar").read_bytes() == data
    assert server.requests == [("/big.tar", "bytes=123456-")]


def test_download_resumes_after_a_dropped_connection(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    server.files["/flaky.zip"] = data
    server.flaky.add("/flaky.zip")
    download(server.url("/flaky.zip"), tmp_path / "flaky.zip", sha256=_sha(data), progress=False)
    assert (tmp_path / "flaky.zip").read_bytes() == data
    assert len(server.requests) == 2 and server.requests[0][1] is None
    assert server.requests[1][1] is not None and server.requests[1][1].startswith("bytes=")
    assert int(server.requests[1][1][6:-1]) > 0


def test_download_restarts_when_server_ignores_range(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    server.files["/plain"] = data
    server.no_range.add("/plain")
    (tmp_path / "plain.part").write_bytes(data[:1000])
    download(server.url("/plain"), tmp_path / "plain", sha256=_sha(data), progress=False)
    assert (tmp_path / "plain").read_bytes() == data


def test_download_rejects_wrong_bytes(server: _Server, tmp_path: Path) -> None:
    server.files["/evil.zip"] = b"not what the publisher published" * 100
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(server.url("/evil.zip"), tmp_path / "evil.zip", sha256="0" * 64, progress=False)
    assert not (tmp_path / "evil.zip").exists() and not (tmp_path / "evil.zip.part").exists()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/missing.zip"), tmp_path / "m.zip", sha256="0" * 64, progress=False)
    with pytest.raises(ValueError, match="no pinned sha256"):
        download(server.url("/evil.zip"), tmp_path / "x.zip", progress=False)


# -- extraction -------------------------------------------------------------------------------


def _nothing_written(dest: Path, outside: Path) -> None:
    assert not outside.exists()
    assert [p for p in dest.rglob("*")] == [] if dest.exists() else True


@pytest.mark.parametrize(
    "name, archive",
    [
        ("absolute.tar.gz", lambda: _tar([("/tmp/daad-evil-abs", b"x")])),
        ("dotdot.tar.gz", lambda: _tar([("ok.txt", b"fine"), ("sub/../../escaped.txt", b"x")])),
        ("symlink_out.tar.gz", lambda: _tar([_link("data/link", "../../escaped.txt")])),
        ("symlink_abs.tar", lambda: _tar([_link("link", "/etc")], "w")),
        ("hardlink_out.tar.gz", lambda: _tar([_link("h", "../escaped.txt", tarfile.LNKTYPE)])),
        ("chain.tar.gz", lambda: _tar([_link("a", "."), _link("b", "a/.."), ("b/escaped.txt", b"x")])),
        ("device.tar.gz", lambda: _tar([_link("dev", "", tarfile.CHRTYPE)])),
        ("dotdot.zip", lambda: _zip({"fine.txt": b"ok", "../escaped.txt": b"x"})),
        ("absolute.zip", lambda: _zip({"/escaped.txt": b"x"})),
    ],
)
def test_malicious_archives_are_refused(tmp_path: Path, name: str, archive) -> None:
    path = tmp_path / "in" / name
    path.parent.mkdir()
    path.write_bytes(archive())
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match=name):
        safe_extract(path, dest)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "deep" / "escaped.txt").exists()
    assert [p.name for p in dest.iterdir()] == []  # nothing extracted, no partial folder left


def test_zip_symlink_outside_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # a symlink, as Info-ZIP stores them
        zf.writestr(info, "../../etc/passwd")
    path = tmp_path / "link.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        safe_extract(path, tmp_path / "out")


def test_bombs_are_refused(tmp_path: Path) -> None:
    zeros = b"\0" * 30_000_000
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip({"zeros.bin": zeros}))
    assert bomb.stat().st_size < 100_000  # ratio > 300: over the default limit of 100x
    with pytest.raises(UnsafeArchiveError, match="would expand to 30000000 bytes"):
        safe_extract(bomb, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    tbomb = tmp_path / "bomb.tar.gz"
    tbomb.write_bytes(_tar([("zeros.bin", zeros)]))
    with pytest.raises(UnsafeArchiveError, match="over the limit"):
        safe_extract(tbomb, tmp_path / "out2")
    # An explicit limit admits it.
    safe_extract(tbomb, tmp_path / "out3", max_bytes=40_000_000)
    assert (tmp_path / "out3/zeros.bin").stat().st_size == 30_000_000


def test_good_archives_extract_once(tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    good.write_bytes(_tar([("ds/a/1.txt", b"one"), ("ds/b/2.txt", b"two"), _link("ds/b/link", "../a/1.txt")]))
    out = tmp_path / "out"
    assert safe_extract(good, out) == [out / "ds"]
    assert (out / "ds/b/link").read_text() == "one" and (out / "ds/a/1.txt").read_text() == "one"
    (out / "ds/a/1.txt").write_text("edited")
    safe_extract(good, out)  # marked as extracted: not redone
    assert (out / "ds/a/1.txt").read_text() == "edited"
    z = tmp_path / "good.zip"
    z.write_bytes(_zip({"top/x.txt": b"x", "top/sub/y.txt": b"y", "other/z.txt": b"z"}))
    (out / "other").mkdir()
    (out / "other/mine.txt").write_text("the user's")
    safe_extract(z, out)
    assert (out / "top/sub/y.txt").read_bytes() == b"y"
    assert [p.name for p in (out / "other").iterdir()] == ["mine.txt"]  # an existing folder is never replaced
    assert sorted(p.name for p in out.iterdir()) == [".good.tar.gz.extracted", ".good.zip.extracted", "ds", "other", "top"]


# -- fetch and collect ------------------------------------------------------------------------


def test_fetch_then_collect(server: _Server, shared_data: Path, tmp_path: Path, catalog: Catalog) -> None:
    """A small MVTec-layout archive wrapped in a top folder, as the publisher's archives are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for part in ("test/crack", "ground_truth/crack"):
            tf.add(shared_data / "mvtec_ad/capsule" / part, arcname=f"mvtec_anomaly_detection/capsule/{part}")
    data = buf.getvalue()
    server.files["/mvtec_anomaly_detection.tar.gz"] = data
    server.flaky.add("/mvtec_anomaly_detection.tar.gz")
    dl = Download(url=server.url("/mvtec_anomaly_detection.tar.gz"), filename="mvtec_anomaly_detection.tar.gz", sha256=_sha(data))
    target = tmp_path / "datasets"
    assert fetch([dl], target, tmp_path / "archives", progress=False) == target
    report = collect_dataset("mvtec_ad", target, catalog=catalog, progress=False)
    assert report.count("added") == 2 and {r.anomaly_class for r in catalog.find(origin="mvtec_ad")} == {"crack"}
    n = len(server.requests)
    assert len(server.requests) == 2  # the dropped first attempt and its resume
    fetch([dl], target, tmp_path / "archives", progress=False)  # verified archive kept, extraction marked done
    assert len(server.requests) == n


# -- hostile servers and corrupt archives -------------------------------------------------------


def test_a_body_without_content_length_is_capped_and_its_part_removed(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    server.files["/endless.tar"] = data
    server.no_length.add("/endless.tar")
    with pytest.raises(DownloadError, match="past the cap of 100000 bytes"):
        download(server.url("/endless.tar"), tmp_path / "endless.tar", sha256=_sha(data), progress=False, max_bytes=100_000)
    assert not (tmp_path / "endless.tar.part").exists() and not (tmp_path / "endless.tar").exists()
    server.no_length.discard("/endless.tar")  # announced too big: refused before a byte is written
    with pytest.raises(DownloadError, match="announces 300000 bytes"):
        download(server.url("/endless.tar"), tmp_path / "endless.tar", sha256=_sha(data), progress=False, max_bytes=100_000)
    assert not (tmp_path / "endless.tar.part").exists()


def test_fetch_caps_by_the_pinned_size_and_refuses_one_over_max_bytes(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    server.files["/ds.tar"] = data
    server.no_length.add("/ds.tar")
    pinned = Download(url=server.url("/ds.tar"), filename="ds.tar", sha256=_sha(data), size=20_000)  # the server sends more
    with pytest.raises(DownloadError, match="past the cap of 20000 bytes"):
        fetch([pinned], tmp_path / "out", tmp_path / "archives", progress=False)
    assert not (tmp_path / "archives/ds.tar.part").exists()
    huge = Download(url=server.url("/ds.tar"), filename="ds.tar", sha256=_sha(data), size=5_264_982_680)
    with pytest.raises(DownloadError, match="5.3 GB, over the cap of 1.0 GB"):
        fetch([huge], tmp_path / "out", tmp_path / "archives", progress=False, max_bytes=10**9)
    assert len(server.requests) == 1


def test_a_stalling_download_is_cut_off_and_its_part_kept_for_a_resume(server: _Server, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    server.files["/slow.zip"] = data
    server.trickle.add("/slow.zip")  # without a stall limit this download would succeed after 3 s
    with pytest.raises(DownloadError, match="stalled: no data for 0.3 s"):
        download(server.url("/slow.zip"), tmp_path / "slow.zip", sha256=_sha(data), progress=False, retries=1, stall=0.3)
    assert len(server.requests) == 2 and not (tmp_path / "slow.zip").exists()
    server.trickle.discard("/slow.zip")
    download(server.url("/slow.zip"), tmp_path / "slow.zip", sha256=_sha(data), progress=False)  # the next run completes it
    assert (tmp_path / "slow.zip").read_bytes() == data


def _bad_crc_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ds/a.txt", b"A" * 1000)
    raw = bytearray(buf.getvalue())
    raw[raw.index(b"A" * 1000) + 500] = ord("B")  # the member's bytes no longer match its CRC
    return bytes(raw)


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


CORRUPT = [
    ("truncated.tar.gz", lambda: _tar([("ds/a.bin", os.urandom(200_000)), ("ds/b.bin", os.urandom(200_000))])[:150_000], "corrupt archive"),
    ("badcrc.zip", _bad_crc_zip, "corrupt archive (BadZipFile"),
    ("file_then_link.tar", lambda: _tar([("ds/x", b"x"), _link("ds/x", "y")], "w"), "members collide (File exists: x)"),
    ("dir_then_file.tar", lambda: _tar([_dir("ds/x"), ("ds/x", b"x")], "w"), "members collide (Is a directory: x)"),
    ("not_an_archive.zip", lambda: b"<html>mirror error page</html>", "neither a tar nor a zip"),
]


@pytest.mark.parametrize("name, archive, why", CORRUPT)
def test_corrupt_archives_fail_with_one_error_naming_the_file(tmp_path: Path, name: str, archive, why: str) -> None:
    path = tmp_path / name
    path.write_bytes(archive())
    out = tmp_path / "out"
    with pytest.raises(BadArchiveError) as e:
        safe_extract(path, out)
    assert str(e.value).startswith(f"{path}: ") and why in str(e.value) and "nothing extracted" in str(e.value)
    assert list(out.iterdir()) == [], "something was left half-written"


def test_cli_download_of_a_corrupt_archive_is_one_error_line(server: _Server, tmp_path: Path, daad_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a curator sees when the publisher's server hands out a truncated .tar.gz that matches its pin."""
    from daad.cli import main
    from daad.collectors.datasets import get_adapter

    data = _tar([("ds/a.bin", os.urandom(200_000)), ("ds/b.bin", os.urandom(200_000))])[:150_000]
    server.files["/btad.tar.gz"] = data
    adapter = get_adapter("btad")
    monkeypatch.setattr(type(adapter), "downloads", (Download(url=server.url("/btad.tar.gz"), filename="btad.tar.gz", sha256=_sha(data)),))
    res = CliRunner().invoke(main, ["collect", "dataset", "btad", str(tmp_path / "btad"), "--download", "--dest", str(tmp_path / "arch"), "--quiet"],
                             env={"DAAD_HOME": str(daad_home)})
    assert res.exit_code == 1 and "Aborted" not in res.output and "Traceback" not in res.output, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {tmp_path / 'arch' / 'btad.tar.gz'}: corrupt archive"), res.output
    assert list((tmp_path / "btad").iterdir()) == []
