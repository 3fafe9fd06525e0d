"""`daad publish`: write one version of DAAD as a script-free Hugging Face dataset folder.

Why this shape. Downstream users call `load_dataset("<org>/daad", "exclude_mvtec_ad",
revision="v1.2.0")` (or the same on a local folder) and must never see an image that
leaks the dataset they evaluate on. Hub YAML configs can only *list* data files, never
subtract them, so rows are sharded by **leak group** (the set of evaluation datasets a row
leaks: its origin when it comes from one, plus its `leaks`), one folder per group:

    <out>/v1.2.0/                       one folder per version = one Hub commit + tag v1.2.0
      README.md                         card: YAML configs + dataset_info, tables, licences, changelog
      manifest.json                     id -> content hash (image+mask), mask sha, class, licence, group
      CHANGELOG.md                      this version's changes, then every earlier version's
      fiftyone.yml                      lets fiftyone.utils.huggingface.load_from_hub load the `full` config
      data/no_leak/train-00000-of-00001.parquet
      data/leaks-mvtec_ad/train-00000-of-00002.parquet
      data/leaks-mvtec_ad+visa/...

`full` lists every group folder; `exclude_<x>` lists the folders whose group lacks x.
No image is stored twice. `datasets` cannot load a config with no rows, so when every
published row leaks x, `exclude_<x>` is left out and the card and manifest say so.

Local releases (`local=True`, `daad publish --local`) have the same shape and also hold
images whose licence forbids redistribution or is unknown (still never one without a
class or a reviewed mask, never a near-duplicate): `datasets` and `daad synthesize` read
them like any release, the card says in its first lines that they are for private use
only and lists what may not be redistributed and why, and the manifest says
`"redistributable": false`, which `daad push` refuses. A public release is unchanged.

Leakage is refreshed first (`daad.curate.leakage.refresh_leakage`): every sample not yet
checked against a hashed evaluation dataset's cache is checked now. An evaluation dataset
that was never hashed is excluded by origin only; the card and the summary say so and
name `daad leakage NAME PATH` as the fix.

A version folder is written under a temporary name and renamed into place at the end,
so a killed publish leaves no half version; an existing version is never overwritten.
Rows keep catalog order (oldest first), so new samples mostly land in the last shard of
their group, and shards use parquet content-defined chunking (as `datasets` does), so
unchanged rows give identical data pages that the Hub's Xet storage does not store twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm import tqdm

from daad.core import licenses, taxonomy
from daad.release.fiftyone_config import write_fiftyone_config
from daad.core.atomic import umasked
from daad.core.catalog import Catalog
from daad.release.dataset_card import CardInputs, SourceCard, gating, hub_license, load_source_card, render_card, size_category
from daad.release.format import (
    ReleaseError,
    build_manifest,
    config_name,
    load_manifest,
    parse_version,
    published_folder,  # noqa: F401  (re-exported: daad.release.publish.published_folder)
    published_versions,
    version_name,
)
from daad.core.errors import BadItemError
from daad.core.mask_box import checked_box
from daad.core.media_store import MediaStore
from daad.core.record import Record
from daad.curate.leakage import RefreshReport, refresh_leakage

DEFAULT_SHARD_BYTES = 500 * 1000 * 1000  # the Hub's recommendation for parquet shards
ROWS_PER_ROW_GROUP = 100  # what `datasets` uses for image datasets: the viewer pages by row group
ROW_GROUP_BYTES = 100 * 1000 * 1000  # ... and at most this much image data per row group (big photos)
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}  # as `datasets` writes
NO_LEAK = "no_leak"
SPLIT = "train"
CHANGELOG_TITLE = "# DAAD changelog"
# A `.vX.Y.Z.tmp-*` folder older than this is what a killed or failed publish left: removed at the next publish.
STALE_TMP_S = 3600.0


# Why a catalog row is not published, in the order they are checked (a row counts under its first).
R_DUPLICATE = "near-duplicate of a kept representative"
R_UNASSIGNED = "no anomaly class (unassigned)"
R_MASK_MISSING = "no mask"
R_MASK_PROPOSED = "mask only proposed, not reviewed"
R_MEDIA = "image or mask file missing from the media store"


PublishError = ReleaseError  # a publish that cannot go ahead (bad version, existing version, unreadable manifest)


# -- what gets published -------------------------------------------------------------------
@dataclass
class Selection:
    """The rows to publish and, for every catalog row left out, why."""

    records: list[Record]
    excluded: Counter = field(default_factory=Counter)  # reason -> count
    excluded_ids: dict[str, str] = field(default_factory=dict)  # id -> reason
    private_use: Counter = field(default_factory=Counter)  # local: (origin, licence, why not redistributable) -> rows


def exclusion_reason(rec: Record, store: MediaStore, local: bool = False) -> str:
    """Why `rec` cannot be published, or "" when it can (`local`: whatever its licence)."""
    if rec.duplicate_of is not None:
        return R_DUPLICATE
    if rec.anomaly_class == taxonomy.UNASSIGNED:
        return R_UNASSIGNED
    if rec.mask_status not in (taxonomy.GROUND_TRUTH, taxonomy.ANNOTATED):
        return R_MASK_MISSING if rec.mask_status == taxonomy.MISSING else R_MASK_PROPOSED
    ok, why = licenses.publishable(rec.license)
    if not ok and not local:
        return f"licence not redistributable: {why}"
    if not store.image_path(rec.id).is_file() or not rec.mask_sha or not store.mask_path(rec.mask_sha).is_file():
        return R_MEDIA
    return ""


def select(records: Iterable[Record], store: MediaStore, local: bool = False) -> Selection:
    sel = Selection(records=[])
    for rec in records:
        why = exclusion_reason(rec, store, local)
        if why:
            sel.excluded[why] += 1
            sel.excluded_ids[rec.id] = why
            continue
        sel.records.append(rec)
        ok, restriction = licenses.publishable(rec.license)
        if not ok:
            sel.private_use[(rec.origin, licenses.normalize(rec.license), restriction)] += 1
    return sel


def leak_set(rec: Record) -> frozenset[str]:
    """The evaluation datasets a row leaks: each of its dataset origins, plus its `leaks`."""
    return frozenset(set(rec.dataset_origins) | set(rec.leaks))


def known_eval_datasets(records: Iterable[Record], catalog: Catalog | None = None) -> list[str]:
    """Every evaluation dataset the catalog knows: dataset origins, any `leaks`, hashed eval sets.

    Taken over the whole catalog (not only published rows) so the set of configs does not
    change when a review excludes the last row of some dataset.
    """
    names: set[str] = set()
    for rec in records:
        names |= leak_set(rec)
    if catalog is not None:
        names |= set(catalog.eval_datasets())
    return sorted(names)


def group_folder(group: frozenset[str]) -> str:
    """Folder name of a leak group: `no_leak`, `leaks-mvtec_ad`, `leaks-mvtec_ad+visa`."""
    if not group:
        return NO_LEAK
    name = "leaks-" + "+".join(sorted(re.sub(r"[^A-Za-z0-9_.-]+", "_", g) for g in group))
    if len(name) > 100:  # keep paths short; the manifest maps ids to groups anyway
        name = "leaks-" + hashlib.sha1("+".join(sorted(group)).encode()).hexdigest()[:16]
    return name


# -- manifest and changelog ----------------------------------------------------------------
def content_hash(image_sha: str, mask_sha: str | None) -> str:
    """One hash over image and mask: it changes when either changes."""
    return hashlib.sha256(f"{image_sha}:{mask_sha or ''}".encode()).hexdigest()


@dataclass
class Changelog:
    """What changed between two versions' manifests."""

    previous: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relabelled: list[tuple[str, str, str]] = field(default_factory=list)  # (id, old, new)
    mask_changed: list[str] = field(default_factory=list)
    license_changed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.relabelled or self.mask_changed or self.license_changed)

    def required_bump(self) -> str:
        """The smallest semantic-version bump these changes call for.

        Removing or relabelling samples, or changing their masks or licences, changes
        what an existing training run would see: major. Only additions: minor. Nothing: patch.
        """
        if self.removed or self.relabelled or self.mask_changed or self.license_changed:
            return "major"
        return "minor" if self.added else "patch"

    def markdown(self, version: str, date: str, new_classes: dict[str, str] | None = None) -> str:
        """This version's changelog section (ids shortened to 12 characters, as `git` does)."""
        head = f"### {version_name(version)} ({date})"
        if self.previous is None:
            return f"{head}\n\nFirst version: {len(self.added)} samples."
        lines = [head, "", f"Compared with {self.previous}: {len(self.added)} added, {len(self.removed)} removed, "
                 f"{len(self.relabelled)} relabelled, {len(self.mask_changed)} with a changed mask, "
                 f"{len(self.license_changed)} with a changed licence."]

        def block(title: str, items: list[str]) -> None:
            if items:
                shown = items[:50]
                lines.extend(["", f"{title}:", *[f"- {s}" for s in shown]])
                if len(items) > len(shown):
                    lines.append(f"- ... and {len(items) - len(shown)} more (see manifest.json)")

        nc = new_classes or {}
        block("Added", [f"`{i[:12]}` ({nc.get(i, '?')})" for i in self.added])
        block("Removed", [f"`{i[:12]}`" for i in self.removed])
        block("Relabelled", [f"`{i[:12]}`: {a} -> {b}" for i, a, b in self.relabelled])
        block("Mask changed", [f"`{i[:12]}`" for i in self.mask_changed])
        block("Licence changed", [f"`{i[:12]}`: {a} -> {b}" for i, a, b in self.license_changed])
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "added": self.added,
            "removed": self.removed,
            "relabelled": [list(t) for t in self.relabelled],
            "mask_changed": self.mask_changed,
            "license_changed": [list(t) for t in self.license_changed],
        }


