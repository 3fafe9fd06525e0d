"""Fetch a dataset archive from its publisher and unpack it without trusting it.

Why this is more than `urlretrieve` + `extractall`: the archives are gigabytes (MVTec AD
is 5.3 GB), so an interrupted download must resume where it stopped (HTTP Range) rather
than start over; a mirror or a proxy can serve the wrong bytes, so nothing is used
unless it matches a pinned sha256 (or the publisher's own checksum); and an archive is
input from the internet, so extraction refuses absolute paths, `..`, links that point
outside the target, special files, and archives that would expand past a size limit
(decompression bombs), before writing anything.

Servers are not trusted to behave either: a download is capped (the archive's pinned
size when it is known, else `max_bytes`, the CLI's `--max-gb`), enforced while
streaming because a server need not send Content-Length, and a `.part` that grew past
the cap is removed. A download that stalls (no 64 KiB for `stall` seconds, headers
included; see daad.collectors.deadline) is cut off and resumed like a dropped
connection. A corrupt archive (truncated gzip, bad zip CRC, members that collide)
fails with one BadArchiveError naming the file, and nothing is extracted.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterable, Union

import requests
from tqdm import tqdm

from daad.collectors import deadline as deadlines
from daad.core.errors import DaadError

CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # small network reads: a dropped connection loses at most this much
DEFAULT_MAX_RATIO = 100  # unpacked bytes per archive byte; real image archives are near 1
DEFAULT_MAX_MEMBERS = 2_000_000
DEFAULT_MAX_BYTES = 20 * 10**9  # the largest of the nine archives (MVTec 3D-AD) is well under this
DEFAULT_STALL = 60.0  # seconds without 64 KiB arriving


class DownloadError(DaadError):
    """A download failed for good: server error, wrong checksum, retries exhausted."""


class UnsafeArchiveError(DaadError):
    """An archive that would write outside its target or expand past the limit; nothing was extracted."""


class BadArchiveError(DaadError):
    """An archive that cannot be read to the end (truncated, corrupt, colliding members); nothing was extracted."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, sha256: str, md5: str) -> tuple[bool, str]:
    algorithm, want = ("sha256", sha256) if sha256 else ("md5", md5)
    got = file_digest(path, algorithm)
    return got == want.lower(), f"{algorithm} {got}, expected {want.lower()}"


def download(
    url: str,
    dest: Union[str, Path],
    sha256: str = "",
    md5: str = "",
    progress: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    session: requests.Session | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stall: float = DEFAULT_STALL,
) -> Path:
    """Download `url` to `dest`, resuming a partial `<dest>.part`, and verify its checksum.

    At most `max_bytes` are accepted (pass the pinned size when it is known): a bigger
    Content-Length is refused before anything is written, a body without one is cut off
    at the cap, and either way the `.part` is removed. A request during which no 64 KiB
    arrive for `stall` seconds is cut off and resumed, as a dropped connection is.

    A file already at `dest` with the right checksum is not downloaded again. The bytes
    go to `<dest>.part` and are renamed to `dest` only after the checksum matched, so
    `dest` is always complete. A connection lost mid-way is resumed with an HTTP Range
    request (up to `retries` times in this call, and by the next call after a kill); a
    server that ignores Range gets a clean restart. Raises DownloadError.
    """
    if not (sha256 or md5):
        raise ValueError(f"{url}: no pinned sha256 or published checksum; refusing to download unverifiable data")
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        ok, why = _verify(dest, sha256, md5)
        if ok:
            return dest
        raise DownloadError(f"{dest}: exists but does not match ({why}); delete it to download again")
    part = dest.with_name(dest.name + ".part")
    if part.exists() and part.stat().st_size > max_bytes:
        part.unlink()
    http = session or deadlines.session()
    attempt = 0
    restarted = False
    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        watch: deadlines.Deadline | None = None
        try:
            with deadlines.deadline(stall) as running, http.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                watch = running
                if resp.status_code == 416 and offset:  # nothing left to send: the part may be complete
                    pass
                elif resp.status_code == 206 and offset:
                    if not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                        raise DownloadError(f"{url}: server answered Range {offset}- with {resp.headers.get('Content-Range')!r}")
                    _stream(resp, part, "ab", offset, progress, dest.name, max_bytes, running)
                elif resp.status_code == 200:
                    _stream(resp, part, "wb", 0, progress, dest.name, max_bytes, running)  # no Range support: start over
                else:
                    raise DownloadError(f"{url}: HTTP {resp.status_code} {resp.reason}")
                if running.expired:  # a body without Content-Length ends "cleanly" when its socket is shut
                    raise requests.exceptions.ChunkedEncodingError(f"stalled: no data for {stall:g} s")
        except _TooBig as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: {exc}; the partial file was removed") from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            attempt += 1
            if attempt > retries:
                why = f"stalled: no data for {stall:g} s" if watch is not None and watch.expired else str(exc)
                raise DownloadError(f"{url}: gave up after {retries} retries ({why}); run again to resume from {part}") from None
            time.sleep(min(2.0**attempt, 30.0) * 0.1)
            continue
        except OSError as exc:  # disk full, permissions: the .part is kept for a resume
            raise DownloadError(f"{part}: cannot write the download ({exc.strerror or exc})") from None
        ok, why = _verify(part, sha256, md5)
        if ok:
            os.replace(part, dest)
            return dest
        if offset and not restarted:  # a stale or foreign .part: discard it once and fetch afresh
            part.unlink()
            restarted = True
            continue
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch ({why}); the partial file was removed")


