"""Benchmark: `daad publish` against writing the same rows with pyarrow alone, in the same run.

    python benchmarks/publish.py              # 400 real Magnetic Tile defects with their masks
    python benchmarks/publish.py --repeats 5  # more interleaved rounds (medians are printed)

In each round two fresh DAAD_HOMEs get the same N real anomaly images with ground-truth
masks (Magnetic Tile defects from ../shared/data, ingested as CC-BY-4.0 photos so that
every row is publishable), each ingest timed: one as catalogs written before ingest
stored hashes and mask boxes are (`ingest(..., hashes=False)`, then its `mask_boxes`
emptied: nothing stored), one as `daad collect` now does (both stored at ingest), and
what hashing adds to an ingest alone is timed:
`perceptual.image_hashes` on the decoded images. Then, each timed:

1. pyarrow: read the same stored image and mask bytes and write the same columns
   (`features().arrow_schema`) into one parquet file, rows in row groups of 100: the
   floor for writing these rows;
2. the floor of hashing: decoding every stored image alone (`Image.open(...).load()`),
   work pyarrow never does, and `hash_files` (decode + thumbnails + DCT) as publish
   runs it, in one thread and in `hashing.default_threads()` threads of this process;
3. `publish` on the catalog without stored hashes or boxes (an old catalog: it hashes every
   image and boxes every mask, in threads or processes while it writes the rows);
4. `publish` on the catalog collected with hashes and boxes (nothing left to compute);
5. `publish` again, a new version of the first (what the first run stored is reused).

An untimed round first pays the imports and fills the page cache for everyone. Printed:
medians over the rounds of CPU seconds (this process, all its threads, + any worker
processes) and wall seconds, their ratios to pyarrow's, and the load average (the
machine is shared; wall times suffer most from it). The goal is publish within 2x of
pyarrow; (pyarrow + decoding) / pyarrow is the CPU floor for a publish that must hash,
and max(pyarrow, (pyarrow + 1-thread hashing) / CPUs) its wall floor when the hashing
overlaps the writing on every CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
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


def build(home: Path, n: int, hashes: bool):
    from daad.core.catalog import Catalog
    from daad.core.ingest import Item, ingest
    from daad.core.media_store import MediaStore

    items = []
    for img in sorted(SHARED.glob("magnetic_tile/MT_*/Imgs/*.jpg")):
        if img.parts[-3] == "MT_Free":
            continue
        items.append(Item(image=img, name=str(img), source="photograph", origin="photos:bench", anomaly_class="crack",
                          mask=img.with_suffix(".png"), mask_binarize=True, license="CC-BY-4.0", attribution="bench"))
    if not items:
        raise SystemExit(f"Error: no Magnetic Tile images under {SHARED} (set DAAD_SHARED_DATA)")
    catalog, store = Catalog(home), MediaStore(home)
    ingest(items[:n], catalog, store, progress=False, hashes=hashes)
    if not hashes:  # an old catalog: no mask boxes either (stored since schema 3)
        with sqlite3.connect(catalog.path) as db:
            db.execute("DELETE FROM mask_boxes")
        db.close()
    return catalog, store


def pyarrow_rows(catalog, store, path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from daad.release.publish import features, select

    recs = select(catalog.find(), store).records
    boxes = catalog.mask_boxes(r.mask_sha for r in recs)  # a stored catalog's boxes (empty for the old one: null column)
    schema = features().arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        for s in range(0, len(recs), 100):
            rows = [{"image": {"bytes": store.image_path(r.id).read_bytes(), "path": None},
                     "mask": {"bytes": store.mask_path(r.mask_sha).read_bytes(), "path": None},
                     "anomaly_class": 0, "source": r.source, "origin": r.origin, "origin_label": r.origin_label,
                     "license": r.license, "attribution": r.attribution, "url": "", "phash": r.phash or "", "id": r.id,
                     "width": r.width, "height": r.height,
                     "mask_box": boxes.get(r.mask_sha)} for r in recs[s : s + 100]]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return len(recs)


def decode_all(catalog, store) -> None:
    from PIL import Image

    for r in catalog.find():
        with Image.open(store.image_path(r.id)) as im:
            im.load()


def hash_all(catalog, store, threads: int | None) -> None:
    from daad.curate import hashing

    hashing.hash_files([store.image_path(r.id) for r in catalog.find()], progress=False, threads=threads)


def ingest_hash_only(catalog, store):
    """What hashing at ingest adds: `perceptual.image_hashes` on the decoded images (decoded untimed, as ingest holds them)."""
    from daad.core import perceptual
    from daad.core.images import load_image

    images = [load_image(store.image_path(r.id)) for r in catalog.find()]
    return lambda: [perceptual.image_hashes(im) for im in images]


def one_round(tmp: Path, n: int) -> tuple[int, dict[str, tuple[float, float]]]:
    from daad.release.publish import publish

    home, hashed_home = tmp / f"home{time.monotonic_ns()}", tmp / f"hashed{time.monotonic_ns()}"
    t: dict[str, tuple[float, float]] = {}

    def run(name: str, fn):
        out, c, w = timed(fn)
        t[name] = (c, w)
        return out

    catalog, store = run("ingest", lambda: build(home, n, hashes=False))
    hashed, hashed_store = run("ingest_hashed", lambda: build(hashed_home, n, hashes=True))
    rows = run("pyarrow", lambda: pyarrow_rows(hashed, hashed_store, home / "pyarrow.parquet"))
    run("decode", lambda: decode_all(catalog, store))
    run("ingest_hash", ingest_hash_only(catalog, store))
    run("hash1", lambda: hash_all(catalog, store, 1))
    run("hash", lambda: hash_all(catalog, store, None))
    run("publish", lambda: publish(catalog, "1.0.0", home / "hub", progress=False, gated=""))
    run("hashed", lambda: publish(hashed, "1.0.0", hashed_home / "hub", progress=False, gated=""))
    run("again", lambda: publish(catalog, "1.0.1", home / "hub", progress=False, gated=""))
    return rows, t


def main() -> None:
    from daad.curate import hashing

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("-n", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds, each on a fresh home (default 3)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one_round(Path(tmp), a.n)  # imports and the page cache, for everyone
        results = [one_round(Path(tmp), a.n) for _ in range(a.repeats)]
    rows, rounds = results[0][0], [t for _, t in results]
    med = {k: (statistics.median(r[k][0] for r in rounds), statistics.median(r[k][1] for r in rounds)) for k in rounds[0]}
    pa, pa_wall = med["pyarrow"]
    print(f"publish benchmark: {rows} rows (real Magnetic Tile defects + masks), {os.cpu_count()} CPUs, "
          f"medians of {a.repeats} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'what':58s} {'CPU s':>7s} {'wall s':>7s} {'CPU / pyarrow':>14s} {'wall / pyarrow':>15s}")
    names = {"pyarrow": "pyarrow: same rows, one parquet file",
             "decode": "decoding every image alone (floor of hashing)",
             "hash1": "hash_files alone, 1 thread (decode + thumbnails + DCT)",
             "hash": f"hash_files alone, {hashing.default_threads()} threads (as publish runs it)",
             "publish": "daad publish, nothing stored (hashes + boxes all)",
             "hashed": "daad publish, hashes + boxes stored at ingest",
             "again": "daad publish again (what it stored reused)"}
    for k, label in names.items():
        print(f"{label:58s} {med[k][0]:7.2f} {med[k][1]:7.2f} {med[k][0] / pa:13.2f}x {med[k][1] / pa_wall:14.2f}x")
    cpus = hashing.usable_cpus()
    wall_floor = max(pa, (pa + med["hash1"][0]) / cpus)
    print(f"floor for a publish that must hash: (pyarrow + decoding) / pyarrow = {(pa + med['decode'][0]) / pa:.2f}x CPU; "
          f"wall, hashing overlapped on {cpus} CPUs: max(pyarrow, (pyarrow + hash_files 1 thread) / {cpus}) = "
          f"{wall_floor:.2f} s = {wall_floor / pa_wall:.2f}x pyarrow's wall")
    ing, ing_h = med["ingest"], med["ingest_hashed"]
    print(f"ingest of the {rows} images: {ing[0]:.2f} CPU s / {ing[1]:.2f} s wall without hashes, {ing_h[0]:.2f} / {ing_h[1]:.2f} "
          f"with hashes stored at ingest (+{(ing_h[0] / ing[0] - 1) * 100:.0f}% CPU); hashing the decoded images alone "
          f"(what ingest adds) {med['ingest_hash'][0]:.2f} CPU s, saving publish {med['publish'][0] - med['hashed'][0]:.2f} CPU s")


if __name__ == "__main__":
    main()