def diff_manifests(old: dict[str, Any] | None, new: dict[str, Any]) -> Changelog:
    """Compare two manifests' samples (ids are content hashes of the image, so they are stable)."""
    if old is None:
        return Changelog(previous=None, added=sorted(new["samples"]))
    a, b = old["samples"], new["samples"]
    log = Changelog(previous=version_name(old["version"]) if old.get("version") else "the previous manifest")
    log.added = sorted(set(b) - set(a))
    log.removed = sorted(set(a) - set(b))
    for sid in sorted(set(a) & set(b)):
        o, n = a[sid], b[sid]
        if o.get("class") != n.get("class"):
            log.relabelled.append((sid, o.get("class", ""), n.get("class", "")))
        if o.get("mask") != n.get("mask"):
            log.mask_changed.append(sid)
        if o.get("license") != n.get("license"):
            log.license_changed.append((sid, o.get("license", ""), n.get("license", "")))
    return log


def _bump(old: tuple[int, int, int], new: tuple[int, int, int]) -> str:
    if new[0] != old[0]:
        return "major"
    return "minor" if new[1] != old[1] else "patch"


# -- rows and shards -----------------------------------------------------------------------
def features():
    """The published features, in the order of the issue and the card.

    `mask_box` ([top, left, height, width] of the mask's >= 128 pixels, [] when empty) is
    there so readers need not decode every mask to learn its size: `daad synthesize`
    measured all 388 masks of the benchmark release at each start (0.17-0.42 s of a
    ~2.3 s start-up). Nobody pays it at publish either: ingest stores each mask's box
    in the catalog (`Catalog.mask_boxes`), and publish decodes only the masks of an older
    catalog, once (`RowFacts`). Decoding them at every publish took 0.1-0.19 CPU s for
    ~400 masks, which moved a publish from 1.09x to 1.54x pyarrow's time. Releases
    written before the column have none; readers measure their masks on load.
    """
    from datasets import ClassLabel, Features, Image, Sequence, Value

    return Features(
        {
            "image": Image(),
            "mask": Image(),
            "anomaly_class": ClassLabel(names=list(taxonomy.CLASSES)),
            "source": Value("string"),
            "origin": Value("string"),
            "origin_label": Value("string"),
            "license": Value("string"),
            "attribution": Value("string"),
            "url": Value("string"),
            "phash": Value("string"),
            "id": Value("string"),
            "width": Value("int32"),
            "height": Value("int32"),
            "mask_box": Sequence(Value("int32")),  # `List` in datasets >= 4; Sequence is that there and exists at the 2.19 floor
        }
    )


