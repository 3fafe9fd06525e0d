"""The PNGs people look at: learning curves, test images with their predicted maps, the comparison chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from daad.core.atomic import atomic_path

from .data import ImageSet

GRID_IMAGES = 8


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def curve_png(curve: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss and the four metrics against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in curve]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(epochs, [r["loss"] for r in curve], color="black")
    a.set_xlabel("epoch")
    a.set_ylabel("focal loss")
    for key in ("pixel_auroc", "pixel_ap", "pro", "image_auroc"):
        values = [r[key] for r in curve]
        if all(v is not None for v in values):
            b.plot(epochs, values, label=key)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def predictions_png(test: ImageSet, maps: np.ndarray, path: Path, n: int = GRID_IMAGES) -> None:
    """Rows: test image, ground truth, predicted map; anomalous images first, up to `n` columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anomalous = test.masks.reshape(len(test), -1).any(axis=1)
    picks = (list(np.flatnonzero(anomalous)[: n - 1]) + list(np.flatnonzero(~anomalous)))[:n]
    fig, axes = plt.subplots(3, len(picks), figsize=(1.6 * len(picks), 5), squeeze=False)
    for j, i in enumerate(picks):
        for row, (img, cmap) in enumerate(((test.images[i], None), (test.masks[i], "gray"), (maps[i], "jet"))):
            ax = axes[row][j]
            ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][j].set_title(Path(test.names[i]).name[:14], fontsize=6)
    for row, label in enumerate(("image", "truth", "map")):
        axes[row][0].set_ylabel(label)
    _save(fig, path)


def compare_png(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path, title: str = "") -> None:
    """Bars of mean +- std per method and metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) * len(keys) / 2), 4))
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(keys))
    for i, r in enumerate(rows):
        means = [100 * r["mean"].get(k, np.nan) for k in keys]
        stds = [100 * r["std"].get(k, 0.0) for k in keys]
        ax.bar(x + i * width, means, width, yerr=stds, label=r["method"], capsize=2)
    ax.set_xticks(x + width * (len(rows) - 1) / 2)
    ax.set_xticklabels(keys)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    _save(fig, path)
