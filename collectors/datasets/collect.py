"""Collect one dataset into the catalog, and say what happened per class.

Why a layer over `ingest`: a wrong PATH is the commonest mistake with nine look-alike
datasets, so the layout is checked before anything is read and the error says which
dataset the folder looks like instead; and the report a curator wants here counts
skipped types by source label (`cable/bent_wire: 10`), not one line per image.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Union

from daad.core.catalog import Catalog
from daad.core.errors import LayoutError
from daad.core.ingest import CollectReport, ingest
from daad.core.text_table import format_table
from daad.core.media_store import MediaStore
from daad.core.names import one_line, shown


def _looks_like(root: Path, exclude: str) -> str:
    """Names of the other datasets whose layout `root` has (for a wrong-PATH hint)."""
    from . import ADAPTERS

    found = []
    for name, adapter in ADAPTERS.items():
        if name == exclude:
            continue
        try:
            adapter.check_layout(root)
        except LayoutError:
            continue
        found.append(name)
    return ", ".join(found)


def find_root(name: str, folder: Union[str, Path]) -> Path:
    """`folder` if it has dataset `name`'s layout, else the one sub-folder that has it.

    Archives differ in whether they wrap the dataset in a top folder
    (`BTech_Dataset_transformed/`, `KolektorSDD/`); after a download the user should not
    have to know which. Raises the LayoutError of `folder` when neither fits.
    """
    from . import get_adapter

    adapter = get_adapter(name)
    folder = Path(folder).expanduser()
    try:
        adapter.check_layout(folder)
        return folder
    except LayoutError as exc:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []
        fits = []
        for sub in subs:
            try:
                adapter.check_layout(sub)
            except LayoutError:
                continue
            fits.append(sub)
        if len(fits) == 1:
            return fits[0]
        raise exc from None


def collect_dataset(
    name: str,
    root: Union[str, Path],
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    mapping_file: Union[str, Path, None] = None,
    progress: bool = True,
) -> CollectReport:
    """Collect every mapped anomalous image of dataset `name` at `root`; idempotent by content hash.

    `root` may also be a folder whose only sub-folder is the dataset (an archive's wrapper
    folder). Raises LayoutError (before touching the catalog) when `root` is not that
    dataset, naming the dataset it looks like instead; ValueError for an unknown name or
    a bad mapping file.
    """
    from . import get_adapter

    adapter = get_adapter(name)
    root = Path(root).expanduser()
    try:
        root = find_root(adapter.name, root)
    except LayoutError as exc:
        other = _looks_like(root, adapter.name) if root.is_dir() else ""
        if other:
            raise LayoutError(f"{exc}. It looks like {other}: try `daad collect dataset {other.split(',')[0]} {root}`") from None
        raise
    mapping = adapter.mapping(mapping_file)
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    store.clean_stale_temps()
    items = list(adapter.iter_items(root, mapping))
    return ingest(items, catalog, store, progress=progress, total=len(items), desc=adapter.name)


def summary(report: CollectReport) -> str:
    """A class table (collected = new, existing = already in the catalog, unmapped = skipped
    by the mapping, bad), then the unmapped source labels with counts, then each bad item."""
    cols = ("collected", "existing", "unmapped", "bad")
    status_col = {"added": "collected", "mask_added": "existing", "existing": "existing", "skipped": "unmapped", "bad": "bad"}
    rows: dict[str, Counter] = {}
    for o in report.outcomes:
        cls = "(unmapped)" if o.status == "skipped" else (o.anomaly_class or "-")
        rows.setdefault(cls, Counter())[status_col[o.status]] += 1
    total: Counter = Counter()
    for cls in rows.values():
        total.update(cls)
    table = [[cls, *(rows[cls][c] for c in cols)] for cls in sorted(rows)] + [["total", *(total[c] for c in cols)]]
    lines = [format_table(["class", *cols], table, min_width=[0] + [9] * len(cols))]
    skipped = Counter(o.reason for o in report.outcomes if o.status == "skipped")
    if skipped:
        lines.append("unmapped (skipped), by source label:")
        lines.extend(f"  {n:5d}  {one_line(reason)}" for reason, n in sorted(skipped.items()))
    lines.extend(f"bad: {shown(o.name)}: {one_line(o.reason)}" for o in report.bad)
    return "\n".join(lines)