_URL_META_KEYS = ("landing_url", "foreign_landing_url", "page_url", "source_url", "url")


def row_url(rec: Record, card: SourceCard | None) -> str:
    """Where the image can be seen: its page from the source, else the source's page, else ""."""
    for k in _URL_META_KEYS:
        v = rec.meta.get(k)
        if isinstance(v, str) and v.startswith(("http://", "https://")):
            return v
    if rec.origin_ref.startswith(("http://", "https://")):
        return rec.origin_ref
    return card.source.homepage if card else ""


class RowFacts:
    """Each row's pHash and mask box: stored ones read, the rest computed while the rows are written, then stored.

    Collecting stores every new record's hashes and its mask's box (`daad.core.ingest`),
    so publish normally reads them all and decodes nothing: rows carry the stored bytes.
    This is for catalogs collected before ingest stored them (or while scipy was not
    installed). Their missing hashes and boxes are computed by `hashing.FactsStream`,
    started before the first shard and consumed in row order, so decoding runs on every
    usable CPU (threads of this process below `hashing.POOL_MIN_BYTES` of images, a
    process pool above) while this thread builds and writes the parquet row groups;
    `save` then stores them in one batched transaction each (`Catalog.set_hashes`,
    `Catalog.set_mask_boxes`) and the next publish reads them. Measured
    (benchmarks/publish.py, 388 Magnetic Tile defects, 2 shared cores, load 1.0): the
    first publish of such a catalog 4.44x pyarrow's wall time for the same rows (7.29x its
    CPU; the 2-core wall floor with the hashing overlapped is 2.53x, decoding alone
    2.1x), then 0.72x; a catalog collected with hashes and boxes 0.95x (1.54x when every
    mask was decoded for its box). The overlap needs a free core: at load 3.4-3.8 the
    first publish took about its CPU time in wall time, as hashing first and writing
    after did. Without scipy (the `dedupe` extra) the `phash` column is left empty rather
    than guessed, and boxes are computed here, row by row; an unreadable image's phash is
    empty too (named in `errors`), and an undecodable mask's box is [] (named as well).
    """

    def __init__(self, catalog: Catalog, store: MediaStore, records: list[Record]):
        self.boxes = catalog.mask_boxes(r.mask_sha for r in records if r.mask_sha)
        try:
            from daad.curate import hashing
        except ImportError:
            hashing = None
        self.hashes: list[tuple[str, str, str]] = []
        self.new_boxes: dict[str, list[int]] = {}
        self.errors: list[str] = []
        hash_ids = {r.id for r in records if not (r.phash and r.dhash)} if hashing is not None else set()
        box_ids = {r.id for r in records if r.mask_sha and r.mask_sha not in self.boxes}
        todo = [r for r in records if r.id in hash_ids or r.id in box_ids]
        self._todo = {r.id for r in todo}
        self._stream = None
        self._items: Iterator[tuple[bool, str, str, list[int] | None]] = iter(())
        if todo and hashing is not None:
            self._stream = hashing.FactsStream(
                [store.image_path(r.id) if r.id in hash_ids else None for r in todo],
                [store.mask_path(r.mask_sha) if r.id in box_ids and r.mask_sha else None for r in todo],
            )
            self._items = self._flatten(self._stream, hashing.to_hex)

    def _flatten(self, stream, to_hex) -> Iterator[tuple[bool, str, str, list[int] | None]]:
        for facts in stream:
            self.errors += facts.errors
            h = facts.hashes
            for ok, p, d, box in zip(h.ok, h.phash, h.dhash, facts.boxes):
                yield bool(ok), to_hex(p), to_hex(d), box

    def take(self, rec: Record, mask: bytes) -> tuple[str, list[int]]:
        """(phash, mask_box) of the next row; rows must come in the order the records were given."""
        phash = rec.phash or ""
        box = self.boxes.get(rec.mask_sha or "")
        if rec.id in self._todo:
            computed = next(self._items, None)
            if computed is not None:
                ok, p, d, b = computed
                if ok:
                    phash = p
                    self.hashes.append((rec.id, p, d))
                if b is not None:
                    box = b
        if box is None and rec.mask_sha:
            try:
                box = checked_box(mask, f"mask {rec.mask_sha[:12]} of sample {rec.id[:12]}")  # no scipy, so no stream
            except BadItemError as exc:
                if self._stream is None:  # else the stream named it already
                    self.errors.append(str(exc))
                return phash, []
        if rec.mask_sha and rec.mask_sha not in self.boxes and box is not None:
            self.new_boxes[rec.mask_sha] = box
        return phash, box or []

    def save(self, catalog: Catalog) -> None:
        """Store what was computed, so the next publish (and dedupe) reads it."""
        if self.hashes:
            catalog.set_hashes(self.hashes, who="publish")
        if self.new_boxes:
            catalog.set_mask_boxes(self.new_boxes.items())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def _row(rec: Record, store: MediaStore, card: SourceCard | None, facts: RowFacts) -> dict[str, Any]:
    assert rec.mask_sha is not None
    mask = store.mask_path(rec.mask_sha).read_bytes()
    phash, box = facts.take(rec, mask)
    return {
        "image": {"bytes": store.image_path(rec.id).read_bytes(), "path": None},
        "mask": {"bytes": mask, "path": None},
        "anomaly_class": taxonomy.CLASSES.index(rec.anomaly_class),
        "source": rec.source,
        "origin": rec.origin,
        "origin_label": rec.origin_label,
        "license": licenses.normalize(rec.license),
        "attribution": rec.attribution,
        "url": row_url(rec, card),
        "phash": phash,
        "id": rec.id,
        "width": rec.width,
        "height": rec.height,
        "mask_box": box,
    }


