"""What a newcomer and a fault campaign hit: each case ends in one `Error: ...` line (or works), never a traceback.

Disk-full cases run on a real, tiny tmpfs (mounted by the test: needs root, else skipped
with the reason); read-only homes are a tmpfs remounted read-only (root ignores chmod).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

def _daad(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daad", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def _one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@contextmanager
def tmpfs(where: Path, size: str):
    """A real tmpfs of `size` at `where` (unmounted afterwards); skips where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs (disk-full / read-only cases) needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _photos(shared_data: Path, dest: Path, n: int = 3) -> Path:
    """n MVTEC AD bottle test images with their ground-truth masks, in the photos layout (<name>_mask.png)."""
    bottle = shared_data / "mvtec_ad" / "bottle"
    src = sorted(p for p in (bottle / "test").glob("*/*.png") if p.parent.name != "good")[:n]
    assert len(src) == n
    dest.mkdir(parents=True, exist_ok=True)
    for p in src:
        name = f"{p.parent.name}_{p.stem}"
        shutil.copy(p, dest / f"{name}.png")
        shutil.copy(bottle / "ground_truth" / p.parent.name / f"{p.stem}_mask.png", dest / f"{name}_mask.png")
    return dest


def _collected_home(shared_data: Path, tmp_path: Path, home: Path) -> Path:
    proc = _daad("--home", str(home), "collect", "photos", str(_photos(shared_data, tmp_path / "crack")), "--class", "crack",
                 "--license", "CC-BY-4.0", "--attribution", "t", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return home


# -- the catalog -----------------------------------------------------------------------
def test_missing_home_is_said_and_nothing_is_created(tmp_path):
    home = tmp_path / "mistyped"
    for cmd in (["status"], ["ls"], ["info", "abcd"]):
        _one_error_line(_daad("--home", str(home), *cmd), str(home), "no such folder", "mistyped")
    assert not home.exists()
    home.mkdir()
    _one_error_line(_daad("--home", str(home), "status"), "no catalog")
    assert list(home.iterdir()) == []


def test_read_only_home_reads_and_says_why_it_cannot_write(shared_data, tmp_path):
    home = _collected_home(shared_data, tmp_path, tmp_path / "h")
    n = len(_daad("--home", str(home), "ls").stdout.splitlines())
    assert n > 0
    with tmpfs(tmp_path / "ro", "20m") as ro:
        shutil.copytree(home, ro / "home")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        status = _daad("--home", str(ro / "home"), "status")
        assert status.returncode == 0, status.stderr
        assert f"({n} samples)" in status.stdout
        ls = _daad("--home", str(ro / "home"), "ls")
        assert ls.returncode == 0 and len(ls.stdout.splitlines()) == n, ls.stderr
        again = _daad("--home", str(ro / "home"), "collect", "photos", str(tmp_path / "crack"), "--quiet")
        _one_error_line(again, "cannot write the catalog", "read-only file system")
        dedupe = _daad("--home", str(ro / "home"), "dedupe")
        _one_error_line(dedupe, "read-only file system")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-newer"])
def test_damaged_or_newer_catalog_is_one_line(damage, shared_data, tmp_path):
    home = _collected_home(shared_data, tmp_path, tmp_path / "h")
    db = home / "catalog.sqlite"
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version=99")
        conn.close()
    for cmd in (["status"], ["ls"], ["collect", "photos", str(tmp_path / "crack"), "--quiet"]):
        line = _one_error_line(_daad("--home", str(home), *cmd), str(db))
        if damage == "empty-newer":
            assert "newer than this daad" in line


# -- where files go and how they look ------------------------------------------------------
def test_outputs_and_media_respect_the_umask(shared_data, tmp_path):
    home = tmp_path / "h"
    old = os.umask(0o022)
    try:
        _collected_home(shared_data, tmp_path, home)
        media = [p for p in (home / "media").rglob("*.png")]
        assert media and all(p.stat().st_mode & 0o777 == 0o644 for p in media), [oct(p.stat().st_mode) for p in media]
        proc = _daad("--home", str(home), "publish", "--version", "1.0.0", "--out", str(tmp_path / "hub"), "--quiet")
        assert proc.returncode == 0, proc.stderr
        version = tmp_path / "hub" / "v1.0.0"
        assert version.stat().st_mode & 0o777 == 0o755
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in version.rglob("*") if p.is_file())
        from daad.core.atomic import write_bytes_atomic

        write_bytes_atomic(tmp_path / "out" / "x.bin", b"x")
        assert (tmp_path / "out" / "x.bin").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_tilde_is_expanded_in_path_arguments(shared_data, tmp_path):
    fake_home = tmp_path / "user"
    _photos(shared_data, fake_home / "photos" / "crack")
    env = {"HOME": str(fake_home), "DAAD_HOME": str(tmp_path / "h")}
    proc = _daad("collect", "photos", "~/photos/crack", "--class", "crack", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "3" in proc.stdout
    proc = _daad("status", "--plot", "~/status.png", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (fake_home / "status.png").is_file() and not (tmp_path / "~").exists()


def test_collect_without_license_warns_and_set_license_fixes_it(shared_data, tmp_path):
    home = tmp_path / "h"
    proc = _daad("--home", str(home), "collect", "photos", str(_photos(shared_data, tmp_path / "crack")), "--class", "crack", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning: 3 photos collected without --license" in proc.stderr
    assert "daad set-license photos:crack CC-BY-4.0" in proc.stderr
    fixed = _daad("--home", str(home), "set-license", "photos:crack", "CC-BY-4.0", "--attribution", "Lab")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "photos:crack: licence CC-BY-4.0 set on 3 of 3 samples"
    published = _daad("--home", str(home), "publish", "--version", "1.0.0", "--out", str(tmp_path / "hub"), "--quiet")
    assert published.returncode == 0 and "(3 samples" in published.stdout, published.stderr


def test_a_missing_dataset_folder_is_not_sent_to_the_hub(tmp_path):
    (tmp_path / "t.png").write_bytes(b"")
    start = time.monotonic()
    proc = _daad("synthesize", "--dataset", "daad-release", "--targets", str(tmp_path), "--out", str(tmp_path / "o"), cwd=tmp_path,
                 env={"HF_HUB_OFFLINE": "0"})
    _one_error_line(proc, "daad-release: no such folder (and not a hub id of the form owner/name)")
    assert time.monotonic() - start < 60  # not 23 s of Hub retries per attempt
    from daad.core.locations import NotFoundError, folder_or_hub_id

    assert folder_or_hub_id("acme/daad") == "acme/daad"
    assert folder_or_hub_id(str(tmp_path)) == tmp_path
    for bad in ("./acme/daad", "daad-release", "a/b/c", "~/nope", "acme/.x"):
        with pytest.raises(NotFoundError, match="no such folder"):
            folder_or_hub_id(bad)


# -- disk full, for real ---------------------------------------------------------------------
def test_disk_full_in_collect_and_publish_is_one_line_and_leaves_nothing(shared_data, tmp_path):
    with tmpfs(tmp_path / "small", "400k") as small:
        home = small / "h"
        photos = _photos(shared_data, tmp_path / "crack", n=8)  # ~8 x 400 KB of PNG: does not fit
        proc = _daad("--home", str(home), "collect", "photos", str(photos), "--class", "crack", "--license", "CC-BY-4.0", "--quiet")
        line = _one_error_line(proc, "No space left on device")
        assert str(small) in line
        assert not [p for p in home.rglob(".tmp-*")]
        ok = sqlite3.connect(home / "catalog.sqlite").execute("PRAGMA integrity_check").fetchone()[0]
        assert ok == "ok"

    big_home = _collected_home(shared_data, tmp_path, tmp_path / "big")
    with tmpfs(tmp_path / "small2", "200k") as small:
        stale = small / "hub" / ".v0.9.0.tmp-abc"
        stale.mkdir(parents=True)
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        proc = _daad("--home", str(big_home), "publish", "--version", "1.0.0", "--out", str(small / "hub"), "--quiet")
        _one_error_line(proc, "No space left on device")
        assert sorted(p.name for p in (small / "hub").iterdir()) == []  # no half version, the stale temp folder gone


def test_dedupe_benchmark_without_imagededup_says_how_to_install_it(tmp_path):
    import importlib.util

    if importlib.util.find_spec("imagededup") is not None:
        pytest.skip("imagededup is installed here: the message is for machines without it")
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "dedupe.py"
    proc = subprocess.run([sys.executable, str(bench)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install --no-deps 'imagededup>=0.3.3'" in proc.stderr
