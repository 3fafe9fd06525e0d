"""One config of a local release, read with pyarrow alone: the rows `datasets.load_dataset` gives, without `datasets`.

A release is our own parquet (see `format`): manifest.json lists each config's data
folders, and each folder holds `train-*.parquet` shards. `datasets.load_dataset(folder,
config)` reads the same files, but a fresh process pays ~1 s to import `datasets` and
~0.1 s (with its Arrow cache already built; the first load copies every image into that
cache, "Generating train split") before the first row: about half of a `daad synthesize`
start-up on the benchmark release (benchmarks/cai.py --cli). Here the small columns
(id, class, origin, stored mask box) are read at open, the image and mask bytes only
when a row is asked for, one parquet row group at a time (at most 100 rows / ~100 MB,
as `daad publish` writes them), keeping recently read row groups up to GROUP_CACHE_BYTES.

Row order is `datasets`' order: the config's folders in the order the card lists them,
the shards of each folder sorted by name (tests/test_release_reader.py checks rows, ids
and bytes against `datasets.load_dataset` on a real release).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

from daad.core import taxonomy
from daad.core.errors import DaadError
from daad.release.format import load_manifest

GROUP_CACHE_BYTES = 512 << 20  # image + mask bytes of recently read row groups kept per process
_SMALL = ("id", "anomaly_class", "origin", "mask_box")


def config_names(folder: Path | str) -> list[str]:
    """The configs a version folder holds, as its manifest lists them (the card's YAML lists the same)."""
    configs = load_manifest(folder).get("configs")
    return list(configs) if isinstance(configs, dict) else []


def config_files(folder: Path | str, config: str) -> list[Path]:
    """The parquet shards of `config`, in `datasets`' order (folders as listed, shards by name)."""
    folder = Path(folder)
    listed = load_manifest(folder).get("configs", {}).get(config)
    if listed is None:
        raise DaadError(f"{folder}: no config {config!r}")
    return [f for sub in listed for f in sorted((folder / sub).glob("*.parquet"))]


def _class_names(schema: Any) -> list[str]:
    """The ClassLabel names `datasets` would use: from the schema's `huggingface` metadata, else the taxonomy."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta:
        try:
            names = json.loads(meta)["info"]["features"]["anomaly_class"]["names"]
            if isinstance(names, list):
                return [str(n) for n in names]
        except (ValueError, KeyError, TypeError):
            pass
    return list(taxonomy.CLASSES)


class ReleaseRows:
    """The rows of one config: `ids`, `classes` (names), `origins`, `boxes` (None for releases before `mask_box`).

    Cheap to pickle (file paths and the small columns; no bytes, no open files), so a
    process pool gets it once per worker and reads the row groups it draws from itself.
    """

    def __init__(self, files: Sequence[Path]):
        import pyarrow.parquet as pq

        self.files = [Path(f) for f in files]
        self.ids: list[str] = []
        self.classes: list[str] = []
        self.origins: list[str] = []
        boxes: list[list[int]] = []
        has_boxes = bool(self.files)
        self._where: list[tuple[int, int, int]] = []  # (file, row group, row in group) per row
        self._starts: list[list[int]] = []  # per file: the first row of each row group
        for k, path in enumerate(self.files):
            try:
                pf = pq.ParquetFile(path)
                names = pf.schema_arrow.names
                table = pf.read(columns=[c for c in _SMALL if c in names])
            except Exception as exc:  # a truncated or foreign file: name it
                raise DaadError(f"{path}: cannot read this parquet shard ({type(exc).__name__}: {exc})") from None
            if "id" not in names or "anomaly_class" not in names:
                raise DaadError(f"{path}: not a DAAD shard (no 'id' / 'anomaly_class' column)")
            labels = _class_names(pf.schema_arrow)
            self.ids += table.column("id").to_pylist()
            self.classes += [labels[c] for c in table.column("anomaly_class").to_pylist()]
            self.origins += table.column("origin").to_pylist() if "origin" in names else [""] * table.num_rows
            if "mask_box" in names and has_boxes:
                boxes += table.column("mask_box").to_pylist()
            else:
                has_boxes = False
            starts = [0]
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                self._where += [(k, g, r) for r in range(n)]
                starts.append(starts[-1] + n)
            self._starts.append(starts)
        self.boxes: list[list[int]] | None = boxes if has_boxes else None
        self._groups: OrderedDict[tuple[int, int], tuple[list[Any], list[Any], int]] = OrderedDict()
        self._group_bytes = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def cache_files(self) -> list[dict[str, str]]:
        """The files these rows read, in `datasets.Dataset.cache_files`' shape: what the engines check every node can read."""
        return [{"filename": str(f)} for f in self.files]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_groups"], state["_group_bytes"] = OrderedDict(), 0
        return state

    def select(self, rows: Sequence[int]) -> "ReleaseRows":
        """These rows, in this order (a view: the files are shared, nothing is read)."""
        out = ReleaseRows.__new__(ReleaseRows)
        out.files = self.files
        out.ids = [self.ids[i] for i in rows]
        out.classes = [self.classes[i] for i in rows]
        out.origins = [self.origins[i] for i in rows]
        out.boxes = None if self.boxes is None else [self.boxes[i] for i in rows]
        out._where = [self._where[i] for i in rows]
        out._starts = self._starts
        out._groups, out._group_bytes = OrderedDict(), 0
        return out

    def cells(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Row i's image and mask cells ({bytes, path}, as Arrow stores `datasets.Image`)."""
        k, g, r = self._where[i]
        images, masks, _ = self._group(k, g)
        return images[r], masks[r]

    def masks(self) -> Iterator[dict[str, Any]]:
        """Every row's mask cell in row order (for releases without `mask_box`).

        Reads the mask column of each file once, whole: rows come sorted by id, which
        jumps between row groups, and re-reading a row group per jump made this 1.9x
        slower than `datasets` (0.22 against 0.12 s for 388 masks, benchmarks/cai.py --startup).
        """
        import pyarrow.parquet as pq

        read: dict[int, list[Any]] = {}
        for k, g, r in self._where:
            if k not in read:
                read[k] = pq.ParquetFile(self.files[k]).read(columns=["mask"]).column("mask").to_pylist()
            yield read[k][self._starts[k][g] + r]

    def _group(self, k: int, g: int) -> tuple[list[Any], list[Any], int]:
        import pyarrow.parquet as pq

        hit = self._groups.get((k, g))
        if hit is not None:
            self._groups.move_to_end((k, g))
            return hit
        table = pq.ParquetFile(self.files[k]).read_row_group(g, columns=["image", "mask"])
        entry = (table.column("image").to_pylist(), table.column("mask").to_pylist(), table.nbytes)
        self._groups[(k, g)] = entry
        self._group_bytes += entry[2]
        while self._group_bytes > GROUP_CACHE_BYTES and len(self._groups) > 1:
            _, old = self._groups.popitem(last=False)
            self._group_bytes -= old[2]
        return entry


def read_config(folder: Path | str, config: str) -> ReleaseRows:
    """The rows of `config` in a version folder (the caller has checked that the config exists)."""
    return ReleaseRows(config_files(folder, config))