def plan_shards(records: list[Record], store: MediaStore, max_bytes: int) -> list[list[Record]]:
    """Cut one group's rows into consecutive shards of at most ~max_bytes (file sizes + a little)."""
    shards: list[list[Record]] = []
    cur: list[Record] = []
    size = 0
    for rec in records:
        assert rec.mask_sha is not None
        n = store.image_path(rec.id).stat().st_size + store.mask_path(rec.mask_sha).stat().st_size + 512
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(rec)
        size += n
    if cur:
        shards.append(cur)
    return shards


def _write_shard(path: Path, rows: Iterable[dict[str, Any]], schema, bar: tqdm) -> int:
    """Write rows in row groups of at most ROWS_PER_ROW_GROUP rows and ~ROW_GROUP_BYTES.

    Returns the uncompressed Arrow bytes (the card's `num_bytes`). Memory stays at one
    row group, whatever the shard size.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    nbytes = 0
    with pq.ParquetWriter(path, schema, use_content_defined_chunking=CDC_OPTIONS, write_page_index=True) as writer:
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for row in rows:
            batch.append(row)
            batch_bytes += len(row["image"]["bytes"]) + len(row["mask"]["bytes"])
            bar.update(1)
            if len(batch) == ROWS_PER_ROW_GROUP or batch_bytes >= ROW_GROUP_BYTES:
                table = pa.Table.from_pylist(batch, schema=schema)
                nbytes += table.nbytes
                writer.write_table(table)
                batch, batch_bytes = [], 0
        if batch:
            table = pa.Table.from_pylist(batch, schema=schema)
            nbytes += table.nbytes
            writer.write_table(table)
    return nbytes


# -- publish ---------------------------------------------------------------------------------
@dataclass
class PublishResult:
    """What a publish wrote: the version folder and the numbers its card reports."""

    version: str
    path: Path
    rows: int
    configs: dict[str, int]  # config -> rows
    groups: dict[str, int]  # group folder -> rows
    shards: list[str]  # paths relative to `path`
    excluded: Counter
    changelog: Changelog
    gated: str  # "", "auto" or "manual"
    bytes_written: int
    warnings: list[str] = field(default_factory=list)
    local: bool = False
    private_use: Counter = field(default_factory=Counter)  # local: (origin, licence, why) -> rows
    origin_only: list[str] = field(default_factory=list)  # evaluation datasets never hashed
    leakage: list[RefreshReport] = field(default_factory=list)  # what the leakage refresh checked

    def summary(self) -> str:
        """What `daad publish` prints: configs, exclusions, changes."""
        lines = [f"published {version_name(self.version)} -> {self.path} ({self.rows} samples, {len(self.shards)} shard{'' if len(self.shards) == 1 else 's'}, "
                 f"{self.bytes_written / 1e6:.1f} MB)"]
        if self.local:
            lines.append(f"local release, for private use only: {sum(self.private_use.values())} samples may not be "
                         "redistributed (`daad push` refuses it)")
            lines += [f"  {v:>8}  {o} ({lic or 'unknown'}): {why}" for (o, lic, why), v in sorted(self.private_use.items())]
        lines.append("configs:")
        lines += [f"  {k:<28} {v:>8} rows" for k, v in self.configs.items()]
        for r in self.leakage:
            lines.append(f"leakage {r.dataset}: checked {r.checked} new sample{'' if r.checked == 1 else 's'} against its cached hashes, "
                         f"{r.newly_marked} newly marked")
        lines += [f"note: {config_name(d)} is by origin only ({d}'s images were never hashed): run `daad leakage {d} PATH`"
                  for d in self.origin_only]
        if self.excluded:
            lines.append(f"left out: {sum(self.excluded.values())}")
            lines += [f"  {v:>8}  {k}" for k, v in self.excluded.most_common()]
        c = self.changelog
        if c.previous is None:
            lines.append("changes: first version")
        else:
            lines.append(f"changes since {c.previous}: +{len(c.added)} added, -{len(c.removed)} removed, "
                         f"{len(c.relabelled)} relabelled, {len(c.mask_changed)} mask changed, {len(c.license_changed)} licence changed")
        if self.gated and not self.local:
            lines.append(f"gated access on the Hub: {self.gated}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _yaml_header(
    version: str, rows: int, licence_ids: list[str], config_folders: dict[str, list[str]], infos: dict[str, dict[str, int]],
    gated: str, gate_prompt: str,
) -> str:
    """Card metadata written with `datasets`' own serialisers, so the Hub and loaders read it back."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    hub_ids = sorted({hub_license(lic) for lic in licence_ids}) or ["other"]
    extra: dict[str, Any] = {}
    if "other" in hub_ids:
        extra = {"license_name": "mixed-per-row", "license_link": "LICENSE.md"}
    if gated:
        extra["extra_gated_prompt"] = gate_prompt
    data = DatasetCardData(
        license=hub_ids if len(hub_ids) > 1 else hub_ids[0],
        task_categories=["image-segmentation", "image-classification"],
        size_categories=[size_category(rows)],
        pretty_name=f"DAAD: domain-agnostic anomaly dataset ({version_name(version)})",
        tags=["anomaly-detection", "industrial-inspection", "defect-segmentation", "zero-shot-anomaly-synthesis", "daad"],
        **extra,
    )
    configs = MetadataConfigs(
        {
            name: {
                "data_files": [{"split": SPLIT, "path": [f"data/{g}/*.parquet" for g in folders]}],
                **({"default": True} if name == "full" else {}),
            }
            for name, folders in config_folders.items()
        }
    )
    configs.to_dataset_card_data(data)
    feats = features()
    DatasetInfosDict(
        {
            name: DatasetInfo(
                features=feats,
                splits=SplitDict({SPLIT: SplitInfo(name=SPLIT, num_bytes=i["num_bytes"], num_examples=i["rows"])}),
                download_size=i["download_size"],
                dataset_size=i["num_bytes"],
            )
            for name, i in infos.items()
        }
    ).to_dataset_card_data(data)
    return data.to_yaml()


