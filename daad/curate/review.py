"""Review the catalog in the FiftyOne App: classes and masks, decided by a person.

Review is a stage, not the store. `load_catalog` mirrors the catalog into a persistent
FiftyOne dataset (one sample per record, keyed by the record id in `daad_id`, images and
masks referenced by their media-store paths, never copied), with saved views for the
work queues and mask targets so masks render as overlays. Every decision goes to the
catalog first (`Catalog.update`, which logs who and when) and is then written to the
FiftyOne sample, so the catalog stays the source of truth even if the dataset is lost.

Decisions come from daad's FiftyOne plugin (`fiftyone_plugin/`, operators run in the
App's server process and call `set_class` / `judge_masks` here) or from tags typed in
the App and applied by `apply_tags` (`class:crack`, `mask:ok`, `mask:bad`).

This module imports FiftyOne; nothing but `daad review` imports this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import fiftyone as fo
from fiftyone import ViewField as F
from tqdm import tqdm

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.masks import default_who
from daad.core.media_store import MediaStore
from daad.core.record import Record

DEFAULT_DATASET = "daad"
KEY_FIELD = "daad_id"
CLASS_FIELD = "anomaly"  # a Classification, so the class shows as a label on the grid
MASK_FIELD = "mask"  # a Segmentation pointing at the stored 0/255 mask
MASK_VALUE = 255
PLUGIN_DIR = Path(__file__).resolve().parent / "fiftyone_plugin"
PLUGIN_LINK_NAME = "daad-review"

CLASS_TAG = "class:"
MASK_OK_TAG = "mask:ok"
MASK_BAD_TAG = "mask:bad"

# Record fields copied as plain sample fields (the ones a reviewer filters or reads).
_PLAIN_FIELDS = ("mask_status", "source", "origin", "origin_label", "origin_ref", "license", "attribution", "duplicate_of")


def _sample_fields(rec: Record, store: MediaStore) -> dict:
    """The FiftyOne fields that show one record (everything a reviewer sees or filters on)."""
    d = {name: getattr(rec, name) for name in _PLAIN_FIELDS}
    d[KEY_FIELD] = rec.id
    d[CLASS_FIELD] = fo.Classification(label=rec.anomaly_class)
    d[MASK_FIELD] = fo.Segmentation(mask_path=str(store.mask_path(rec.mask_sha).resolve())) if rec.mask_sha else None
    d["leaks"] = list(rec.leaks)
    d["daad_tags"] = list(rec.tags)
    return d


def _ensure_schema(ds: fo.Dataset) -> None:
    """Declare the fields up front: values that are None everywhere cannot type a field."""
    kinds = {name: (fo.StringField, {}) for name in (KEY_FIELD, *_PLAIN_FIELDS)}
    kinds["leaks"] = kinds["daad_tags"] = (fo.ListField, {"subfield": fo.StringField})
    kinds[CLASS_FIELD] = (fo.EmbeddedDocumentField, {"embedded_doc_type": fo.Classification})
    kinds[MASK_FIELD] = (fo.EmbeddedDocumentField, {"embedded_doc_type": fo.Segmentation})
    for name, (ftype, kwargs) in kinds.items():
        if not ds.has_sample_field(name):
            ds.add_sample_field(name, ftype, **kwargs)


def _write_sample(sample: fo.Sample, rec: Record, store: MediaStore) -> None:
    """Make one FiftyOne sample show `rec` (after the catalog has been changed)."""
    for name, value in _sample_fields(rec, store).items():
        if name == CLASS_FIELD and sample[CLASS_FIELD] is not None:
            sample[CLASS_FIELD].label = rec.anomaly_class  # keep the label id stable for the App
        else:
            sample[name] = value
    sample.save()


@dataclass
class LoadReport:
    """What `load_catalog` did to the dataset."""

    dataset: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    views: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"dataset {self.dataset!r}: {self.added} added, {self.updated} updated, {self.removed} removed; "
            f"saved views: {', '.join(self.views)}"
        )


def load_catalog(
    catalog: Catalog | None = None, name: str = DEFAULT_DATASET, progress: bool = True
) -> tuple[fo.Dataset, LoadReport]:
    """Mirror the catalog into the persistent FiftyOne dataset `name`; idempotent.

    A second run updates the samples it finds by `daad_id` and adds the new records; it
    never duplicates. Samples whose record is gone are removed, so the dataset always
    shows exactly the catalog. FiftyOne tags typed in the App are kept (they are input
    for `apply_tags`).
    """
    catalog = catalog if catalog is not None else Catalog()
    store = MediaStore(catalog.home)
    ds = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    ds.persistent = True
    _ensure_schema(ds)
    report = LoadReport(name)
    records = catalog.find()
    existing = set(ds.values(KEY_FIELD))
    new = [r for r in records if r.id not in existing]
    old = [r for r in records if r.id in existing]
    if new:
        samples = (
            fo.Sample(filepath=str(store.image_path(r.id).resolve()), **_sample_fields(r, store))
            for r in tqdm(new, desc="review: add", disable=not progress)
        )
        ds.add_samples(samples, progress=False)
    if old:
        fields = {r.id: _sample_fields(r, store) for r in old}
        for name_ in (*_PLAIN_FIELDS, "leaks", "daad_tags", MASK_FIELD):
            ds.set_values(name_, {k: f[name_] for k, f in fields.items()}, key_field=KEY_FIELD)
        labels = {k: f[CLASS_FIELD].label for k, f in fields.items()}
        ds.set_values(f"{CLASS_FIELD}.label", labels, key_field=KEY_FIELD)
    gone = set(existing) - {r.id for r in records}
    if gone:
        ds.delete_samples(ds.match(F(KEY_FIELD).is_in(sorted(gone))))
    ds.create_index(KEY_FIELD, unique=True)
    ds.mask_targets = {MASK_FIELD: {MASK_VALUE: "anomaly"}}
    ds.app_config.active_fields = fo.ActiveFields(paths=[CLASS_FIELD, MASK_FIELD])  # class label + mask overlay on
    ds.info["daad_home"] = str(catalog.home.resolve())
    ds.save()
    report.added, report.updated, report.removed = len(new), len(old), len(gone)
    report.views = save_views(ds, catalog)
    return ds, report


def view_specs(ds: fo.Dataset, catalog: Catalog) -> dict[str, tuple[str, object]]:
    """{name: (description, view)} of the saved views that make the review queues."""
    specs: dict[str, tuple[str, object]] = {
        "unassigned": ("no anomaly class yet", ds.match(F(f"{CLASS_FIELD}.label") == taxonomy.UNASSIGNED)),
        "mask-missing": ("needs a mask drawn", ds.match(F("mask_status") == taxonomy.MISSING)),
        "mask-proposed": ("machine-proposed masks to accept or reject", ds.match(F("mask_status") == taxonomy.PROPOSED)),
        "duplicates": ("near-duplicates of a kept sample", ds.exists("duplicate_of")),
    }
    leaked = set(catalog.eval_datasets())
    for values in ds.values("leaks"):
        leaked.update(values or [])
    for name in sorted(leaked):
        specs[f"leaks-{name}"] = (f"from, or near-duplicates of, {name}", ds.match(F("leaks").contains(name)))
    for cls in taxonomy.CLASSES:
        specs[f"class-{cls}"] = (f"anomaly class {cls}", ds.match(F(f"{CLASS_FIELD}.label") == cls))
    return specs


def save_views(ds: fo.Dataset, catalog: Catalog) -> list[str]:
    """Save (or refresh) the review queues as the dataset's saved views; returns their names."""
    specs = view_specs(ds, catalog)
    for name, (description, view) in specs.items():
        ds.save_view(name, view, description=description, overwrite=True)
    for stale in set(ds.list_saved_views()) - set(specs):
        if stale.startswith("leaks-"):
            ds.delete_saved_view(stale)
    return list(specs)


