"""The paper's nine existing datasets: find each under one folder, collect the ones there, list the rest.

The nine are those the authors' release names (`source of real anomalies.xlsx`, sheet
`Existing_datasets`, in its order: AeBAD, DAGM2007, Magnetic_tile, MVTec, MVtec_LOCO_AD,
RSDDs, VisA, VTADL[BTAD], crackForest). daad's other adapters (KSDD2, MPDD, KolektorSDD,
MVTec 3D-AD) are extras and not looked for here.

Why by layout and not by folder name: archives extract to names nobody remembers
(`BTech_Dataset_transformed`, `Magnetic-tile-defect-datasets.`, `RSDDs dataset`), so each
adapter's own `check_layout` decides, on ROOT itself, on its sub-folders and on their
sub-folders (one level of wrapper folder, as most archives add).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from daad.core.catalog import Catalog
from daad.core.errors import DaadError, LayoutError
from daad.core.ingest import CollectReport
from daad.core.media_store import MediaStore

PAPER_DATASETS: tuple[str, ...] = ("aebad", "dagm", "magnetic_tile", "mvtec_ad", "mvtec_loco", "rsdds", "visa", "btad", "crackforest")
EXTRA_DATASETS: tuple[str, ...] = ("ksdd2", "mpdd", "ksdd", "mvtec_3d")


@dataclass
class PaperDataset:
    """What happened to one of the nine: `status` is collected, found (collecting failed: `error`) or missing."""

    name: str
    title: str
    status: str
    path: Path | None = None
    report: CollectReport | None = None
    error: str = ""
    homepage: str = ""
    license: str = ""


@dataclass
class PaperReport:
    root: Path
    datasets: list[PaperDataset] = field(default_factory=list)

    def summary(self) -> str:
        """The table of the nine (status, where, records) and, for each missing one, where to get it."""
        head = ("dataset", "status", "added", "existing", "skipped", "bad", "where")
        rows = []
        for d in self.datasets:
            r = d.report
            counts = [str(r.count(s)) if r else "-" for s in ("added", "existing", "skipped", "bad")]
            if r:
                counts[1] = str(r.count("existing") + r.count("mask_added"))
            where = str(d.path) if d.path else f"get it from {d.homepage} (licence {d.license}; cards/sources/{d.name}.md)"
            rows.append((d.title, d.status, *counts, where))
        widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head) - 1)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[-1]]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
        n = {s: sum(d.status == s for d in self.datasets) for s in ("collected", "found", "missing")}
        lines.append(f"{n['collected']} of the paper's 9 datasets collected, {n['found']} found but not collected, {n['missing']} missing under {self.root}")
        lines += [f"bad: {d.title}: {d.error}" for d in self.datasets if d.error]
        return "\n".join(lines)


def _candidates(root: Path) -> list[Path]:
    """ROOT, its sub-folders, and theirs (one wrapper level), in a stable order, hidden folders left out."""

    def subdirs(p: Path) -> list[Path]:
        try:
            return sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return []

    level1 = subdirs(root)
    return [root, *level1, *(g for c in level1 for g in subdirs(c))]


def find_paper_datasets(root: Union[str, Path]) -> dict[str, Path | None]:
    """name -> the folder under `root` that has that dataset's layout (None when none has)."""
    from . import get_adapter

    root = Path(root).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    candidates = _candidates(root)
    found: dict[str, Path | None] = {}
    for name in PAPER_DATASETS:
        adapter = get_adapter(name)
        found[name] = None
        for folder in candidates:
            try:
                adapter.check_layout(folder)
            except (LayoutError, OSError):
                continue
            found[name] = folder
            break
    return found


def collect_paper_datasets(
    root: Union[str, Path],
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    progress: bool = True,
) -> PaperReport:
    """Collect every one of the paper's nine datasets found under `root`; report all nine.

    A dataset that fails to collect (a layout error inside it, a bad mapping) is reported
    as found with its error; the others are still collected.
    """
    from . import collect_dataset, get_adapter

    root = Path(root).expanduser()
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    report = PaperReport(root)
    for name, path in find_paper_datasets(root).items():
        a = get_adapter(name)
        entry = PaperDataset(name, a.title, "missing", path, homepage=a.homepage, license=a.license)
        if path is not None:
            try:
                entry.report = collect_dataset(name, path, catalog=catalog, store=store, progress=progress)
                entry.status = "collected"
            except (DaadError, ValueError, OSError) as exc:
                entry.status, entry.error = "found", str(exc)
        report.datasets.append(entry)
    return report