def _licence_note(licence_rows: Counter) -> str:
    lines = [
        "# Licences of DAAD",
        "",
        "DAAD mixes images under several licences; each row's `license` and `attribution` fields",
        "say which applies to that image and whom to credit. Rows per licence in this version:",
        "",
    ]
    lines += [f"- {k}: {v} rows" for k, v in licence_rows.most_common()]
    return "\n".join(lines) + "\n"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _plan_configs(ordered_groups: list[frozenset[str]], eval_sets: list[str]) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """({config: group folders}, exclude configs left out as empty, warnings)."""
    config_folders: dict[str, list[str]] = {"full": [group_folder(g) for g in ordered_groups]}
    empty: list[str] = []
    warnings: list[str] = []
    for ds in eval_sets:
        name = config_name(ds)
        if name in config_folders or name in empty:  # two names that reduce to one config name
            warnings.append(f"dataset {ds!r} maps to config {name!r}, which another dataset already has; not written")
            continue
        folders = [group_folder(g) for g in ordered_groups if ds not in g]
        if folders:
            config_folders[name] = folders
        else:
            empty.append(name)
            warnings.append(f"every published sample leaks {ds!r}: config {name!r} would be empty and is not written")
    return config_folders, empty, warnings


def _write_groups(
    root: Path, groups: dict[frozenset[str], list[Record]], ordered: list[frozenset[str]], store: MediaStore,
    cards: dict[str, SourceCard | None], shard_bytes: int, facts: RowFacts, bar: tqdm,
) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Write every group's shards under root/data; returns (shard paths, {folder: rows/bytes})."""
    schema = features().arrow_schema
    shard_paths: list[str] = []
    sizes: dict[str, dict[str, int]] = {}
    for g in ordered:
        folder = group_folder(g)
        plan = plan_shards(groups[g], store, shard_bytes)
        nb = dl = 0
        for i, shard in enumerate(plan):
            rel = f"data/{folder}/{SPLIT}-{i:05d}-of-{len(plan):05d}.parquet"
            nb += _write_shard(root / rel, (_row(r, store, cards.get(r.origin), facts) for r in shard), schema, bar)
            dl += (root / rel).stat().st_size
            shard_paths.append(rel)
        sizes[folder] = {"num_bytes": nb, "download_size": dl, "rows": len(groups[g])}
    return shard_paths, sizes


