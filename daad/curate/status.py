"""What is in the catalog, at a glance: the class x source table and its bar chart."""

from __future__ import annotations

from pathlib import Path

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.text_table import format_table


def status_table(catalog: Catalog) -> str:
    """Samples per anomaly class (rows) and source (columns), with masks present/missing."""
    counts = catalog.counts()
    cols = list(taxonomy.SOURCES)
    header = ["class", *cols, "total", "masks", "no mask"]
    rows = []
    totals = [0] * (len(cols) + 3)
    for cls in taxonomy.CLASSES_AND_UNASSIGNED:
        per = [counts.get((cls, s), {}).get("samples", 0) for s in cols]
        masks = sum(counts.get((cls, s), {}).get("with_mask", 0) for s in cols)
        vals = [*per, sum(per), masks, sum(per) - masks]
        totals = [a + b for a, b in zip(totals, vals)]
        rows.append([cls, *map(str, vals)])
    rows.append(["total", *map(str, totals)])
    return format_table(header, rows)


def plot_status(catalog: Catalog, path: str | Path) -> Path:
    """Save a stacked bar chart (class x source) as PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = catalog.counts()
    classes = list(taxonomy.CLASSES_AND_UNASSIGNED)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    bottom = [0] * len(classes)
    for src in taxonomy.SOURCES:
        vals = [counts.get((c, src), {}).get("samples", 0) for c in classes]
        ax.bar(classes, vals, bottom=bottom, label=src)
        bottom = [a + b for a, b in zip(bottom, vals)]
    ax.set_ylabel("samples")
    ax.set_title(f"DAAD catalog: {len(catalog)} samples by anomaly class and source")
    ax.legend()
    fig.autofmt_xdate(rotation=30)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
