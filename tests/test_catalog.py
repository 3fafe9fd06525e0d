"""The catalog as a database: schema versions, transactions, the change log."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from daad.core import catalog as catalog_mod
from daad.core.catalog import Catalog
from daad.core.errors import CatalogError
from daad.core.record import Record


def _rec(i: int, **kw) -> Record:
    return Record(id=hashlib.sha256(str(i).encode()).hexdigest(), width=10, height=10, source="photograph", origin="photos:t", **kw)


def test_schema_version_and_wal(catalog: Catalog) -> None:
    assert catalog.schema_version == catalog_mod.SCHEMA_VERSION
    mode = sqlite3.connect(catalog.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_migration_applies_to_an_old_catalog_and_refuses_a_newer_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = Catalog(tmp_path)
    cat.add(_rec(1))
    cat.close()
    extra = ["ALTER TABLE samples ADD COLUMN reviewed_by TEXT"]
    monkeypatch.setattr(catalog_mod, "MIGRATIONS", [*catalog_mod.MIGRATIONS, extra])
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", len(catalog_mod.MIGRATIONS))
    upgraded = Catalog(tmp_path)
    assert upgraded.schema_version == len(catalog_mod.MIGRATIONS)
    assert len(upgraded) == 1
    cols = [r[1] for r in sqlite3.connect(upgraded.path).execute("PRAGMA table_info(samples)")]
    assert "reviewed_by" in cols
    upgraded.close()
    monkeypatch.undo()
    with pytest.raises(CatalogError, match="newer than this daad"):
        Catalog(tmp_path)


def test_update_logs_who_and_when_and_validates(catalog: Catalog) -> None:
    catalog.add(_rec(2))
    assert not catalog.add(_rec(2)), "adding an existing id changes nothing"
    catalog.update(_rec(2).id, who="alice", anomaly_class="crack")
    ev = catalog.events(_rec(2).id)
    assert [(e["field"], e["old"], e["new"], e["who"]) for e in ev] == [("anomaly_class", "unassigned", "crack", "alice")]
    with pytest.raises(ValueError, match="unknown anomaly class"):
        catalog.update(_rec(2).id, anomaly_class="dent")
    with pytest.raises(ValueError, match="needs a mask"):
        catalog.update(_rec(2).id, mask_status="annotated")
    two = catalog.get(_rec(2).id)
    assert two is not None and two.anomaly_class == "crack"


def test_transaction_is_all_or_nothing(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError):
        with catalog.transaction():
            catalog.add(_rec(3))
            catalog.add(_rec(4))
            raise RuntimeError("interrupted")
    assert len(catalog) == 0


def test_find_filters_and_leaks(catalog: Catalog) -> None:
    catalog.add(_rec(5, anomaly_class="hole", leaks=["mvtec_ad"]))
    catalog.add(_rec(6, anomaly_class="hole"))
    catalog.add(_rec(7, duplicate_of=_rec(6).id))
    assert [r.id for r in catalog.find(leaks="mvtec_ad")] == [_rec(5).id]
    assert len(catalog.find(anomaly_class="hole")) == 2
    assert len(catalog.find(representatives_only=True)) == 2
    by_prefix = catalog.get(_rec(5).id[:12])
    assert by_prefix is not None and by_prefix.id == _rec(5).id


def test_set_hashes_stores_many_and_logs_each_change_like_update(catalog: Catalog) -> None:
    for i in range(3):
        catalog.add(_rec(i, phash="00" * 8 if i == 2 else None, dhash="11" * 8 if i == 2 else None))
    a, b, c = (_rec(i).id for i in range(3))
    changed = catalog.set_hashes([(a, "ab" * 8, "cd" * 8), (b, "ef" * 8, "01" * 8), (c, "00" * 8, "11" * 8)], who="publish")
    assert set(changed) == {a, b}  # c already had these hashes: nothing written, nothing logged
    assert changed[a].phash == "ab" * 8 and changed[a] == catalog.get(a)
    got_b = catalog.get(b)
    assert got_b is not None and (got_b.phash, got_b.dhash) == ("ef" * 8, "01" * 8)
    ev = catalog.events(a)
    assert [(e["field"], e["old"], e["new"], e["who"]) for e in ev] == [("phash", None, "ab" * 8, "publish"), ("dhash", None, "cd" * 8, "publish")]
    assert catalog.events(c) == []
    again = catalog.set_hashes([(a, "ab" * 8, "ff" * 8)])
    assert [(e["field"], e["old"], e["new"]) for e in catalog.events(a)][-1] == ("dhash", "cd" * 8, "ff" * 8) and len(catalog.events(a)) == 3
    assert again[a].dhash == "ff" * 8
    assert catalog.set_hashes([("f" * 64, "ab" * 8, "cd" * 8)]) == {} and len(catalog) == 3  # an unknown id adds nothing
