"""Near-duplicate clusters in the catalog: keep one representative, mark the others.

The same anomaly arrives many times (re-encoded, resized, cropped, mirrored; the web
re-posts dataset images). `dedupe` hashes every sample (pHash + dHash, `hashing.py`),
finds all pairs within distance k (`near_duplicates.py`, exact, no all-pairs loop),
and takes connected components as clusters, each split into stars around
representatives so that no duplicate is further than k from its representative
(`_split`: single linkage would chain distinct look-alike images through their
copies). Nothing is deleted: in each cluster the representative keeps `duplicate_of =
None`, every other member gets `duplicate_of = <representative id>` and the tag
`duplicate`; publish skips them. Re-running is
idempotent and also releases samples that are no longer in any cluster.

Representative rule (best first): ground-truth mask > annotated mask > proposed mask >
no mask; then the larger image (pixels); then source priority existing_dataset >
photograph > online_search (known provenance and licence first); then the earlier
added sample, then the smaller id (so the choice is deterministic).

Default k = 8 on the 128-bit distance hamming(pHash) + hamming(dHash), measured on the
real images of ../shared/data (`python benchmarks/dedupe.py --measure-k`): the 16
distinct MVTec AD anomaly images (bottle, capsule) are as close as 9 to each other
(pHash alone: 2, dHash alone: 0, so neither hash alone can separate them), while
planted copies of them are at most: JPEG q60 2, 50% resize 4, centred 2% crop 7,
brightness +10% 4, 75% resize + JPEG q80 4, horizontal flip 0 (with the 8 dihedral
variants). k = 8 is the largest threshold that pairs no two distinct MVTec anomalies.
Limits, measured by the benchmark: over all real data ~84-95% of planted copies are
found per plant (low-contrast images such as glass_industrial move most); and copies of
two *different* look-alike anomalies can come within 8 of each other even though the
originals are 9 apart (the star split below keeps the originals apart when present).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from daad.curate import hashing

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore
from daad.curate.near_duplicates import get_searcher
from daad.core.record import Record
from daad.engine import Engine
from daad.core.names import one_line

DEFAULT_K = 8
DUPLICATE_TAG = "duplicate"
_MASK_RANK = {taxonomy.GROUND_TRUTH: 3, taxonomy.ANNOTATED: 2, taxonomy.PROPOSED: 1, taxonomy.MISSING: 0}
_SOURCE_RANK = {taxonomy.EXISTING_DATASET: 2, taxonomy.PHOTOGRAPH: 1, taxonomy.ONLINE_SEARCH: 0}


@dataclass
class CatalogHashes:
    """Hashes of catalog records, aligned with `records` (variants when asked for)."""

    records: list[Record]
    phash: np.ndarray
    dhash: np.ndarray
    phash_variants: np.ndarray | None = None
    dhash_variants: np.ndarray | None = None
    errors: list[str] = field(default_factory=list)


def catalog_hashes(
    catalog: Catalog,
    store: MediaStore,
    records: Sequence[Record] | None = None,
    variants: bool = False,
    progress: bool = True,
    who: str = "dedupe",
    fast: bool = False,
    engine: Engine | None = None,
) -> CatalogHashes:
    """Hashes of `records` (default: all), computing and storing those not in the catalog yet.

    With `variants` every image is read again (the 8 dihedral variants are not stored).
    With `fast` too, and its hashes (JPEGs downscaled while decoding, not imagehash's) are
    used for this run only, never stored. Records whose image cannot be read are left
    out and named in `errors`. `engine`
    decides where images are hashed; the catalog is written here only (one writer).
    """
    recs = list(catalog.find() if records is None else records)
    if fast:
        h = hashing.hash_files([store.image_path(r.id) for r in recs], variants=variants, progress=progress, desc="hash (fast)", fast=True)
        pv, dv = _variants(h, h.ok) if variants else (None, None)
        return CatalogHashes([r for r, good in zip(recs, h.ok) if good], h.phash[h.ok], h.dhash[h.ok], pv, dv, h.errors)
    todo = list(range(len(recs))) if variants else [i for i, r in enumerate(recs) if not (r.phash and r.dhash)]
    errors: list[str] = []
    ok = np.ones(len(recs), bool)
    pv = dv = None
    if todo:
        if engine is not None:
            engine.check_paths(readable=[store.root])
        h = hashing.hash_files([store.image_path(recs[i].id) for i in todo], variants=variants, progress=progress, desc="hash",
                               engine=engine)
        errors = h.errors
        rows = []
        for n, i in enumerate(todo):
            if h.ok[n]:
                rows.append((recs[i].id, hashing.to_hex(h.phash[n]), hashing.to_hex(h.dhash[n])))
            else:
                ok[i] = False
        changed = catalog.set_hashes(rows, who=who)  # one transaction, batched statements
        recs = [changed.get(r.id, r) for r in recs]
        if variants:
            pv, dv = _variants(h, ok[todo])  # todo covers every record here
    recs = [r for r, good in zip(recs, ok) if good]
    return CatalogHashes(recs, hashing.hex_array(_stored(r.phash) for r in recs), hashing.hex_array(_stored(r.dhash) for r in recs),
                         pv, dv, errors)


def _variants(h: hashing.Hashes, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept rows of the variant hashes of a `hash_files(..., variants=True)` result."""
    assert h.phash_variants is not None and h.dhash_variants is not None, "hashed without variants"
    return h.phash_variants[keep], h.dhash_variants[keep]


def _stored(value: str | None) -> str:
    """A hash of a kept record: it was in the catalog already, or stored just above."""
    assert value is not None, "a kept record without its hash"
    return value


def near_pairs(h: CatalogHashes, k: int = DEFAULT_K, method: str = "mih") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance), i < j, of every pair within k; with variants, the smallest distance over the 8 of i's."""
    searcher = get_searcher(method)
    if h.phash_variants is None or h.dhash_variants is None:  # both or neither
        return searcher.self_pairs(h.phash, h.dhash, k)
    n = len(h.records)
    q, j, dist = searcher.cross_pairs(h.phash_variants.reshape(-1), h.dhash_variants.reshape(-1), h.phash, h.dhash, k)
    i = q // 8
    keep = i != j
    i, j, dist = i[keep], j[keep], dist[keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    codes = lo * n + hi
    order = np.lexsort((dist, codes))
    codes, dist = codes[order], dist[order]
    first = np.ones(len(codes), bool)
    first[1:] = codes[1:] != codes[:-1]
    codes, dist = codes[first], dist[first]
    return codes // n, codes % n, dist


def representative_key(rec: Record) -> tuple:
    """Sort key of the representative rule: the smallest key is kept (see the module docstring)."""
    return (-_MASK_RANK[rec.mask_status], -(rec.width * rec.height), -_SOURCE_RANK[rec.source], rec.added_at, rec.id)


@dataclass
class Cluster:
    representative: Record
    members: list[Record]  # the others, nearest first
    distances: list[int]  # distance of each member to the representative (best of 8 variants with --variants)


@dataclass
class DedupeReport:
    clusters: list[Cluster]
    samples: int
    k: int
    marked: int = 0  # records whose duplicate_of changed
    released: int = 0  # former duplicates no longer in a cluster (or now a representative)
    errors: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(len(c.members) for c in self.clusters)

    def summary(self, limit: int = 20) -> str:
        lines = [
            f"{self.samples} samples, k={self.k}: {len(self.clusters)} clusters, {self.duplicates} duplicates marked "
            f"({self.marked} changed, {self.released} released)"
        ]
        for n, c in enumerate(sorted(self.clusters, key=lambda c: -len(c.members))[:limit]):
            r = c.representative
            lines.append(f"cluster {n + 1}: keep {r.id[:12]} {r.origin} {r.origin_ref} ({r.width}x{r.height}, mask {r.mask_status})")
            for m, d in zip(c.members, c.distances):
                lines.append(f"  dup  {m.id[:12]} {m.origin} {m.origin_ref} distance {d}")
        if len(self.clusters) > limit:
            lines.append(f"... {len(self.clusters) - limit} more clusters")
        lines += [f"bad: {one_line(e)}" for e in self.errors]
        return "\n".join(lines)


def _split(members: list[int], recs: list[Record], near: dict[tuple[int, int], int]) -> list[tuple[int, list[int]]]:
    """Split one connected component into (representative, duplicates) stars.

    Single linkage chains: two distinct capsules 9 apart whose JPEG copies are 7 from
    both would fall into one component. So, in representative order, a member becomes a
    representative unless it is within k of one already chosen; then every other
    member joins its nearest representative (ties: the better-ranked one). Every
    duplicate is thus within k of the sample it is marked a duplicate of.
    """
    ranked = sorted(members, key=lambda m: representative_key(recs[m]))
    reps: list[int] = []
    for m in ranked:
        if not any((m, r) in near for r in reps):
            reps.append(m)
    stars: dict[int, list[int]] = {r: [] for r in reps}
    for m in ranked:
        if m in stars:
            continue
        best = min((near[(m, r)], pos) for pos, r in enumerate(reps) if (m, r) in near)
        stars[reps[best[1]]].append(m)
    return [(r, others) for r, others in stars.items() if others]


def dedupe(
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    k: int = DEFAULT_K,
    variants: bool = False,
    method: str = "mih",
    progress: bool = True,
    who: str = "dedupe",
    fast: bool = False,
    engine: Engine | None = None,
) -> DedupeReport:
    """Cluster the whole catalog by near-duplicate hashes and mark all but one per cluster (`fast`: see `catalog_hashes`)."""
    catalog = Catalog() if catalog is None else catalog
    store = MediaStore(catalog.home) if store is None else store
    h = catalog_hashes(catalog, store, variants=variants, progress=progress, who=who, fast=fast, engine=engine)
    recs = h.records
    n = len(recs)
    i, j, dist = near_pairs(h, k, method)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, label = connected_components(graph, directed=False) if n else (0, np.zeros(0, int))
    near: dict[tuple[int, int], int] = {}
    for a, b, d in zip(i.tolist(), j.tolist(), dist.tolist()):
        near[(a, b)] = near[(b, a)] = d
    components: dict[int, list[int]] = {}
    for idx, lab in enumerate(label.tolist()):
        components.setdefault(lab, []).append(idx)
    clusters: list[Cluster] = []
    want: dict[str, str | None] = {r.id: None for r in recs}
    for members in components.values():
        if len(members) < 2:
            continue
        for rep, others in _split(members, recs, near):
            ranked = sorted(others, key=lambda m: (near[(rep, m)], representative_key(recs[m])))
            clusters.append(Cluster(recs[rep], [recs[m] for m in ranked], [near[(rep, m)] for m in ranked]))
            for m in others:
                want[recs[m].id] = recs[rep].id
    marked = released = 0
    with catalog.transaction():
        for r in recs:
            target = want[r.id]
            tags = [t for t in r.tags if t != DUPLICATE_TAG] + ([DUPLICATE_TAG] if target else [])
            if r.duplicate_of != target or r.tags != tags:
                catalog.update(r.id, who=who, duplicate_of=target, tags=tags)
                if target:
                    marked += 1
                else:
                    released += 1
    return DedupeReport(clusters, n, k, marked, released, h.errors)


def contact_sheet(report: DedupeReport, store: MediaStore, out: Union[str, Path], clusters: int = 8, per_row: int = 8, thumb: int = 128) -> Path:
    """A PNG with one row per largest cluster: the representative (green frame) then its duplicates with distances."""
    from PIL import Image, ImageDraw

    chosen = sorted(report.clusters, key=lambda c: -len(c.members))[:clusters]
    label_h = 16
    rows = max(1, len(chosen))
    cols = min(per_row, max([len(c.members) + 1 for c in chosen], default=per_row))
    sheet = Image.new("RGB", (cols * (thumb + 4) + 4, rows * (thumb + label_h + 6) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    if not chosen:
        draw.text((8, 8), "no near-duplicate clusters", fill="black")
    for row, c in enumerate(chosen):
        y = 4 + row * (thumb + label_h + 6)
        items = [(c.representative, "keep")] + [(m, f"d={d}") for m, d in zip(c.members, c.distances)]
        for col, (rec, label) in enumerate(items[:cols]):
            x = 4 + col * (thumb + 4)
            with Image.open(store.image_path(rec.id)) as im:
                im = im.convert("RGB")
                im.thumbnail((thumb, thumb))
            sheet.paste(im, (x + (thumb - im.width) // 2, y + (thumb - im.height) // 2))
            if col == 0:
                draw.rectangle([x - 2, y - 2, x + thumb + 1, y + thumb + 1], outline=(0, 160, 0), width=3)
            extra = f" +{len(items) - cols}" if col == cols - 1 and len(items) > cols else ""
            draw.text((x + 2, y + thumb + 2), f"{label} {rec.origin}"[:22] + extra, fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    sheet.save(tmp, format="PNG")
    tmp.replace(out)
    return out
