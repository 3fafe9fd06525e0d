"""Where the time goes when CAI synthesis and hashing run on Ray instead of local processes.

    python benchmarks/scale.py [--targets 24] [--per-image 4] [--overhead-items 2000]

Real data from ../shared/data (or DAAD_SHARED_DATA): the patterns of benchmarks/cai.py
(MVTec AD + Magnetic Tile anomalies), the MVTec AD test/good images as targets (reused
under distinct keys up to --targets). It starts a real two-node Ray cluster on this
machine (`daad.engine.local_cluster`, one CPU per node, stopped at the end) and runs
the same synthesis with `--engine local` (1 and 2 processes) and on Ray with 1 and 2
workers, checks that all four wrote the same bytes, and prints throughput ratios
against local with one process. The per-item overhead of Ray is measured on a function
that does nothing: seconds per item through `RayEngine.imap` minus through the local
engine in this process. Last, the measured per-item costs (CAI per target, hashing
per image, SQLite writes of evaluation hashes) extrapolated to a million targets and
ten million hashes: those lines are extrapolations, the others measurements.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from cai import DATA, real_patterns

from daad.engine import LocalEngine, get_engine
from daad.engine.local_cluster import LocalRayCluster
from daad.synthesis.cai import CAI
from daad.synthesis.cai.matching import split_quota
from daad.synthesis.cai.output import Target, run


def _noop(state: None, item: int) -> int:
    return item


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def synth(cai: CAI, targets: list[Target], out: Path, engine) -> float:
    t = time.perf_counter()
    report = run(cai, targets, out, progress=False, engine=engine)
    assert not report.failed, report.failed
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=24)
    ap.add_argument("--per-image", type=int, default=4)
    ap.add_argument("--overhead-items", type=int, default=2000)
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real sample data not found at {DATA} (set DAAD_SHARED_DATA)")
    goods = sorted((DATA / "mvtec_ad").glob("*/test/good/*.png"))
    targets = [Target(f"{i:04d}/{goods[i % len(goods)].name}", goods[i % len(goods)]) for i in range(a.targets)]
    cai = CAI(real_patterns(DATA), quota=split_quota(a.per_image), size=256, foreground="otsu", seed=0)
    print(f"daad scale benchmark: {os.cpu_count()} CPUs here, {len(targets)} targets x {a.per_image} at 256 px, "
          f"{len(cai.pool)} real patterns")
    with tempfile.TemporaryDirectory(prefix="daad-scale-") as tmp:
        root = Path(tmp)
        secs = {"local, 1 process": synth(cai, targets, root / "local1", LocalEngine(1)),
                "local, 2 processes": synth(cai, targets, root / "local2", LocalEngine(2))}
        with LocalRayCluster(root / "ray", nodes=2, cpus=1) as cluster:
            for n in (1, 2):
                engine = get_engine("ray", address=cluster.address, workers=n)
                synth(cai, targets[:2], root / f"warm{n}", engine)  # actors and imports warm in the object store, as in a long run
                secs[f"ray, {n} worker{'s' if n > 1 else ''} on 2 nodes"] = synth(cai, targets, root / f"ray{n}", engine)
            ray2 = get_engine("ray", address=cluster.address, workers=2)
            items = list(range(a.overhead_items))
            t = time.perf_counter()
            assert len(dict(ray2.imap(_noop, items))) == len(items)
            ray_item = (time.perf_counter() - t) / len(items)
            t = time.perf_counter()
            assert len(dict(LocalEngine(1).imap(_noop, items))) == len(items)
            local_item = (time.perf_counter() - t) / len(items)
            from daad.curate import hashing

            images = goods * 4
            t = time.perf_counter()
            hashing.hash_files(images, workers=1, progress=False)
            hash_local = (time.perf_counter() - t) / len(images)
            t = time.perf_counter()
            hashing.hash_files(images, chunk=8, progress=False, engine=ray2)
            hash_ray = (time.perf_counter() - t) / len(images)
            import ray

            ray.shutdown()
        reference = _files(root / "local1")
        same = all(_files(root / d) == reference for d in ("local2", "ray1", "ray2"))
        from daad.core.catalog import Catalog

        catalog = Catalog(root / "home")
        rows = [(f"img/{i:08d}.png", f"{i:016x}", f"{i * 7:016x}") for i in range(200_000)]
        t = time.perf_counter()
        catalog.put_eval_hashes("bench", rows)
        sqlite_row = (time.perf_counter() - t) / len(rows)
        from daad.core.record import Record

        ids = [f"{i:064x}" for i in range(20_000)]
        with catalog.transaction():
            for i in ids:
                catalog.add(Record(id=i, width=8, height=8, source="photograph", origin="photos:bench"))
        t = time.perf_counter()
        with catalog.transaction():  # what dedupe/leakage do per record: one update + its event, driver only
            for n, i in enumerate(ids):
                catalog.update(i, who="bench", phash=f"{n:016x}", dhash=f"{n:016x}")
        update_row = (time.perf_counter() - t) / len(ids)
        catalog.close()

    base = secs["local, 1 process"]
    print(f"\nsynthesis ({len(targets)} targets; all four runs wrote identical bytes: {'yes' if same else 'NO'})")
    for name, s in secs.items():
        print(f"  {name:28s} {len(targets) / s:6.2f} targets/s   x{base / s:.2f} vs local, 1 process")
    per_target = base / len(targets)
    print(f"\nRay per-item overhead ({a.overhead_items} no-op items, 2 workers): {ray_item * 1e3:.2f} ms/item vs "
          f"{local_item * 1e6:.2f} us/item in-process: {(ray_item - local_item) / per_target:.1%} of one CAI target "
          f"({per_target * 1e3:.0f} ms)")
    print(f"hashing: {hash_local * 1e3:.1f} ms/image local (1 process), {hash_ray * 1e3:.1f} ms/image on Ray "
          f"(2 workers, chunks of 8): x{hash_local / hash_ray:.2f}")
    print(f"SQLite eval-hash writes (driver only): {sqlite_row * 1e6:.1f} us/row ({1 / sqlite_row:,.0f} rows/s); "
          f"catalog record updates with their event: {update_row * 1e6:.0f} us/record ({1 / update_row:,.0f}/s)")
    print("\nextrapolated from the per-item costs above (not measured at that size):")
    print(f"  1,000,000 CAI targets x {a.per_image}: {per_target * 1e6 / 3600:,.0f} core-hours; "
          f"{per_target * 1e6 / 3600 / 100:.1f} h on 100 cores (+{(ray_item - local_item) * 1e6 / 3600 / 100 * 3600:.0f} s Ray overhead)")
    print(f"  10,000,000 hashes: {hash_local * 1e7 / 3600:,.1f} core-hours; {hash_local * 1e7 / 3600 / 100 * 60:.0f} min on 100 cores; "
          f"the driver's SQLite writes of them: {sqlite_row * 1e7 / 60:.1f} min as evaluation hashes, "
          f"{update_row * 1e7 / 3600:.1f} h as catalog record updates")


if __name__ == "__main__":
    main()