class _TooBig(Exception):
    """The body goes past the download's cap."""


def _stream(resp: requests.Response, part: Path, mode: str, offset: int, progress: bool, label: str, cap: int, watch: deadlines.Deadline) -> None:
    declared = resp.headers.get("Content-Length") or ""
    length = int(declared) if declared.isdigit() else 0
    if offset + length > cap:
        raise _TooBig(f"the server announces {offset + length} bytes, over the cap of {cap} bytes")
    written = offset
    with open(part, mode) as fh, tqdm(total=offset + length or None, initial=offset, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
        for block in resp.iter_content(NET_CHUNK):
            written += len(block)
            if written > cap:
                raise _TooBig(f"the body goes past the cap of {cap} bytes (stopped reading)")
            fh.write(block)
            watch.touch()
            bar.update(len(block))
        fh.flush()
        os.fsync(fh.fileno())
    got = part.stat().st_size - offset
    if length and got < length:
        raise requests.exceptions.ChunkedEncodingError(f"connection closed after {got} of {length} bytes")


# -- extraction ---------------------------------------------------------------------------


def _safe_name(name: str, archive: Path) -> str:
    """The member's normalised relative path; UnsafeArchiveError for absolute paths and `..`."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; nothing extracted")
    clean = posixpath.normpath(norm)
    if clean == ".." or clean.startswith("../") or "/../" in f"/{norm}/":
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'; nothing extracted")
    return clean


def _link_inside(member: str, target: str, archive: Path) -> None:
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} points to absolute path {target!r}; nothing extracted")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} points outside the target ({target!r}); nothing extracted")


def _inside(tmp: Path, path: Path, archive: Path, member: str) -> Path:
    """`path` if its real location (links followed so far) is inside `tmp`: catches link chains."""
    real = Path(os.path.realpath(path))
    if real != tmp.resolve() and tmp.resolve() not in real.parents:
        raise UnsafeArchiveError(f"{archive}: member {member!r} would be written outside the target through a link; nothing kept")
    return path


def _check_links(tmp: Path, archive: Path) -> None:
    """After extraction: every link must resolve inside the target, chains included."""
    for dirpath, dirnames, filenames in os.walk(tmp):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            if p.is_symlink():
                _inside(tmp, p, archive, str(p.relative_to(tmp)))


def _limit(archive: Path, max_bytes: int | None) -> int:
    return max_bytes if max_bytes is not None else DEFAULT_MAX_RATIO * max(archive.stat().st_size, 1)


def _check_total(archive: Path, total: int, count: int, max_bytes: int, max_members: int) -> None:
    if total > max_bytes:
        raise UnsafeArchiveError(f"{archive}: would expand to {total} bytes, over the limit of {max_bytes}; nothing extracted")
    if count > max_members:
        raise UnsafeArchiveError(f"{archive}: {count} members, over the limit of {max_members}; nothing extracted")


def _copy_limited(src: IO[bytes], dst: IO[bytes], budget: list[int], archive: Path, name: str) -> None:
    """Copy, counting real bytes against the budget: headers can lie about sizes."""
    for block in iter(lambda: src.read(CHUNK), b""):
        budget[0] -= len(block)
        if budget[0] < 0:
            raise UnsafeArchiveError(f"{archive}: {name} expands past the size limit while extracting")
        dst.write(block)


def _extract_tar(archive: Path, tmp: Path, max_bytes: int, max_members: int) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        total = 0
        for m in members:
            name = _safe_name(m.name, archive)
            if m.issym():
                _link_inside(name, m.linkname, archive)
            elif m.islnk():
                _safe_name(m.linkname, archive)  # hard links name an archive path: same rules as members
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device, fifo or other special file; nothing extracted")
            total += m.size if m.isfile() else 0
        _check_total(archive, total, len(members), max_bytes, max_members)
        budget = [max_bytes]
        for m in members:
            name = _safe_name(m.name, archive)
            out = _inside(tmp, tmp / name, archive, m.name)
            if m.isdir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, out)
            elif m.islnk():
                src = _inside(tmp, tmp / _safe_name(m.linkname, archive), archive, m.name)
                shutil.copyfile(src, out)  # a copy, not a hard link: nothing shared with the outside
            else:
                fh = tf.extractfile(m)
                assert fh is not None, "special files were refused above"  # None only for those
                with fh, open(out, "wb") as dst:
                    _copy_limited(fh, dst, budget, archive, m.name)
                os.chmod(out, 0o644)


def _extract_zip(archive: Path, tmp: Path, max_bytes: int, max_members: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        links: dict[str, str] = {}
        for info in infos:
            name = _safe_name(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                if info.file_size > 4096:
                    raise UnsafeArchiveError(f"{archive}: link {info.filename!r} has a {info.file_size}-byte target; nothing extracted")
                target = zf.read(info).decode("utf-8", "replace")
                _link_inside(name, target, archive)
                links[info.filename] = target
            elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a special file; nothing extracted")
            total += info.file_size
        _check_total(archive, total, len(infos), max_bytes, max_members)
        budget = [max_bytes]
        for info in infos:
            name = _safe_name(info.filename, archive)
            out = _inside(tmp, tmp / name, archive, info.filename)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if info.filename in links:
                os.symlink(links[info.filename], out)
                continue
            with zf.open(info) as src, open(out, "wb") as dst:
                _copy_limited(src, dst, budget, archive, info.filename)


def safe_extract(
    archive: Union[str, Path],
    dest: Union[str, Path],
    max_bytes: int | None = None,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract a tar (any compression) or zip archive into `dest`; returns the top-level paths.

    Every member is checked before anything is written (UnsafeArchiveError otherwise),
    the members are unpacked into a hidden folder inside `dest` and moved into place at
    the end, so `dest` never holds a half-extracted dataset that looks complete. A
    marker `.<archive>.extracted` makes a second call a no-op; a top-level entry that
    already exists in `dest` is left alone (never overwritten or deleted). `max_bytes`
    defaults to 100x the archive's size.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / f".{archive.name}.extracted"
    if marker.exists():
        return [dest / line for line in marker.read_text().splitlines() if line]
    limit = _limit(archive, max_bytes)
    tmp = dest / f".{archive.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, tmp, limit, max_members)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, tmp, limit, max_members)
            else:
                raise BadArchiveError(f"{archive}: neither a tar nor a zip archive (truncated or not an archive); nothing extracted")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError) as exc:
            raise BadArchiveError(f"{archive}: corrupt archive ({_why(exc)}); nothing extracted") from None
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
            raise BadArchiveError(f"{archive}: members collide ({_why(exc)}); nothing extracted") from None
        except OSError as exc:
            raise BadArchiveError(f"{archive}: cannot extract into {dest} ({_why(exc)}); nothing extracted") from None
        _check_links(tmp, archive)
        tops = sorted(p.name for p in tmp.iterdir())
        for top in tops:
            target = dest / top
            if not (target.exists() or target.is_symlink()):  # never overwrite: it was moved by an
                os.replace(tmp / top, target)  # interrupted earlier run, or it is the user's
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text("".join(f"{t}\n" for t in tops))
    return [dest / t for t in tops]


def _why(exc: BaseException) -> str:
    """An exception as a short reason, with the member's name when the OS error has one."""
    if isinstance(exc, OSError) and exc.filename:
        member = exc.filename2 or exc.filename  # os.symlink(target, member) names the member second
        return f"{exc.strerror or type(exc).__name__}: {Path(os.fsdecode(member)).name}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def fetch(
    downloads: Iterable,
    extract_to: Union[str, Path],
    archive_dir: Union[str, Path],
    progress: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stall: float = DEFAULT_STALL,
) -> Path:
    """Download, verify and extract each of a dataset's archives into `extract_to`; returns `extract_to`.

    `downloads` are `daad.core.sources.Download`s (a source card's `downloads:`). Archives are kept in
    `archive_dir` (a partial one resumes); an archive already extracted is not extracted
    again. Each download is capped at its pinned `size` when it has one, else `max_bytes`;
    an archive whose pinned size is over `max_bytes` is refused before it is fetched.
    """
    extract_to, archive_dir = Path(extract_to).expanduser(), Path(archive_dir).expanduser()
    downloads = list(downloads)
    if not downloads:
        raise ValueError("nothing to download")
    for d in downloads:
        if d.size and d.size > max_bytes:
            raise DownloadError(f"{d.filename} is {d.size / 1e9:.1f} GB, over the cap of {max_bytes / 1e9:.1f} GB (raise --max-gb)")
        cap = d.size or max_bytes
        path = download(d.url, archive_dir / d.filename, sha256=d.sha256, md5=d.md5, progress=progress, max_bytes=cap, stall=stall)
        safe_extract(path, extract_to)
    return extract_to
