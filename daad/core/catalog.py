"""The catalog: one SQLite file in DAAD_HOME, and the only code in daad that speaks SQL.

Why SQLite: a single file a user can copy, back up and open anywhere; WAL mode lets
`daad status` or the FiftyOne App read while a collect writes; transactions make every
multi-row change all-or-nothing. The schema has a version (`PRAGMA user_version`) and
an ordered list of migrations, applied in one transaction when a catalog is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

from daad.core.errors import CatalogError
from daad.core.record import FIELDS, ORIGIN_FIELDS, Record, origin_key
from daad.core.settings import daad_home

_JSON_FIELDS = {"leaks", "tags", "meta", "origins"}

# Each entry moves the schema from version i to i+1. Append only; never edit a released one.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE samples (
            id TEXT PRIMARY KEY,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            source TEXT NOT NULL,
            origin TEXT NOT NULL,
            anomaly_class TEXT NOT NULL,
            mask_sha TEXT,
            mask_status TEXT NOT NULL,
            origin_label TEXT NOT NULL DEFAULT '',
            origin_ref TEXT NOT NULL DEFAULT '',
            license TEXT NOT NULL DEFAULT '',
            attribution TEXT NOT NULL DEFAULT '',
            phash TEXT,
            dhash TEXT,
            duplicate_of TEXT,
            leaks TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '[]',
            meta TEXT NOT NULL DEFAULT '{}',
            added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX samples_class ON samples(anomaly_class)",
        "CREATE INDEX samples_origin ON samples(origin)",
        "CREATE INDEX samples_source ON samples(source)",
        # Who changed what and when: review decisions must be traceable.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sample_id TEXT NOT NULL,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            who TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX events_sample ON events(sample_id)",
        # Small named JSON states: resumable search queries, caches' bookkeeping.
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)",
        # Every URL a collector has tried, so a re-run never downloads an image twice.
        """CREATE TABLE seen_urls (
            provider TEXT NOT NULL,
            url TEXT NOT NULL,
            sample_id TEXT,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            PRIMARY KEY (provider, url)
        )""",
        # Perceptual hashes of evaluation datasets' images (leakage checks), cached per dataset.
        """CREATE TABLE eval_hashes (
            dataset TEXT NOT NULL,
            ref TEXT NOT NULL,
            phash TEXT NOT NULL,
            dhash TEXT NOT NULL,
            PRIMARY KEY (dataset, ref)
        )""",
    ],
    [
        # One image, several origins: every origin the same bytes came from, with its own
        # licence, attribution and reference. Existing records get their one origin.
        "ALTER TABLE samples ADD COLUMN origins TEXT NOT NULL DEFAULT '[]'",
        """UPDATE samples SET origins = json_array(json_object(
            'source', source, 'origin', origin, 'origin_label', origin_label,
            'origin_ref', origin_ref, 'license', license, 'attribution', attribution))""",
        # Which samples were checked against which evaluation dataset's cached hashes
        # (fingerprint = that cache's), so publish checks only the samples not yet checked.
        """CREATE TABLE leak_checks (
            dataset TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            PRIMARY KEY (dataset, sample_id)
        )""",
    ],
    [
        # The box ([top, left, height, width], [] when empty) of each stored mask's >= 128 pixels,
        # the release's `mask_box` column: keyed by the mask's sha256, because it is a function
        # of those bytes alone, so a replaced mask (a new sha) never finds a stale box. Existing
        # catalogs start empty; publish computes the missing boxes once and stores them.
        "CREATE TABLE mask_boxes (mask_sha TEXT PRIMARY KEY, box TEXT NOT NULL)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _to_row(rec: Record) -> dict[str, Any]:
    d = rec.to_dict()
    for k in _JSON_FIELDS:
        d[k] = json.dumps(d[k], sort_keys=True)
    return d


def _from_row(row: sqlite3.Row) -> Record:
    d = {k: row[k] for k in FIELDS}
    for k in _JSON_FIELDS:
        d[k] = json.loads(d[k])
    return Record(**d)


def _why_not_writable(folder: Path) -> str | None:
    """None when this process can create files in `folder`, else the reason in words."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(folder, os.W_OK | os.X_OK):
        return "no write permission"
    return None


