"""Benchmark: `daad publish` against writing the same rows with pyarrow alone, in the same run.

    python benchmarks/publish.py              # 400 real Magnetic Tile defects with their masks

A temporary DAAD_HOME gets N real anomaly images with ground-truth masks (Magnetic
Tile defects from ../shared/data, ingested as CC-BY-4.0 photos so that every row is
publishable), without hashes (dedupe has not run). Then, each timed:

1. pyarrow: read the same stored image and mask bytes and write the same columns
   (`features().arrow_schema`) into one parquet file, rows in row groups of 100: the
   floor for writing these rows;
(best of two runs, one before and one after the publishes; an untimed run first pays the
imports and fills the page cache for everyone), then
2. `publish` as a user runs it first (no stored hashes: it hashes every image);
3. `publish` again, a new version (the hashes the first run stored are reused).

Printed: seconds (CPU of this process + its hashing workers, and wall) and the ratio to
pyarrow. The goal is publish within 2x of pyarrow.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def cpu() -> float:
    """CPU seconds of this process and its finished children (hash_files' worker processes)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn):
    w, c = time.perf_counter(), cpu()
    out = fn()
    return out, cpu() - c, time.perf_counter() - w


def build(home: Path, n: int):
    from daad.core.catalog import Catalog
    from daad.core.ingest import Item, ingest
    from daad.core.media_store import MediaStore

    items = []
    for img in sorted(SHARED.glob("magnetic_tile/MT_*/Imgs/*.jpg")):
        if img.parts[-3] == "MT_Free":
            continue
        items.append(Item(image=img, name=str(img), source="photograph", origin="photos:bench", anomaly_class="crack",
                          mask=img.with_suffix(".png"), mask_binarize=True, license="CC-BY-4.0", attribution="bench"))
    catalog, store = Catalog(home), MediaStore(home)
    ingest(items[:n], catalog, store, progress=False)
    return catalog, store


def pyarrow_rows(catalog, store, path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from daad.release.publish import features, select

    recs = select(catalog.find(), store).records
    schema = features().arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        for s in range(0, len(recs), 100):
            rows = [{"image": {"bytes": store.image_path(r.id).read_bytes(), "path": None},
                     "mask": {"bytes": store.mask_path(r.mask_sha).read_bytes(), "path": None},
                     "anomaly_class": 0, "source": r.source, "origin": r.origin, "origin_label": r.origin_label,
                     "license": r.license, "attribution": r.attribution, "url": "", "phash": r.phash or "", "id": r.id,
                     "width": r.width, "height": r.height} for r in recs[s : s + 100]]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return len(recs)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("-n", type=int, default=400)
    a = ap.parse_args()
    from daad.release.publish import publish

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        catalog, store = build(home, a.n)
        pyarrow_rows(catalog, store, Path(tmp) / "warm.parquet")  # imports and the page cache, for both
        rows, c_pa, w_pa = timed(lambda: pyarrow_rows(catalog, store, Path(tmp) / "pyarrow.parquet"))
        _, c_1, w_1 = timed(lambda: publish(catalog, "1.0.0", Path(tmp) / "hub", progress=False, gated=""))
        _, c_2, w_2 = timed(lambda: publish(catalog, "1.0.1", Path(tmp) / "hub", progress=False, gated=""))
        _, c_pa2, w_pa2 = timed(lambda: pyarrow_rows(catalog, store, Path(tmp) / "pyarrow2.parquet"))
        c_pa, w_pa = min(c_pa, c_pa2), min(w_pa, w_pa2)  # best of two, before and after the publishes
    print(f"publish benchmark: {rows} rows (real Magnetic Tile defects + masks), {os.cpu_count()} CPUs")
    print(f"{'what':44s} {'CPU s':>7s} {'wall s':>7s} {'CPU / pyarrow':>14s}")
    print(f"{'pyarrow: same rows, one parquet file':44s} {c_pa:7.2f} {w_pa:7.2f} {1.0:13.2f}x")
    print(f"{'daad publish, no stored hashes (hashes all)':44s} {c_1:7.2f} {w_1:7.2f} {c_1 / c_pa:13.2f}x")
    print(f"{'daad publish again (stored hashes reused)':44s} {c_2:7.2f} {w_2:7.2f} {c_2 / c_pa:13.2f}x")


if __name__ == "__main__":
    main()