def _manifest(
    version: str, records: list[Record], gate: str, eval_sets: list[str], config_folders: dict[str, list[str]], empty: list[str],
    local: bool = False,
) -> dict[str, Any]:
    return build_manifest(
        version, datetime.now(timezone.utc).isoformat(timespec="seconds"), gate, eval_sets, config_folders, empty,
        redistributable=not local,
        samples={
            rec.id: {
                "content": content_hash(rec.id, rec.mask_sha),
                "mask": rec.mask_sha,
                "class": rec.anomaly_class,
                "license": licenses.normalize(rec.license),
                "origin": rec.origin,
                "group": group_folder(leak_set(rec)),
            }
            for rec in records
        },
    )


def _bump_problem(old_manifest: dict[str, Any] | None, new: tuple[int, int, int], log: Changelog) -> str | None:
    """Why the version bump is smaller than what the changes call for (with the smallest right number), or None."""
    if not old_manifest or not old_manifest.get("version"):
        return None
    try:
        old = parse_version(str(old_manifest["version"]))
    except PublishError:
        return None
    order = ["patch", "minor", "major"]
    need, got = log.required_bump(), _bump(old, new)
    if order.index(got) >= order.index(need):
        return None
    right = {"major": (old[0] + 1, 0, 0), "minor": (old[0], old[1] + 1, 0), "patch": (old[0], old[1], old[2] + 1)}[need]
    return (f"{version_name(new)} is a {got} bump over {version_name(old)} but the changes call for a {need} bump "
            f"(e.g. {version_name(right)})")


