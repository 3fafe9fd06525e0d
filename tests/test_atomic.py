"""`write_bytes_atomic`: whole files or none, the umask's mode, the old file kept when a write fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daad.core.atomic import write_bytes_atomic


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.png"  # a missing folder is made
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(str(target), b"second" * 10_000)  # a str path too; replaces
    assert target.read_bytes() == b"second" * 10_000
    assert _temps(target.parent) == []


def test_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path: Path) -> None:
    target = tmp_path / "kept.json"
    write_bytes_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, 12345)  # type: ignore[arg-type]  # not bytes: fails after the temp file exists
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from the kernel (writing into /dev/full through the real os.write), reported under the user's path."""
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags, mode=0o777: real_open("/dev/full", os.O_WRONLY) if str(p).endswith(".tmp") else real_open(p, flags, mode))
    with pytest.raises(OSError) as info:
        write_bytes_atomic(tmp_path / "big.png", b"x" * 100_000)
    assert info.value.filename == str(tmp_path / "big.png") and info.value.errno == 28
    assert not (tmp_path / "big.png").exists()
