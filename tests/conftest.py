"""Shared fixtures: a fresh DAAD_HOME per test, and the real sample data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DAAD_SHARED_DATA", REPO.parent / "shared" / "data"))
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real images in their publishers' layouts); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (set DAAD_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def daad_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DAAD_HOME for this test, also seen by subprocesses (the CLI)."""
    home = tmp_path / "daad_home"
    monkeypatch.setenv("DAAD_HOME", str(home))
    return home


@pytest.fixture
def catalog(daad_home: Path):
    from daad.core.catalog import Catalog

    cat = Catalog(daad_home)
    yield cat
    cat.close()


@pytest.fixture
def store(daad_home: Path):
    from daad.core.media_store import MediaStore

    return MediaStore(daad_home)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests save things a person may want to look at (screenshots, previews)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