def _check_free_space(out: Path, records: list[Record], store: MediaStore) -> None:
    """Refuse, before writing, a version that cannot fit in `out`.

    Why a check and not an except: pyarrow's parquet writer does not return a full disk
    as an error on every path; with content-defined chunking it fails a C++ `Check`
    and aborts the whole process (seen with pyarrow 21 on a full tmpfs), which no Python
    handler can catch and which leaves the temp folder behind. A shard holds the PNG
    bytes as they are (no recompression), so the files' sizes plus 10% and 1 MB (row
    groups, page index, card, manifest) bound what a version takes.
    """
    need = sum(store.image_path(r.id).stat().st_size + (store.mask_path(r.mask_sha).stat().st_size if r.mask_sha else 0)
               for r in records)
    need = int(need * 1.1) + 2**20
    free = shutil.disk_usage(out).free
    if free < need:
        raise PublishError(f"{out}: No space left on device for this version: it needs about {need / 1e6:.1f} MB, "
                           f"{free / 1e6:.1f} MB are free (disk full: free space there and run again); nothing written")


def clean_stale_temporaries(out: Path, max_age_s: float = STALE_TMP_S) -> list[Path]:
    """Remove `.vX.Y.Z.tmp-*` folders a killed or failed publish left in `out`; returns them.

    Only folders older than `max_age_s` go, so a publish running right now in the same
    folder keeps its own.
    """
    removed = []
    now = time.time()
    for p in out.glob(".v*.tmp-*"):
        try:
            if p.is_dir() and not p.is_symlink() and now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p)
                removed.append(p)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: leave it
    return removed