class Catalog:
    """The DAAD catalog in `<home>/catalog.sqlite` (home defaults to DAAD_HOME).

    Safe to open from several processes at once; each thread gets its own connection.

    `readonly=True` is for commands that only read (status, ls, info, publish): it
    creates nothing (a home or catalog that does not exist is an error, so a mistyped
    DAAD_HOME is not silently a new empty catalog), and it works on a read-only home
    (a backup on a read-only mount, another user's catalog). A writing open on a home
    that cannot be written says so and why before anything is tried.
    """

    def __init__(self, home: Path | str | None = None, readonly: bool = False):
        self.home = Path(home or daad_home()).expanduser()
        self.path = self.home / "catalog.sqlite"
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                what = "no such folder" if not self.home.exists() else f"no catalog ({self.path.name}) in it"
                raise CatalogError(
                    f"{self.home}: {what}; nothing collected there yet, or DAAD_HOME / --home is mistyped (nothing was created)"
                )
        else:
            self._check_writable()
        self._local = threading.local()
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise CatalogError(f"{self.path}: {self.damaged(exc)}") from None

    @staticmethod
    def damaged(exc: sqlite3.Error) -> str:
        """The one line for a catalog SQLite cannot read (truncated, garbage, not a database)."""
        return f"not a readable daad catalog ({exc}); restore it from a backup, or move it away to start a new one"

    def _check_writable(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"{self.home}: cannot create DAAD_HOME ({exc.strerror}); set DAAD_HOME or --home to a writable folder") from None
        why = _why_not_writable(self.home)
        if why is None and self.path.exists() and not os.access(self.path, os.W_OK):
            why = "the catalog file is not writable"
        if why:
            raise CatalogError(
                f"{self.path}: cannot write the catalog ({why}); read-only commands (status, ls, info, publish) "
                "still work; to change it, use a writable copy (DAAD_HOME or --home)"
            )

    # -- connection and schema ------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        else:
            # mode=ro reads a WAL catalog only where SQLite can create its -shm file beside it
            # (or finds one). In a read-only folder without one, the catalog was closed cleanly
            # (no -wal either), so nothing else can be writing it: open it as immutable.
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            wal = self.path.with_name(self.path.name + "-wal")
            shm = self.path.with_name(self.path.name + "-shm")
            if not shm.exists() and _why_not_writable(self.home):
                if wal.exists() and wal.stat().st_size > 0:
                    raise CatalogError(
                        f"{wal}: the catalog has changes not yet merged into {self.path.name} and its folder is read-only; "
                        "open it once with any daad command where the folder is writable"
                    )
                uri += "&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            conn.execute("PRAGMA query_only=1")
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _migrate(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(f"{self.path}: schema version {version} is newer than this daad ({SCHEMA_VERSION}); upgrade daad")
        if self.readonly:
            if version < SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path}: " + ("an empty file, not a daad catalog" if version == 0 else
                                        f"schema version {version} is older than this daad's ({SCHEMA_VERSION}); "
                                        "run a writing command (e.g. daad dedupe) once to upgrade it")
                )
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CatalogError(f"{self.path}: schema version {version} is newer than this daad ({SCHEMA_VERSION}); upgrade daad")
            for v in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[v]:
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version={v + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _writing(self) -> None:
        if self.readonly:
            raise CatalogError(f"{self.path}: opened read-only (Catalog(readonly=True)); this change needs a writing open")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or none (nested uses join the outer one)."""
        self._writing()
        db = self._db
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- samples --------------------------------------------------------------------
    def add(self, rec: Record) -> bool:
        """Insert a new sample; returns False (and changes nothing) when the id exists."""
        self._writing()
        now = _now()
        rec.added_at = rec.added_at or now
        rec.updated_at = now
        row = _to_row(rec)
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        cur = self._db.execute(f"INSERT OR IGNORE INTO samples ({cols}) VALUES ({marks})", row)
        return cur.rowcount == 1

    def get(self, sample_id: str) -> Record | None:
        """The record with this id, or with this unique id prefix (as `git` does)."""
        row = self._db.execute("SELECT * FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if row is None and 4 <= len(sample_id) < 64:
            rows = self._db.execute("SELECT * FROM samples WHERE id LIKE ? LIMIT 2", (sample_id + "%",)).fetchall()
            row = rows[0] if len(rows) == 1 else None
        return _from_row(row) if row else None

    def __contains__(self, sample_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM samples WHERE id = ?", (sample_id,)).fetchone() is not None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def find(
        self,
        anomaly_class: str | None = None,
        source: str | None = None,
        origin: str | None = None,
        mask_status: str | None = None,
        representatives_only: bool = False,
        leaks: str | None = None,
    ) -> list[Record]:
        """Records matching every given filter, in the order they were added.

        `origin` matches any of a record's origins (an MVTec AD image also collected as a
        photo is found under both).
        """
        where, args = [], []
        for col, val in (("anomaly_class", anomaly_class), ("source", source), ("mask_status", mask_status)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if origin is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(samples.origins) WHERE json_extract(value, '$.origin') = ?)")
            args.append(origin)
        if representatives_only:
            where.append("duplicate_of IS NULL")
        if leaks is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(samples.leaks) WHERE value = ?)")
            args.append(leaks)
        sql = "SELECT * FROM samples" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY added_at, id"
        return [_from_row(r) for r in self._db.execute(sql, args)]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.find())

    def update(self, sample_id: str, who: str = "daad", **fields: Any) -> Record:
        """Change fields of one sample and log each change (who, when, old, new) in `events`.

        Changing an origin field (say `license`) without passing `origins` changes it in
        the governing origin's entry too, so `origins` never contradicts the record.
        """
        bad = set(fields) - set(FIELDS) or ({"id"} & set(fields))
        if bad:
            raise ValueError(f"cannot update field(s) {sorted(bad)}")
        with self.transaction():
            rec = self.get(sample_id)
            if rec is None:
                raise KeyError(f"no sample {sample_id}")
            old = rec.to_dict()
            if "origins" not in fields and set(fields) & set(ORIGIN_FIELDS):
                key = origin_key(rec.origin_fields())
                fields["origins"] = [{**o, **{k: v for k, v in fields.items() if k in ORIGIN_FIELDS}} if origin_key(o) == key else o
                                     for o in rec.origins]
            new = {**old, **fields, "updated_at": _now()}
            updated = Record(**new)  # validates classes, statuses, mask consistency
            changed = {k: v for k, v in fields.items() if old[k] != v}
            if not changed:
                return rec
            row = _to_row(updated)
            sets = ", ".join(f"{k} = :{k}" for k in [*changed, "updated_at"])
            self._db.execute(f"UPDATE samples SET {sets} WHERE id = :id", row)
            for k in changed:
                self._db.execute(
                    "INSERT INTO events (sample_id, field, old, new, who, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (rec.id, k, json.dumps(old[k]), json.dumps(fields[k]), who, row["updated_at"]),
                )
            return updated

    def set_hashes(self, hashes: Sequence[tuple[str, str, str]], who: str = "daad") -> dict[str, Record]:
        """Store (id, phash, dhash) of many samples in one transaction, logging each change as `update` does.

        Returns the changed records by id (unchanged ones, and ids the catalog does not
        hold, are left out). Why not `update`
        per sample: it reads, validates and rewrites the whole row, 1.7 ms a sample
        (388 samples: 0.67 s of a 4.4 s profiled publish); hashes are plain strings that
        need none of that, so this reads the old values and writes the changes in batches.
        """
        out: dict[str, Record] = {}
        want = {i: (p, d) for i, p, d in hashes}
        ids = list(want)
        with self.transaction():
            now = _now()
            updates, events = [], []
            for row in self._rows_in("SELECT * FROM samples WHERE id", ids):
                p, d = want[row["id"]]
                changed = {k: v for k, v in (("phash", p), ("dhash", d)) if row[k] != v}
                if not changed:
                    continue
                rec = _from_row(row)
                updates.append((p, d, now, rec.id))
                events += [(rec.id, k, json.dumps(row[k]), json.dumps(v), who, now) for k, v in changed.items()]
                rec.phash, rec.dhash, rec.updated_at = p, d, now
                out[rec.id] = rec
            self._db.executemany("UPDATE samples SET phash = ?, dhash = ?, updated_at = ? WHERE id = ?", updates)
            self._db.executemany("INSERT INTO events (sample_id, field, old, new, who, at) VALUES (?, ?, ?, ?, ?, ?)", events)
        return out

    def _rows_in(self, select: str, values: list[str]) -> Iterator[sqlite3.Row]:
        """The rows of `select` + " IN (values)", queried 500 values at a time (under SQLite's bound-parameter limit)."""
        for s in range(0, len(values), 500):
            part = values[s : s + 500]
            yield from self._db.execute(f"{select} IN ({', '.join('?' * len(part))})", part).fetchall()

    def mask_boxes(self, mask_shas: Iterable[str]) -> dict[str, list[int]]:
        """The stored boxes of these masks, by sha (masks with none stored yet are left out)."""
        rows = self._rows_in("SELECT mask_sha, box FROM mask_boxes WHERE mask_sha", list(dict.fromkeys(mask_shas)))
        return {r[0]: json.loads(r[1]) for r in rows}

    def set_mask_boxes(self, boxes: Iterable[tuple[str, list[int]]]) -> None:
        """Store (mask sha, box) pairs in one transaction; a box already stored stays (same bytes, same box).

        No events: a box is derived from the mask's bytes, which the record's `mask_sha`
        (logged when it changes) already names.
        """
        with self.transaction():
            self._db.executemany("INSERT OR IGNORE INTO mask_boxes (mask_sha, box) VALUES (?, ?)",
                                 ((sha, json.dumps(list(box))) for sha, box in boxes))

    def events(self, sample_id: str) -> list[dict[str, Any]]:
        """The change log of one sample, oldest first."""
        rows = self._db.execute("SELECT * FROM events WHERE sample_id = ? ORDER BY seq", (sample_id,))
        return [{**dict(r), "old": json.loads(r["old"]), "new": json.loads(r["new"])} for r in rows]

    def count_meta(self, origin: str, key: str, value: str) -> int:
        """How many samples of `origin` have `meta[key] == value` (e.g. the images a search query added)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM samples WHERE origin = ? AND json_extract(meta, '$.' || ?) = ?", (origin, key, value)
        ).fetchone()
        return row[0]

    def counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """{(anomaly_class, source): {"samples": n, "with_mask": m}} over all samples."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for r in self._db.execute(
            "SELECT anomaly_class, source, COUNT(*) n, SUM(mask_sha IS NOT NULL) m FROM samples GROUP BY anomaly_class, source"
        ):
            out[(r["anomaly_class"], r["source"])] = {"samples": r["n"], "with_mask": r["m"]}
        return out

    # -- small named states (resumable work) ------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        self._writing()
        self._db.execute(
            "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), _now()),
        )

    # -- URLs a collector has tried ---------------------------------------------------
    def url_seen(self, provider: str, url: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM seen_urls WHERE provider = ? AND url = ?", (provider, url)).fetchone()
        return dict(row) if row else None

    def mark_url(self, provider: str, url: str, outcome: str, sample_id: str | None = None, reason: str = "") -> None:
        self._writing()
        self._db.execute(
            "INSERT OR REPLACE INTO seen_urls (provider, url, sample_id, outcome, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
            (provider, url, sample_id, outcome, reason, _now()),
        )

    # -- evaluation datasets' hashes (leakage) ----------------------------------------
    def put_eval_hashes(self, dataset: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Cache (ref, phash, dhash) of an evaluation dataset's images, replacing the old cache."""
        with self.transaction():
            self._db.execute("DELETE FROM eval_hashes WHERE dataset = ?", (dataset,))
            self._db.executemany(
                "INSERT INTO eval_hashes (dataset, ref, phash, dhash) VALUES (?, ?, ?, ?)",
                ((dataset, ref, p, d) for ref, p, d in rows),
            )

    def eval_hashes(self, dataset: str) -> list[tuple[str, str, str]]:
        rows = self._db.execute("SELECT ref, phash, dhash FROM eval_hashes WHERE dataset = ? ORDER BY ref", (dataset,))
        return [(r["ref"], r["phash"], r["dhash"]) for r in rows]

    def eval_datasets(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT dataset FROM eval_hashes ORDER BY dataset")]

    # -- which samples were checked against an evaluation dataset's cached hashes --------
    def leak_checked(self, dataset: str, fingerprint: str) -> set[str]:
        """Ids of the samples already checked against `dataset`'s hashes of this fingerprint."""
        rows = self._db.execute("SELECT sample_id FROM leak_checks WHERE dataset = ? AND fingerprint = ?", (dataset, fingerprint))
        return {r[0] for r in rows}

    def mark_leak_checked(self, dataset: str, fingerprint: str, sample_ids: Iterable[str]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO leak_checks (dataset, sample_id, fingerprint) VALUES (?, ?, ?)",
            ((dataset, sid, fingerprint) for sid in sample_ids),
        )