def catalog_of(samples: fo.core.collections.SampleCollection) -> Catalog:
    """The catalog a dataset was loaded from (recorded by `load_catalog`)."""
    home = samples._root_dataset.info.get("daad_home")
    if not home:
        raise ValueError(f"FiftyOne dataset {samples._root_dataset.name!r} was not made by `daad review`")
    return Catalog(home)


@dataclass
class DecisionReport:
    """What a batch of review decisions did: changed samples and one-line errors."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"{len(self.changed)} changed, {len(self.unchanged)} already so"
        return s + (f", {len(self.errors)} errors" if self.errors else "")


def _decide(samples, who: str, catalog: Catalog | None, decide) -> DecisionReport:
    """Apply `decide(record) -> fields to change` to each sample: catalog first, then FiftyOne."""
    catalog = catalog or catalog_of(samples)
    store = MediaStore(catalog.home)
    report = DecisionReport()
    for sample in samples.iter_samples(autosave=False):
        key = sample[KEY_FIELD]
        rec = catalog.get(key)
        if rec is None:
            report.errors.append(f"{key}: not in the catalog {catalog.path} (re-run `daad review`)")
            continue
        try:
            fields = decide(rec)
        except ValueError as e:
            report.errors.append(f"{key[:12]}: {e}")
            continue
        if all(getattr(rec, k) == v for k, v in fields.items()):
            report.unchanged.append(key)
        else:
            rec = catalog.update(key, who=who, **fields)
            report.changed.append(key)
        _write_sample(sample, rec, store)
    return report


def set_class(samples, anomaly_class: str, who: str | None = None, catalog: Catalog | None = None) -> DecisionReport:
    """Set the anomaly class of every sample in `samples` (a dataset, view or selection)."""
    cls = taxonomy.check_class(anomaly_class)
    return _decide(samples, who or default_who("review"), catalog, lambda rec: {"anomaly_class": cls})


def judge_masks(samples, accept: bool, who: str | None = None, catalog: Catalog | None = None) -> DecisionReport:
    """Accept (-> `annotated`) or reject (-> `missing`) the masks of `samples`.

    A rejected mask is unlinked from the record (`mask_sha` cleared) so nothing counts or
    publishes it; its hash stays in the event log and its file in the media store. A
    ground-truth mask that is accepted keeps `ground_truth` (nothing better to become).
    """

    def decide(rec: Record) -> dict:
        if accept:
            if rec.mask_sha is None:
                raise ValueError("has no mask to accept (draw one and `daad masks import` it)")
            status = rec.mask_status if rec.mask_status == taxonomy.GROUND_TRUTH else taxonomy.ANNOTATED
            return {"mask_status": status}
        return {"mask_status": taxonomy.MISSING, "mask_sha": None}

    return _decide(samples, who or default_who("review"), catalog, decide)


@dataclass
class TagPlan:
    """What the tags of one sample ask for."""

    anomaly_class: str | None = None
    mask: bool | None = None  # True: mask:ok, False: mask:bad
    tags: list[str] = field(default_factory=list)  # the review tags found (removed once applied)


def parse_tags(tags: Iterable[str]) -> TagPlan | None:
    """Read `class:<name>`, `mask:ok`, `mask:bad` from a sample's tags; None if it has none.

    Raises ValueError for contradictions (two classes, ok and bad) and unknown classes.
    """
    plan = TagPlan()
    classes = []
    for tag in tags:
        t = tag.strip().lower()
        if t.startswith(CLASS_TAG):
            classes.append(taxonomy.check_class(t[len(CLASS_TAG):]))
            plan.tags.append(tag)
        elif t in (MASK_OK_TAG, MASK_BAD_TAG):
            ok = t == MASK_OK_TAG
            if plan.mask is not None and plan.mask != ok:
                raise ValueError(f"tagged both {MASK_OK_TAG} and {MASK_BAD_TAG}")
            plan.mask = ok
            plan.tags.append(tag)
    if len(set(classes)) > 1:
        raise ValueError(f"tagged with several classes: {', '.join(sorted(set(classes)))}")
    plan.anomaly_class = classes[0] if classes else None
    return plan if plan.tags else None


def apply_tags(ds: fo.Dataset, who: str | None = None, catalog: Catalog | None = None, progress: bool = True) -> DecisionReport:
    """Apply review tags typed in the App to the catalog, then remove them from the samples.

    `class:crack` sets the class, `mask:ok` accepts the mask, `mask:bad` rejects it. A
    sample with contradictory tags is reported and left tagged; the batch goes on.
    """
    who = who or default_who("review-tags")
    catalog = catalog or catalog_of(ds)
    report = DecisionReport()
    review_tags = [t for t in ds.distinct("tags") if t.strip().lower().startswith(("class:", "mask:"))]
    if not review_tags:
        return report
    tagged = ds.match_tags(review_tags)
    for sample in tqdm(tagged.iter_samples(), total=len(tagged), desc="review: tags", disable=not progress):
        key = sample[KEY_FIELD]
        try:
            plan = parse_tags(sample.tags)
        except ValueError as e:
            report.errors.append(f"{key[:12]}: {e}")
            continue
        if plan is None:  # only look-alikes such as `mask:maybe`
            continue
        one = ds.select(sample.id)
        parts = []
        if plan.anomaly_class is not None:
            parts.append(set_class(one, plan.anomaly_class, who, catalog))
        if plan.mask is not None:
            parts.append(judge_masks(one, plan.mask, who, catalog))
        errors = [e for p in parts for e in p.errors]
        if errors:
            report.errors.extend(errors)
            continue
        (report.changed if any(p.changed for p in parts) else report.unchanged).append(key)
        sample.reload()
        sample.tags = [t for t in sample.tags if t not in plan.tags]
        sample.save()
    return report


def enable_plugin() -> Path:
    """Make FiftyOne (this process and the App server it starts) load daad's plugin.

    When the user's FiftyOne plugins directory holds plugins, a `daad-review` link to
    daad's plugin folder is put there, so their plugins keep working; otherwise
    FIFTYONE_PLUGINS_DIR simply points at daad's plugin folder (nothing is written).
    Returns the directory FiftyOne now reads plugins from.
    """
    theirs = Path(fo.config.plugins_dir).expanduser() if fo.config.plugins_dir else None
    if theirs is None or theirs.resolve() == PLUGIN_DIR or not theirs.is_dir() or not any(theirs.iterdir()):
        plugins_dir = PLUGIN_DIR
    else:
        plugins_dir = theirs
        link = plugins_dir / PLUGIN_LINK_NAME
        if link.is_symlink() and link.resolve() != PLUGIN_DIR:
            link.unlink()  # left by another daad install (an old venv)
        if not link.exists():
            link.symlink_to(PLUGIN_DIR, target_is_directory=True)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins_dir)
    fo.config.plugins_dir = str(plugins_dir)
    return plugins_dir


def launch(ds: fo.Dataset, remote: bool = False, port: int = 5151, address: str | None = None) -> fo.Session:
    """Open the App on `ds` with daad's plugin loaded (a local browser, or a server with `remote`)."""
    enable_plugin()
    return fo.launch_app(ds, remote=remote, port=port, address=address)
