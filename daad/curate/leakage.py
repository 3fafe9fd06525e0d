"""Leakage marking: which DAAD samples an evaluation dataset's test would have seen.

A detector evaluated on dataset X must never train on X through DAAD, and web search
returns MVTec images too. `mark_leakage("mvtec_ad", root)` hashes *every* image of X
through its adapter's `iter_all_images` (normal and anomalous, train and test), and adds
X to `leaks` of every sample whose origin is X or whose distance (hamming(pHash) +
hamming(dHash), the same as dedupe's) to any image of X is at most k.

The evaluation hashes are cached in the catalog (`eval_hashes`) with a fingerprint of
the dataset folder (every image's relative path, size and mtime, and the hash version)
kept as state `eval_hashes:<name>`; a changed folder is hashed again, an unchanged one
is not read at all. Marking only adds: a name is never removed from `leaks` here, since
a curator may have added it by hand (the event log shows who did what).

A sample's own leak is any of its dataset origins (a record keeps every origin its bytes
came from). Every sample checked against a dataset's cached hashes is recorded with that
cache's fingerprint (`leak_checks`), so `refresh_leakage` (run by every publish) checks
exactly the samples collected since, and those of a re-hashed dataset, against the cache
without reading the dataset folder again: an `exclude_<x>` config is never stale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from daad.curate import hashing
from daad.core.catalog import Catalog
from daad.curate.dedupe import DEFAULT_K, CatalogHashes, catalog_hashes
from daad.core.media_store import MediaStore
from daad.core.names import one_line
from daad.curate.near_duplicates import get_searcher
from daad.engine import Engine

HASH_VERSION = "phash+dhash/imagehash-4.3/v1"


@dataclass
class LeakMatch:
    sample_id: str
    origin: str
    origin_ref: str
    eval_ref: str  # nearest image of the evaluation dataset
    distance: int


@dataclass
class LeakageReport:
    dataset: str
    eval_images: int
    cached: bool
    samples: int
    by_origin: int  # samples whose origin is the dataset
    matches: list[LeakMatch]  # samples of other origins within k
    newly_marked: int
    k: int
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: {self.eval_images} evaluation images ({'cached hashes' if self.cached else 'hashed now'}), "
            f"{self.samples} samples checked with k={self.k}",
            f"leaks {self.dataset}: {self.by_origin} by origin, {len(self.matches)} near-duplicates from other origins; "
            f"{self.newly_marked} newly marked",
        ]
        for m in sorted(self.matches, key=lambda m: (m.distance, m.sample_id)):
            lines.append(f"  {m.sample_id[:12]} {m.origin} {m.origin_ref} ~ {m.eval_ref} distance {m.distance}")
        lines += [f"bad: {one_line(e)}" for e in self.errors]
        return "\n".join(lines)


def _fingerprint(images: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256(HASH_VERSION.encode())
    for ref, path in sorted(images):
        st = path.stat()
        h.update(f"{ref}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def eval_hashes(
    name: str, root: Union[str, Path], catalog: Catalog, progress: bool = True, fast: bool = False,
    engine: Engine | None = None,
) -> tuple[list[tuple[str, str, str]], bool, list[str]]:
    """(rows (ref, phash, dhash), from_cache, errors) of every image of evaluation dataset `name` at `root`.

    `fast` hashes (not imagehash's) neither come from nor go to the cache.
    `engine` decides where the images are hashed (on a Ray cluster every node must see
    `root`); the hashes are stored in the catalog by this process only.
    """
    from daad.collectors.datasets import find_root, get_adapter

    adapter = get_adapter(name)
    root = find_root(adapter.name, Path(root).expanduser())
    images = list(adapter.iter_all_images(root))
    key = f"eval_hashes:{adapter.name}"
    fp = _fingerprint(images)
    state = catalog.get_state(key) or {}
    if state.get("fingerprint") == fp and not fast:
        return catalog.eval_hashes(adapter.name), True, []
    if engine is not None:
        engine.check_paths(readable=[root])
    h = hashing.hash_files([p for _, p in images], progress=progress, desc=f"hash {adapter.name}", fast=fast, engine=engine)
    rows = [(ref, hashing.to_hex(p), hashing.to_hex(d)) for (ref, _), p, d, ok in zip(images, h.phash, h.dhash, h.ok) if ok]
    if fast:
        return rows, False, h.errors
    with catalog.transaction():
        catalog.put_eval_hashes(adapter.name, rows)
        catalog.set_state(key, {"fingerprint": fp, "root": str(root.resolve()), "images": len(images), "hashed": len(rows)})
    return rows, False, h.errors


def _nearest(h: CatalogHashes, rows: list[tuple[str, str, str]], k: int, method: str) -> dict[int, tuple[int, int]]:
    """{index into h.records: (distance, index into rows)} of the nearest evaluation image within k."""
    ep = hashing.hex_array(r[1] for r in rows)
    ed = hashing.hex_array(r[2] for r in rows)
    if h.phash_variants is not None and h.dhash_variants is not None:
        q, j, dist = get_searcher(method).cross_pairs(h.phash_variants.reshape(-1), h.dhash_variants.reshape(-1), ep, ed, k)
        i = q // 8
    else:
        i, j, dist = get_searcher(method).cross_pairs(h.phash, h.dhash, ep, ed, k)
    nearest: dict[int, tuple[int, int]] = {}
    for a, b, d in zip(i.tolist(), j.tolist(), dist.tolist()):
        if a not in nearest or d < nearest[a][0]:
            nearest[a] = (d, b)
    return nearest


def _mark(
    name: str, rows: list[tuple[str, str, str]], h: CatalogHashes, k: int, method: str, catalog: Catalog, who: str, fingerprint: str
) -> tuple[list[LeakMatch], int, int]:
    """Add `name` to `leaks` of h's records from it or within k of `rows`; record them as checked.

    Returns (matches from other origins, samples from it, samples newly marked).
    """
    nearest = _nearest(h, rows, k, method) if rows and h.records else {}
    matches, by_origin, newly = [], 0, 0
    with catalog.transaction():
        for idx, rec in enumerate(h.records):
            own = name in rec.dataset_origins
            by_origin += own
            if idx in nearest and not own:
                d, b = nearest[idx]
                matches.append(LeakMatch(rec.id, rec.origin, rec.origin_ref, rows[b][0], d))
            if (own or idx in nearest) and name not in rec.leaks:
                catalog.update(rec.id, who=who, leaks=sorted([*rec.leaks, name]))
                newly += 1
        catalog.mark_leak_checked(name, fingerprint, (r.id for r in h.records))
    return matches, by_origin, newly


def mark_leakage(
    name: str,
    root: Union[str, Path],
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    k: int = DEFAULT_K,
    variants: bool = False,
    method: str = "mih",
    progress: bool = True,
    who: str = "leakage",
    fast: bool = False,
    engine: Engine | None = None,
) -> LeakageReport:
    """Add `name` to `leaks` of every sample from it or within k of any of its images.

    `variants` also matches mirrored/rotated copies (each sample's 8 dihedral variants
    are compared with the dataset's images). `fast` hashes both sides with JPEGs
    downscaled while decoding (see `hashing.decode_grey`), stored nowhere. `engine` decides
    where images are hashed (default: processes here); matching and catalog writes stay in
    this process. Raises LayoutError when `root` is not the dataset, ValueError for an unknown name.
    """
    from daad.collectors.datasets import get_adapter

    name = get_adapter(name).name
    catalog = Catalog() if catalog is None else catalog
    store = MediaStore(catalog.home) if store is None else store
    rows, cached, eval_errors = eval_hashes(name, root, catalog, progress, fast, engine=engine)
    key = f"eval_hashes:{name}"
    state = catalog.get_state(key) or {}
    if state.get("k") != k:
        catalog.set_state(key, {**state, "k": k})  # what a later refresh_leakage matches with
    h = catalog_hashes(catalog, store, variants=variants, progress=progress, who=who, fast=fast, engine=engine)
    matches, by_origin, newly = _mark(name, rows, h, k, method, catalog, who, state.get("fingerprint", ""))
    return LeakageReport(name, len(rows), cached, len(h.records), by_origin, matches, newly, k, eval_errors + h.errors)


@dataclass
class RefreshReport:
    """What `refresh_leakage` did for one evaluation dataset with cached hashes."""

    dataset: str
    checked: int  # samples not checked against this cache before
    matches: list[LeakMatch]
    newly_marked: int
    errors: list[str] = field(default_factory=list)


def refresh_leakage(
    catalog: Catalog, store: MediaStore | None = None, method: str = "mih", progress: bool = True, who: str = "leakage:publish"
) -> list[RefreshReport]:
    """Check every sample not yet checked against each hashed evaluation dataset's cache.

    Uses the cached hashes only (the datasets' folders are not needed) and the k of the
    dataset's last `mark_leakage` (DEFAULT_K before one recorded it); samples not hashed
    yet are hashed now. Datasets never hashed are not checked here: their leaks are by
    origin only (see `daad.release.publish`).
    """
    store = MediaStore(catalog.home) if store is None else store
    reports = []
    for name in catalog.eval_datasets():
        state = catalog.get_state(f"eval_hashes:{name}") or {}
        fp = state.get("fingerprint", "")
        done = catalog.leak_checked(name, fp)
        todo = [r for r in catalog.find() if r.id not in done]  # re-read: the last dataset may have stored hashes
        if not todo:
            continue
        h = catalog_hashes(catalog, store, records=todo, progress=progress, who=who)
        matches, _, newly = _mark(name, catalog.eval_hashes(name), h, int(state.get("k", DEFAULT_K)), method, catalog, who, fp)
        reports.append(RefreshReport(name, len(h.records), matches, newly, h.errors))
    return reports


__all__ = ["HASH_VERSION", "LeakMatch", "LeakageReport", "RefreshReport", "eval_hashes", "mark_leakage", "refresh_leakage"]
