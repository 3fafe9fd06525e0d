"""The one path from a collector's items into the store and the catalog.

Collectors are readers: they yield `Item`s (or `Skip`s for things they recognise but
must not collect). `ingest` normalises, stores and catalogs each item, one at a time
and each in its own transaction, so an interrupted run keeps everything finished so
far and a re-run only does what is left. Bad items are reported and skipped.

Bytes that are already stored (the same normalised image) arriving from another origin
(an MVTec AD image first collected as a web photo, then by `collect dataset mvtec_ad`)
add that origin to the record instead of being dropped: the record then publishes under
its governing origin (`daad.core.record.governing_origin`), so the dataset's licence and
name win over the copy's. An unassigned class or a missing mask is taken from the item.

A new record gets its pHash and dHash here (`daad.core.perceptual`, when scipy is
installed), from the normalised image ingest holds anyway: no second decode, only the
grey conversion, two thumbnails and a DCT, so publish and dedupe find every hash stored.
They are the hashes of the stored PNG (same pixels), i.e. imagehash's. Measured
(benchmarks/publish.py, 388 Magnetic Tile defects): hashing the decoded images costs
0.46 CPU s, 7% of their 6.7 s ingest (most of which is the PNG encoding), and saves
publish 0.90 CPU s (the decode it no longer needs, and its whole hash step); `daad
collect dataset` end to end, 3 interleaved rounds against main: Magnetic Tile 8.15
against 7.30 CPU s, MVTec AD (bottle, capsule) 7.84 against 7.27 (+8-12%, with
importing scipy).

Each mask's box (`daad.core.mask_box.image_box`: the release's `mask_box` column) is
stored too, from the mask ingest holds after checking it, so publish decodes no mask:
before, publish decoded every mask to find its box (0.1 s for 388 Magnetic Tile masks,
what moved a publish from 1.09x to 1.54x pyarrow's time in benchmarks/publish.py).

A mask that marks no pixel makes its item bad: every collected mask is an anomaly mask,
and an empty one is a wrong file (a normal image's mask, an export that lost its layer),
which published as `annotated` or `ground_truth` would teach a model that the anomaly is
nowhere. Names reach the catalog as text (`daad.core.names.as_text`) and reports quote
them (`shown`), whatever bytes the file system holds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Union

from tqdm import tqdm

from daad.core import perceptual, taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import BadItemError
from daad.core.text_table import format_table
from daad.core.images import ImageSource, load_image, load_mask, require_anomaly
from daad.core.mask_box import image_box
from daad.core.media_store import MediaStore
from daad.core.names import as_text, one_line, shown
from daad.core.record import Record, origin_key, origins_update


# A mask, or a function that reads one when the item is ingested: adapters whose publishers
# ship masks in their own formats (CrackForest's .mat/.seg, MVTec LOCO's several PNGs per
# image) decode them one item at a time instead of holding every mask of a dataset in memory;
# the function raises BadMaskError naming the files and the reason.
MaskSource = Union[ImageSource, Callable[[], ImageSource]]


@dataclass
class Item:
    """One anomaly image a collector found, with everything the record needs."""

    image: ImageSource
    name: str  # how reports name it: a path or a URL
    source: str
    origin: str
    anomaly_class: str = taxonomy.UNASSIGNED
    mask: MaskSource | None = None
    mask_status: str = taxonomy.GROUND_TRUTH  # what a given mask is; ignored without a mask
    mask_binarize: bool = False
    mask_threshold: int = 128
    origin_label: str = ""
    origin_ref: str = ""
    license: str = ""
    attribution: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skip:
    """Something a collector recognised and deliberately does not collect (and why)."""

    name: str
    reason: str
    label: str = ""


@dataclass
class Outcome:
    name: str
    status: str  # added | existing | mask_added | origin_added | skipped | bad
    sample_id: str | None = None
    reason: str = ""
    anomaly_class: str = ""


@dataclass
class CollectReport:
    """What a collect did, per item and per class: the thing to print at the end."""

    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.outcomes.append(o)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def added(self) -> list[str]:
        return [o.sample_id for o in self.outcomes if o.status == "added" and o.sample_id]

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "bad"]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    def by_class(self) -> dict[str, Counter]:
        table: dict[str, Counter] = defaultdict(Counter)
        for o in self.outcomes:
            table[o.anomaly_class or "-"][o.status] += 1
        return dict(table)

    def summary(self) -> str:
        """A table (class x outcome) followed by one line per bad or skipped item."""
        cols = ["added", "existing", "mask_added", "skipped", "bad"]
        if self.count("origin_added"):  # shown only when it happened, so the usual table stays as it was
            cols.insert(3, "origin_added")
        rows = self.by_class()
        total = Counter(o.status for o in self.outcomes)
        table = [[cls, *(rows[cls][c] for c in cols)] for cls in sorted(rows)] + [["total", *(total[c] for c in cols)]]
        lines = [format_table(["class", *cols], table, min_width=[0] + [10] * len(cols))]
        for o in self.outcomes:
            if o.status in ("bad", "skipped"):
                lines.append(f"{o.status}: {shown(o.name)}: {one_line(o.reason)}")
        return "\n".join(lines)


def ingest_one(item: Item, catalog: Catalog, store: MediaStore, hashes: bool | None = None) -> Outcome:
    """Store and catalog one item; raises BadItemError for an unusable image or mask.

    `hashes`: compute a new record's pHash/dHash (default: when scipy is installed).
    """
    # Check image and mask both before storing either: a bad mask must not leave an orphan image.
    im = load_image(item.image, item.name)
    mask = None
    if item.mask is not None:
        mask_name = str(item.mask) if isinstance(item.mask, (str, Path)) else f"{item.name} (mask)"
        src = item.mask() if callable(item.mask) else item.mask
        mask = load_mask(src, im.size, mask_name, item.mask_binarize, item.mask_threshold)
        try:
            require_anomaly(mask, mask_name)
        except BadItemError as exc:
            raise BadItemError(item.name, f"its mask {shown(mask_name)} is empty (all zero): an anomaly mask that marks no anomaly; fix or remove the mask") from exc
    sample_id, im = store.put_image(im, item.name)
    mask_sha = store.put_mask(mask, im.size) if mask is not None else None
    if mask is not None and mask_sha is not None:
        catalog.set_mask_boxes([(mask_sha, image_box(mask))])
    existing = catalog.get(sample_id) if sample_id in catalog else None
    if existing is not None:
        return _merge(existing, item, mask_sha, catalog)
    ph, dh = perceptual.image_hashes(im) if (perceptual.available() if hashes is None else hashes) else (None, None)
    rec = Record(
        id=sample_id,
        width=im.width,
        height=im.height,
        source=item.source,
        origin=as_text(item.origin),
        anomaly_class=item.anomaly_class,
        mask_sha=mask_sha,
        mask_status=item.mask_status if mask_sha else taxonomy.MISSING,
        origin_label=as_text(item.origin_label),
        origin_ref=as_text(item.origin_ref or item.name),
        license=item.license,
        attribution=as_text(item.attribution),
        meta=item.meta,
        phash=ph,
        dhash=dh,
    )
    status = "added" if catalog.add(rec) else "existing"  # another process may have won the race
    return Outcome(item.name, status, sample_id, anomaly_class=rec.anomaly_class)


def _item_origin(item: Item) -> dict[str, str]:
    return {
        "source": item.source, "origin": item.origin, "origin_label": item.origin_label,
        "origin_ref": item.origin_ref or item.name, "license": item.license, "attribution": item.attribution,
    }


def _merge(existing: Record, item: Item, mask_sha: str | None, catalog: Catalog) -> Outcome:
    """Stored bytes seen again: add the item's origin, and a mask or class the record lacks."""
    changes: dict[str, Any] = {}
    new = _item_origin(item)
    if origin_key(new) not in {origin_key(o) for o in existing.origins}:
        changes.update(origins_update([*existing.origins, new]))
    if existing.mask_sha is None and mask_sha is not None:
        changes.update(mask_sha=mask_sha, mask_status=item.mask_status)
    if existing.anomaly_class == taxonomy.UNASSIGNED and item.anomaly_class != taxonomy.UNASSIGNED:
        changes["anomaly_class"] = item.anomaly_class
    if not changes:
        return Outcome(item.name, "existing", existing.id, anomaly_class=existing.anomaly_class)
    with catalog.transaction():  # re-read inside: another process may have added the same origin meanwhile
        current = catalog.get(existing.id)
        assert current is not None
        if current.to_dict() != existing.to_dict():
            return _merge(current, item, mask_sha, catalog)
        rec = catalog.update(existing.id, who=f"collect:{item.origin}", **changes)
    status = "mask_added" if "mask_sha" in changes else ("origin_added" if "origins" in changes else "existing")
    return Outcome(item.name, status, rec.id, anomaly_class=rec.anomaly_class)


def ingest(
    items: Iterable[Union[Item, Skip]],
    catalog: Catalog,
    store: MediaStore,
    progress: bool = True,
    total: int | None = None,
    desc: str = "collect",
    hashes: bool | None = None,
) -> CollectReport:
    """Ingest every item, reporting and skipping bad ones; never stops the batch for one item.

    `hashes=False` stores no hashes (what catalogs written before ingest hashed hold;
    benchmarks/publish.py measures publish on such a catalog).
    """
    report = CollectReport()
    bar: Iterable = tqdm(items, total=total, desc=desc, unit="img", disable=not progress)
    for item in bar:
        if isinstance(item, Skip):
            report.add(Outcome(item.name, "skipped", reason=item.reason, anomaly_class=item.label or "-"))
            continue
        try:
            report.add(ingest_one(item, catalog, store, hashes))
        except BadItemError as exc:
            report.add(Outcome(exc.item, "bad", reason=exc.reason, anomaly_class=item.anomaly_class))
    return report
