"""Which samples go to the annotators: ids, `daad ls` filters, or a review queue / saved view.

The review queues that `daad review` saves (mask-missing, mask-proposed, unassigned,
duplicates, leaks-<x>, class-<c>) are answered from the catalog, so they work without
FiftyOne; any other `--view` name is looked up among the saved views of the FiftyOne
dataset `daad review` loaded (views people made in the App), which needs the `review` extra.
"""

from __future__ import annotations

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import DaadError
from daad.core.record import Record


def _queue(catalog: Catalog, view: str) -> list[Record] | None:
    if view == "mask-missing":
        return catalog.find(mask_status=taxonomy.MISSING)
    if view == "mask-proposed":
        return catalog.find(mask_status=taxonomy.PROPOSED)
    if view == "unassigned":
        return catalog.find(anomaly_class=taxonomy.UNASSIGNED)
    if view == "duplicates":
        return [r for r in catalog.find() if r.duplicate_of]
    if view.startswith("leaks-"):
        return catalog.find(leaks=view.removeprefix("leaks-"))
    if view.startswith("class-") and view.removeprefix("class-") in taxonomy.CLASSES:
        return catalog.find(anomaly_class=view.removeprefix("class-"))
    return None


def _saved_view(catalog: Catalog, view: str) -> list[Record]:
    try:
        import fiftyone as fo
    except ImportError:
        raise DaadError(f"--view {view!r} is not a review queue, and saved views need FiftyOne (pip install 'daad[review]')") from None
    from daad.curate.review import DEFAULT_DATASET, KEY_FIELD

    if DEFAULT_DATASET not in fo.list_datasets():
        raise DaadError(f"--view {view!r}: no `daad review` dataset yet (run `daad review` first)")
    ds = fo.load_dataset(DEFAULT_DATASET)
    saved = [str(v) for v in ds.list_saved_views()]
    if view not in saved:
        raise DaadError(f"--view {view!r}: not a saved view of `daad review` (saved: {', '.join(saved) or 'none'})")
    ids = ds.load_saved_view(view).values(KEY_FIELD)
    return [r for r in (catalog.get(i) for i in ids) if r is not None]


def select(
    catalog: Catalog, view: str | None = None, ids: list[str] | None = None, anomaly_class: str | None = None,
    source: str | None = None, origin: str | None = None, mask_status: str | None = None, leaks: str | None = None,
    representatives_only: bool = False,
) -> list[Record]:
    """The records to send, in catalog order; every given criterion must hold."""
    if ids:
        found = []
        for i in ids:
            rec = catalog.get(i)
            if rec is None:
                raise DaadError(f"no sample with id or unique prefix {i!r}")
            found.append(rec)
        base = found
    elif view:
        queue = _queue(catalog, view)
        base = queue if queue is not None else _saved_view(catalog, view)
    else:
        base = catalog.find()
    keep = {r.id for r in catalog.find(anomaly_class, source, origin, mask_status, representatives_only, leaks)}
    return [r for r in base if r.id in keep]
