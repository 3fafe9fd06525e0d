"""Where CAI's anomaly patterns come from: numpy arrays, or a published DAAD dataset.

CAI only ever needs, per pattern, the longer side of its mask's bounding box (for
Eq. 1, known up front for the whole pool) and, when the pattern is drawn, a crop of the
image and mask around that box. Both pools hand out `Pattern`s cropped to the box plus
a margin, so a 4000x3000 photo costs its crop once, and an LRU (by bytes) keeps recently
drawn crops decoded.

`open_published` reads a *published* DAAD: a `daad publish` output folder (found
through `daad.release.format`) with pyarrow (`daad.release.reader`), a Hub repo id with
`load_published`, i.e. `datasets.load_dataset(path, "exclude_<x>")`. Both refuse to run
when that config does not exist: falling back to `full` would leak the evaluation set.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np

from daad.core import taxonomy
from daad.core.errors import DaadError
from daad.core.images import plain_png_array
from daad.core.locations import folder_or_hub_id
from daad.core.mask_box import bbox, mask_array, side
from daad.release.format import config_name, published_folder
from daad.release.reader import ReleaseRows, config_names, read_config

CACHE_BYTES = 256 << 20  # decoded crops kept per process: all 506 Magnetic Tile + CrackForest crops take 91 MB (measured)
PREFETCH_BYTES = CACHE_BYTES // 2  # a prefetch stops here: it never evicts a crop that was drawn
MASK_BATCH = 512


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
        self.side = side(self.box)

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
    """A mask cell as bool (H, W), >= 128 of its grey values (`daad.core.mask_box.mask_array`, the rule publish used for `mask_box`)."""
    data = cell.get("bytes")
    return mask_array(Path(cell["path"]).read_bytes() if data is None else data)


def _image_array(cell: dict[str, Any]) -> np.ndarray:
    """An image cell as uint8 RGB or L: a plain PNG (what publish writes) by cv2, anything else as `datasets` decodes it."""
    data = cell.get("bytes")
    plain = plain_png_array(data) if data is not None else None
    return plain if plain is not None else _to_array(_open(cell))


def _to_array(im: Any) -> np.ndarray:
    """A decoded `datasets` Image (PIL) as uint8 RGB or L."""
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    return np.asarray(im)


class DatasetRows:
    """A `datasets.Dataset` with the published features, seen as `ReleaseRows` are (the Hub path, and any Dataset a user built).

    The Dataset is memory-mapped, so this is cheap to send to worker processes.
    """

    def __init__(self, dataset: Any):
        names = dataset.features["anomaly_class"].names
        self.dataset = dataset
        self.ids = list(dataset["id"])
        self.classes = [names[c] for c in dataset["anomaly_class"]]
        self.origins = list(dataset["origin"]) if "origin" in dataset.column_names else [""] * len(self.ids)
        self.boxes = list(dataset["mask_box"]) if "mask_box" in dataset.column_names else None
        self._arrow = dataset.with_format("arrow")  # rows as Arrow cells: the image bytes, decoded by the pool and only once

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def cache_files(self) -> list[dict[str, str]]:
        return self.dataset.cache_files

    def select(self, rows: Sequence[int]) -> "DatasetRows":
        return DatasetRows(self.dataset.select(rows))  # an index mapping, no copy

    def cells(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        row = self._arrow[int(i)]
        return row.column("image")[0].as_py(), row.column("mask")[0].as_py()

    def masks(self) -> Iterator[dict[str, Any]]:
        for batch in self._arrow.select_columns(["mask"]).iter(batch_size=MASK_BATCH):
            yield from batch.column("mask").to_pylist()


Rows = Union[ReleaseRows, DatasetRows]


class PublishedPool:
    """Patterns from a published DAAD: `ReleaseRows` (a local release, read by pyarrow) or a `datasets.Dataset`.

    Mask sides come from the release's `mask_box` column; releases written before it have
    their masks measured once here (masks are small PNGs: 0.17 s for 388). Images are
    decoded only when a pattern is drawn. Patterns are ordered by DAAD id, not by row: two
    releases with the same samples in another row order (catalogs fill in collect order)
    give the same pool, so the same seed gives the same pseudo anomalies.
    """

    def __init__(self, dataset: Any, progress: bool = False):
        from tqdm import tqdm

        rows: Rows = dataset if isinstance(dataset, (ReleaseRows, DatasetRows)) else DatasetRows(dataset)
        rows = rows.select(sorted(range(len(rows)), key=rows.ids.__getitem__))
        self.dataset = rows  # the name `output` and `compare` look up for the files every worker must read (`cache_files`)
        self.ids, self.classes, self.origins = rows.ids, rows.classes, rows.origins
        if rows.boxes is not None:
            sides = [side(b) for b in rows.boxes]
        else:
            sides = []
            with tqdm(total=len(rows), desc="measure patterns", unit="mask", disable=not progress) as bar:
                for cell in rows.masks():
                    sides.append(side(bbox(_mask_array(cell))))
                    bar.update(1)
        self.sides = np.array(sides, dtype=np.int64)
        self._cache: OrderedDict[int, Pattern] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()  # the cache and the rows' row-group cache, shared with the prefetch thread
        self._prefetcher: threading.Thread | None = None
        self._stop = threading.Event()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_cached_bytes"], state["_prefetcher"] = OrderedDict(), 0, None
        del state["_lock"], state["_stop"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock, self._stop = threading.Lock(), threading.Event()

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int) -> Pattern:
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
        return self._keep(i, self._decode(i))

    def _decode(self, i: int) -> Pattern:
        """Pattern `i` decoded and cropped (no cache): outside the lock, so two threads decode at once (PIL and cv2 release the GIL)."""
        with self._lock:
            image_cell, mask_cell = self.dataset.cells(int(i))
        image = _image_array(image_cell)
        mask = _mask_array(mask_cell)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"DAAD sample {self.ids[i]}: mask {mask.shape} and image {image.shape[:2]} differ in size")
        return Pattern(image, mask, self.ids[i], self.classes[i], self.origins[i]).cropped()

    def _keep(self, i: int, pattern: Pattern, evict: bool = True) -> Pattern:
        """Cache `pattern` as `i` (or return the copy another thread cached first: the same pixels) within CACHE_BYTES."""
        with self._lock:
            held = self._cache.get(i)
            if held is not None:
                return held
            self._cache[i] = pattern
            self._cached_bytes += pattern.image.nbytes + pattern.mask.nbytes
            while evict and self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.image.nbytes + old.mask.nbytes
            return pattern

    def prefetch(self, count: int | None = None) -> None:
        """Decode up to `count` patterns (default: all) into the cache in a background thread; returns at once.

        Why: a fresh process pays each pattern's decode the first time it is drawn, which a
        warm library never does: 0.65 s of CPU for the 388 patterns of `benchmarks/cai.py
        --cli 100`, on the thread that computes CAI, while the second core waits for the
        writer's first files. A run of n targets x k pseudo anomalies draws about n*k
        patterns (more only where a draw is redone), so that is what `output.run` asks
        for: a 1-target run decodes at most k in the background, not the pool.
        It changes no pattern drawn and no pixel: `get` returns the same crop however it
        got into the cache. It stops at PREFETCH_BYTES (never evicting a drawn crop), on
        `stop_prefetch`, and on a row that fails to decode (`get` raises its error when,
        and only if, that pattern is drawn). A second call while one runs does nothing.
        """
        if self._prefetcher is not None and self._prefetcher.is_alive():
            return
        todo = range(len(self) if count is None else min(count, len(self)))
        self._stop.clear()
        self._prefetcher = threading.Thread(target=self._prefetch, args=(todo,), name="pattern-prefetch", daemon=True)
        self._prefetcher.start()

    def _prefetch(self, todo: range) -> None:
        for i in todo:
            if self._stop.is_set() or self._cached_bytes > PREFETCH_BYTES:
                return
            with self._lock:
                if i in self._cache:
                    continue
            try:
                pattern = self._decode(i)
            except Exception:  # a broken row is reported by `get`, in the draw that needs it
                return
            self._keep(i, pattern, evict=False)

    def stop_prefetch(self) -> None:
        """Stop a running prefetch and wait for it (at most the one decode under way: ~2 ms for a 900 px pattern)."""
        self._stop.set()
        if self._prefetcher is not None:
            self._prefetcher.join()
            self._prefetcher = None


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
        raise ConfigMissingError(_missing(dataset, config, available, exclude))
    ds = datasets.load_dataset(path, config, split="train", cache_dir=str(cache_dir) if cache_dir else None)
    if classes:
        wanted = {taxonomy.check_class(c) for c in classes}
        names = ds.features["anomaly_class"].names
        keep = [i for i, c in enumerate(ds["anomaly_class"]) if names[c] in wanted]
        ds = ds.select(keep)
    return ds, config, path


def open_published(
    dataset: str | Path,
    exclude: str | None,
    classes: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[Rows, str, str]:
    """The published DAAD config for `exclude` (and only `classes`), as `PublishedPool` takes it.

    A local release is read with pyarrow (`daad.release.reader`): no `datasets` import and
    no Arrow cache to build, 1.1-1.3 s less start-up for `daad synthesize` (measured on the
    benchmark release). A Hub repo id goes through `load_published` (`datasets`), as before;
    `progress=False` silences its bars. Returns (rows, the config name, the resolved path).
    Raises ConfigMissingError when the config is absent (never falls back to `full`).
    """
    where = folder_or_hub_id(dataset)
    if not isinstance(where, Path):
        if not progress:
            import datasets

            datasets.disable_progress_bars()
        ds, config, path = load_published(where, exclude, classes, cache_dir)
        return DatasetRows(ds), config, path
    folder = published_folder(where)
    config = config_for(exclude)
    available = config_names(folder)
    if config not in available:
        raise ConfigMissingError(_missing(dataset, config, available, exclude))
    rows = read_config(folder, config)
    if classes:
        wanted = {taxonomy.check_class(c) for c in classes}
        rows = rows.select([i for i, c in enumerate(rows.classes) if c in wanted])
    return rows, config, str(folder)


def _missing(dataset: str | Path, config: str, available: Sequence[str], exclude: str | None) -> str:
    return (f"{dataset}: no config {config!r} (it has: {', '.join(available)}); refusing to fall back to 'full', "
            f"which would leak {exclude!r} into the synthetic training data")
