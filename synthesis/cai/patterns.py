"""Where CAI's anomaly patterns come from: numpy arrays, or a published DAAD dataset.

CAI only ever needs, per pattern, the longer side of its mask's bounding box (for
Eq. 1, known up front for the whole pool) and, when the pattern is drawn, a crop of the
image and mask around that box. Both pools hand out `Pattern`s cropped to the box plus
a margin, so a 4000x3000 photo costs its crop once, and an LRU (by bytes) keeps recently
drawn crops decoded.

`load_published` reads a *published* DAAD (a `daad publish` output folder, found
through `daad.release.format`, or a Hub repo id) with
`datasets.load_dataset(path, "exclude_<x>")`, and refuses to run when that config does not exist: falling back to `full` would leak the evaluation set.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from daad.core import taxonomy
from daad.core.errors import DaadError
from daad.core.locations import folder_or_hub_id
from daad.release.format import config_name, published_folder

from .matching import bbox

CACHE_BYTES = 256 << 20  # decoded crops kept per process: all 506 Magnetic Tile + CrackForest crops take 91 MB (measured)
MASK_BATCH = 512
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ConfigMissingError(DaadError):
    """The published dataset has no `exclude_<x>` config for the requested evaluation dataset."""


@dataclass
class Pattern:
    """One real anomaly: image (H, W) or (H, W, C) uint8, bool mask (H, W), and where it comes from."""

    image: np.ndarray
    mask: np.ndarray
    id: str = ""
    anomaly_class: str = ""
    origin: str = ""
    side: int = field(init=False)  # s_a = max(minbb(mask)), in this pattern's pixels
    box: tuple[int, int, int, int] | None = field(init=False, repr=False)  # the mask's (top, left, h, w)

    def __post_init__(self) -> None:
        self.mask = np.asarray(self.mask).astype(bool)
        if self.image.shape[:2] != self.mask.shape:
            raise ValueError(f"pattern {self.id or '<array>'}: image {self.image.shape[:2]} and mask {self.mask.shape} differ in size")
        self.box = bbox(self.mask)
        self.side = 0 if self.box is None else max(self.box[2], self.box[3])

    def cropped(self) -> "Pattern":
        """This pattern cut to its mask's box plus a margin of a quarter of the box side (+2 px).

        The margin gives the resized pattern real source context for its gradients; CAI
        pads by edge replication in the rare case that more is needed.
        """
        if self.box is None:
            return self
        top, left, h, w = self.box
        m = self.side // 4 + 2
        H, W = self.mask.shape
        r0, r1, c0, c1 = max(0, top - m), min(H, top + h + m), max(0, left - m), min(W, left + w + m)
        out = Pattern(self.image[r0:r1, c0:c1].copy(), self.mask[r0:r1, c0:c1].copy(), self.id, self.anomaly_class, self.origin)
        return out


class ArrayPool:
    """A pattern pool held in memory (the numpy API: `CAI(ArrayPool([...]))` or `CAI([...])`)."""

    def __init__(self, patterns: Iterable[Pattern]):
        self._patterns = [p.cropped() for p in patterns]
        self.sides = np.array([p.side for p in self._patterns], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._patterns)

    def get(self, i: int) -> Pattern:
        return self._patterns[i]


def _open(cell: dict[str, Any]) -> Any:
    """An Arrow image cell ({bytes, path}) opened by PIL, as `datasets.Image` decodes it."""
    from PIL import Image

    if cell.get("bytes") is None:
        return Image.open(cell["path"])
    return Image.open(io.BytesIO(cell["bytes"]))


def _mask_array(cell: dict[str, Any]) -> np.ndarray:
    """A mask cell as bool (H, W), >= 128 of its grey values.

    8-bit grey PNGs (what `daad publish` writes) are decoded by cv2, 1.4x faster than PIL
    on the published masks and the same pixels (lossless, no conversion); anything else
    goes through PIL's `convert("L")` as before, so the grey rule never changes.
    """
    data = cell.get("bytes")
    if data is not None and data[:8] == PNG_SIGNATURE and data[24] == 8 and data[25] == 0:  # IHDR: depth 8, colour type 0
        import cv2

        grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if grey is not None and grey.ndim == 2:
            return grey >= 128
    return np.asarray(_open(cell).convert("L")) >= 128


def _to_array(im: Any) -> np.ndarray:
    """A decoded `datasets` Image (PIL) as uint8 RGB or L."""
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    return np.asarray(im)


class PublishedPool:
    """Patterns from a `datasets.Dataset` with the published DAAD features (image, mask, anomaly_class, id, origin).

    Mask sides are computed once at construction (masks are small PNGs); images are
    decoded only when a pattern is drawn. The Dataset is memory-mapped, so the pool is
    cheap to send to worker processes. Patterns are ordered by DAAD id, not by row: two
    releases with the same samples in another row order (catalogs fill in collect order)
    give the same pool, so the same seed gives the same pseudo anomalies.
    """

    def __init__(self, dataset: Any, progress: bool = False):
        from tqdm import tqdm

        row_ids = list(dataset["id"])
        dataset = dataset.select(sorted(range(len(row_ids)), key=row_ids.__getitem__))  # an index mapping, no copy
        self.dataset = dataset
        names = dataset.features["anomaly_class"].names
        self.classes = [names[c] for c in dataset["anomaly_class"]]
        self.ids = sorted(row_ids)
        self.origins = list(dataset["origin"]) if "origin" in dataset.column_names else [""] * len(self.ids)
        self._arrow = dataset.with_format("arrow")  # rows as Arrow cells: the image bytes, decoded here and only once
        sides = []
        masks = self._arrow.select_columns(["mask"])
        with tqdm(total=len(masks), desc="measure patterns", unit="mask", disable=not progress) as bar:
            for batch in masks.iter(batch_size=MASK_BATCH):
                for cell in batch.column("mask").to_pylist():
                    box = bbox(_mask_array(cell))
                    sides.append(0 if box is None else max(box[2], box[3]))
                bar.update(batch.num_rows)
        self.sides = np.array(sides, dtype=np.int64)
        self._cache: OrderedDict[int, Pattern] = OrderedDict()
        self._cached_bytes = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_cached_bytes"] = OrderedDict(), 0
        return state

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int) -> Pattern:
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        row = self._arrow[int(i)]
        image = _to_array(_open(row.column("image")[0].as_py()))
        mask = _mask_array(row.column("mask")[0].as_py())
        if mask.shape != image.shape[:2]:
            raise ValueError(f"DAAD sample {self.ids[i]}: mask {mask.shape} and image {image.shape[:2]} differ in size")
        pattern = Pattern(image, mask, self.ids[i], self.classes[i], self.origins[i]).cropped()
        self._cache[i] = pattern
        self._cached_bytes += pattern.image.nbytes + pattern.mask.nbytes
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.image.nbytes + old.mask.nbytes
        return pattern


def resolve_dataset(dataset: str | Path) -> str:
    """A local published folder (the versions folder or one version) or a Hub repo id, as `load_dataset` wants it."""
    where = folder_or_hub_id(dataset)  # a mistyped folder is "no such folder", not 23 s of Hub retries
    if isinstance(where, Path):
        return str(published_folder(where))
    return where


def config_for(exclude: str | None) -> str:
    """`exclude_<x>` for `--exclude x` (the name `daad publish` writes), `full` without it."""
    return config_name(exclude)


def load_published(
    dataset: str | Path,
    exclude: str | None,
    classes: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Any, str, str]:
    """Load the published DAAD config for `exclude` (and only `classes`, when given).

    Returns (the `datasets.Dataset`, the config name, the resolved path).
    Raises ConfigMissingError when the config is absent (never falls back to `full`).
    """
    import datasets

    path = resolve_dataset(dataset)
    config = config_for(exclude)
    try:
        available = datasets.get_dataset_config_names(path)
    except Exception as exc:  # a folder that is not a dataset, an unknown repo id, no network
        raise DaadError(f"{dataset}: cannot read a published DAAD there ({type(exc).__name__}: {exc})") from None
    if config not in available:
        raise ConfigMissingError(
            f"{dataset}: no config {config!r} (it has: {', '.join(available)}); refusing to fall back to 'full', "
            f"which would leak {exclude!r} into the synthetic training data"
        )
    ds = datasets.load_dataset(path, config, split="train", cache_dir=str(cache_dir) if cache_dir else None)
    if classes:
        wanted = {taxonomy.check_class(c) for c in classes}
        names = ds.features["anomaly_class"].names
        keep = [i for i, c in enumerate(ds["anomaly_class"]) if names[c] in wanted]
        ds = ds.select(keep)
    return ds, config, path