def publish(
    catalog: Catalog,
    version: str,
    out_dir: Path | str,
    *,
    store: MediaStore | None = None,
    previous: Path | str | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    repo_id: str = "<org>/daad",
    gated: str | None = None,
    local: bool = False,
    progress: bool = True,
    force_version: bool = False,
) -> PublishResult:
    """Write version `version` of the catalog to `out_dir/vX.Y.Z` (see the module docstring).

    Args:
        catalog: the catalog to publish (only its publishable rows are written).
        version: semantic version `X.Y.Z`; publishing a version that exists is refused.
        out_dir: the folder holding all versions; the newest older version there is the
            baseline of the changelog.
        store: the media store (default: the catalog's home).
        previous: a `manifest.json` to diff against instead (e.g. the last version on the
            Hub, when this machine has no earlier version).
        shard_bytes: largest parquet shard, in bytes of image + mask files.
        repo_id: the Hub repo named in the card's loading examples.
        gated: force the Hub access gate ("auto", "manual", or "" for none); None decides
            from source cards and licences (see `daad.release.dataset_card.gating`).
        local: a local release for private use: also images whose licence forbids
            redistribution or is unknown; marked `redistributable: false`.
        progress: show a progress bar.
        force_version: write even when the version number is smaller than the changes
            call for (checked before anything is written; refused without this).
    Returns:
        PublishResult with the folder written and the numbers in its card.
    Raises:
        PublishError: bad version or options, existing version, a too small version
            bump, nothing publishable.
    """
    vt = parse_version(version)
    vname = version_name(vt)
    vstr = vname[1:]
    out = Path(out_dir).expanduser()
    final = out / vname
    if final.exists():
        raise PublishError(f"{final} exists: a published version is never overwritten (choose a new version)")
    if shard_bytes <= 0:
        raise PublishError(f"shard size must be positive, not {shard_bytes}")
    if gated not in (None, "", "auto", "manual"):
        raise PublishError(f"gated must be 'auto', 'manual' or '' (none), not {gated!r}")
    store = store if store is not None else MediaStore(catalog.home)

    older = [p for v, p in published_versions(out) if v < vt]
    old_manifest = load_manifest(previous) if previous else (load_manifest(older[-1] / "manifest.json") if older else None)
    old_history = older[-1] / "CHANGELOG.md" if older and not previous else None
    old_changelog = old_history.read_text(encoding="utf-8") if old_history and old_history.is_file() else ""

    fresh = refresh_leakage(catalog, store, progress=progress)
    all_records = catalog.find()
    sel = select(all_records, store, local)
    if not sel.records:
        raise PublishError(f"nothing to publish: none of the {len(all_records)} catalog samples is publishable "
                           f"({', '.join(f'{k}: {v}' for k, v in sel.excluded.most_common()) or 'empty catalog'})")
    eval_sets = known_eval_datasets(all_records, catalog)
    hashed = set(catalog.eval_datasets())
    origin_only = [d for d in eval_sets if d not in hashed]
    groups: dict[frozenset[str], list[Record]] = defaultdict(list)
    for rec in sel.records:
        groups[leak_set(rec)].append(rec)
    ordered = sorted(groups, key=lambda g: (len(g), sorted(g)))
    config_folders, empty_configs, warnings = _plan_configs(ordered, eval_sets)
    warnings += [f"leakage check against {r.dataset} skipped an unreadable image: {e}" for r in fresh for e in r.errors]

    cards: dict[str, SourceCard | None] = {}
    origin_licenses: dict[str, Counter] = defaultdict(Counter)
    origin_attr: dict[str, Counter] = defaultdict(Counter)
    class_source: Counter = Counter()
    for rec in sel.records:
        if rec.origin not in cards:
            try:
                cards[rec.origin] = load_source_card(rec.origin)
            except ValueError as exc:  # a malformed source card: say which, before writing anything
                raise PublishError(str(exc)) from None
        origin_licenses[rec.origin][licenses.normalize(rec.license)] += 1
        origin_attr[rec.origin][rec.attribution] += 1
        class_source[(rec.anomaly_class, rec.source)] += 1
    licence_rows: Counter = sum(origin_licenses.values(), Counter())
    gate, prompt = gating(dict(origin_licenses), cards)
    gate = gate if gated is None else gated
    if gate and not prompt:
        prompt = "I agree to use each image only under its licence terms (see each row's `license` and `attribution`)."

    manifest = _manifest(vstr, sel.records, gate, eval_sets, config_folders, empty_configs, local)
    changelog = diff_manifests(old_manifest, manifest)
    problem = _bump_problem(old_manifest, vt, changelog)
    if problem and not force_version:
        raise PublishError(f"{problem}; nothing written (choose that version, or pass --force-version)")
    if problem:
        warnings.append(problem)

    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    _check_free_space(out, sel.records, store)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{vname}.tmp-"))
    facts = RowFacts(catalog, store, [r for g in ordered for r in groups[g]])  # starts any hashing: rows are written in this order
    try:
        with tqdm(total=len(sel.records), desc=f"publish {vname}", unit="img", disable=not progress) as bar:
            shard_paths, sizes = _write_groups(tmp, groups, ordered, store, cards, shard_bytes, facts, bar)
        facts.close()
        facts.save(catalog)
        warnings += facts.errors
        infos = {
            name: {k: sum(sizes[f][k] for f in folders) for k in ("num_bytes", "download_size", "rows")}
            for name, folders in config_folders.items()
        }
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        section = changelog.markdown(vstr, date, {r.id: r.anomaly_class for r in sel.records})
        earlier = old_changelog.removeprefix(CHANGELOG_TITLE).strip("\n")
        history = f"{CHANGELOG_TITLE}\n\n{section}\n" + (f"\n{earlier}\n" if earlier else "")
        card = render_card(
            CardInputs(
                version=vstr,
                date=date,
                repo=str(final.resolve()) if local else repo_id,  # a local release is loaded from its folder, never from the Hub
                yaml_header=_yaml_header(vstr, len(sel.records), list(licence_rows), config_folders, infos, gate, prompt),
                rows=len(sel.records),
                shards=len(shard_paths),
                configs={k: v["rows"] for k, v in infos.items()},
                class_source=class_source,
                exclusions=sel.excluded,
                origin_licenses=dict(origin_licenses),
                origin_attributions=dict(origin_attr),
                cards=cards,
                changelog=section,
                gate_prompt=prompt if gate else "",
                omitted_configs=empty_configs,
                origin_only=origin_only,
                private_use=sel.private_use if local else None,
            )
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / "CHANGELOG.md").write_text(history, encoding="utf-8")
        (tmp / "LICENSE.md").write_text(_licence_note(licence_rows), encoding="utf-8")
        write_fiftyone_config(tmp, vstr, list(licence_rows), f"DAAD {vstr}: real anomaly images with pixel masks, {len(sel.records)} samples")
        _write_json(tmp / "manifest.json", manifest)
        _write_json(tmp / "changelog.json", {"version": vstr, **changelog.to_dict()})
        os.chmod(tmp, umasked(0o777))  # mkdtemp makes it 0700; a published folder is meant to be shared
        try:
            os.rename(tmp, final)  # atomic; fails if another publish created the version meanwhile
        except OSError as exc:
            raise PublishError(f"{final}: cannot move the new version into place ({exc})") from None
    except BaseException:
        facts.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    return PublishResult(
        version=vstr,
        path=final,
        rows=len(sel.records),
        configs={k: v["rows"] for k, v in infos.items()},
        groups={f: v["rows"] for f, v in sizes.items()},
        shards=shard_paths,
        excluded=sel.excluded,
        changelog=changelog,
        gated=gate,
        bytes_written=sum(v["download_size"] for v in sizes.values()),
        warnings=warnings,
        local=local,
        private_use=sel.private_use,
        origin_only=origin_only,
        leakage=fresh,
    )
