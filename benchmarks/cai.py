"""CAI speed against cv2.seamlessClone, and the study behind Eq. 4's threshold T.

    python benchmarks/cai.py                      # images/s at 256, 512, 1024, Normal and Mixed (--repeat rounds, default 5)
    python benchmarks/cai.py --threshold-study    # IoU of bin(I_d, T) with the injected pattern, per T
    python benchmarks/cai.py --cli 113            # `daad synthesize` end to end against the library, 113 targets (--tmp DIR: where it writes)
    python benchmarks/cai.py --startup            # a fresh process's start-up: datasets vs the pyarrow reader

Real data from ../shared/data (or DAAD_SHARED_DATA): patterns are the MVTec AD
bottle/capsule anomalies and Magnetic Tile defects (every 4th image of each type, for
a quick load), targets the MVTec AD bottle/capsule test/good images. Each row runs the
whole of CAI (foreground, STM, MAS, resize, ILS, injection, Eq. 4) in one process, in
`--repeat` interleaved rounds: the run with our DST Poisson solver, then its injections
redone by ours and by `cv2.seamlessClone` on the very same regions (its own boundary
handling; see `daad.synthesis.cai.poisson`); "with cv2" is the run with cv2's injections
in place of ours. The ratio is ours / cv2 in images per second, the median of the rounds'. Times are
CPU seconds of this one process (`time.process_time`, cv2 limited to one thread): on a
shared machine wall-clock time measures the neighbours. The paper
reports 0.019 s/image (CAI-N) and 0.018 s/image (CAI-M) on MVTec AD, hardware not
stated; it is printed beside ours for scale only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from daad.core.images import load_image, load_mask
from daad.synthesis.cai import CAI, Pattern, poisson

PAPER_S_PER_IMAGE = {"normal": 0.019, "mixed": 0.018}
cv2.setNumThreads(1)  # one thread each: times are this process's CPU seconds (the machine is shared, wall time is not ours)
DATA = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def real_patterns(data: Path, every: int = 4) -> list[Pattern]:
    """MVTec AD bottle/capsule anomalies and every `every`-th Magnetic Tile defect, with their masks."""
    out = []
    for img in sorted((data / "mvtec_ad").glob("*/test/*/*.png")):
        if img.parent.name == "good":
            continue
        cat, defect = img.parts[-4], img.parent.name
        m = data / "mvtec_ad" / cat / "ground_truth" / defect / f"{img.stem}_mask.png"
        im = load_image(img)
        out.append(Pattern(np.asarray(im), np.asarray(load_mask(m, im.size)) > 0, f"mvtec_ad/{cat}/{defect}/{img.name}", defect, "mvtec_ad"))
    for kind in sorted((data / "magnetic_tile").glob("MT_*")):
        if kind.name == "MT_Free":
            continue
        for img in sorted((kind / "Imgs").glob("*.jpg"))[::every]:
            im = load_image(img)
            mask = np.asarray(load_mask(img.with_suffix(".png"), im.size, binarize=True)) > 0
            if mask.any():
                out.append(Pattern(np.asarray(im), mask, f"magnetic_tile/{kind.name}/{img.name}", kind.name, "magnetic_tile"))
    return out


def real_targets(data: Path, n: int) -> list[tuple[str, np.ndarray]]:
    files = sorted((data / "mvtec_ad").glob("*/test/good/*.png"))
    picked = files[:: max(1, len(files) // n)][:n]
    return [(str(f.relative_to(data)), np.asarray(load_image(f))) for f in picked]


CV2_FAILURES = [0]


def cv2_blend(tgt: np.ndarray, src: np.ndarray, msk: np.ndarray, mode: str, mixed_rule: str) -> np.ndarray:
    """The same injection (same region, source and mask) by cv2.seamlessClone.

    The region is the mask's box plus a one-pixel ring; cv2 centres its own ROI (the
    mask's box) on `p`, so p = (1 + (w-2)//2, 1 + (h-2)//2) puts it exactly there.
    """
    h, w = msk.shape
    grey = tgt.ndim == 2
    t3 = np.ascontiguousarray(np.repeat(tgt[..., None], 3, 2) if grey else tgt)
    s3 = np.ascontiguousarray(np.repeat(src[..., None], 3, 2) if src.ndim == 2 else src)
    flag = cv2.NORMAL_CLONE if mode == "normal" else cv2.MIXED_CLONE
    try:
        out = cv2.seamlessClone(s3, t3, msk.astype(np.uint8) * 255, (1 + (w - 2) // 2, 1 + (h - 2) // 2), flag)
    except cv2.error:  # cv2 asserts on regions a few pixels thin; the target is left as it was
        CV2_FAILURES[0] += 1
        return tgt.copy()
    return out[..., 0] if grey else out


class Recording:
    """Our blender, keeping every injection's inputs so cv2 can redo exactly the same ones."""

    def __init__(self):
        self.inputs: list[tuple] = []

    def __call__(self, *args):
        self.inputs.append(args)
        return poisson.blend(*args)


def replay(blender, inputs: list[tuple]) -> float:
    """CPU seconds `blender` needs for all recorded injections, once."""
    start = time.process_time()
    for args in inputs:
        blender(*args)
    return time.process_time() - start


def speed(patterns, data: Path, sizes: list[int], n_targets: int, repeat: int = 5) -> None:
    """Each row: `repeat` rounds of (the whole CAI run, its injections replayed by ours, then by cv2), interleaved.

    A round's "with cv2" time is its run less its own injections plus cv2's on the same
    inputs, so both sides of a ratio come from the same seconds of the machine; every
    figure printed is the median over the rounds (the machine is shared: a round at 256 px
    lasts about 0.1 s, and single rounds swung 1.6x under load).
    """
    import statistics

    targets = real_targets(data, n_targets)
    print(f"CAI speed: {len(targets)} MVTec AD test/good targets x 10, {len(patterns)} real patterns, "
          f"{os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f}), one process, medians of {repeat} interleaved rounds")
    head = (f"{'size':>5} {'mode':>7} | {'ours img/s':>10} {'s/img':>7} | {'with cv2 img/s':>14} {'s/img':>7} | "
            f"{'inject ms ours':>14} {'cv2':>6} | {'ratio':>5} | {'paper s/img':>11}")
    print(head)
    print("-" * len(head))
    for size in sizes:
        for mode in ("normal", "mixed"):
            rec = Recording()
            cai = CAI(patterns, mode=mode, size=size, seed=0, blender=rec)
            cai(targets[0][1], key="warm-up")  # the first call pays imports and caches
            rounds = []
            n = 0
            for _ in range(repeat):
                rec.inputs.clear()
                start = time.process_time()
                n = sum(len(cai(img, key=key)) for key, img in targets)
                total = time.process_time() - start
                CV2_FAILURES[0] = 0
                t_ours, t_cv2 = replay(poisson.blend, rec.inputs), replay(cv2_blend, rec.inputs)
                rounds.append((total, t_ours, t_cv2, total - t_ours + t_cv2))  # with cv2: the same run, cv2 injecting
            total, t_ours, t_cv2, with_cv2 = (statistics.median(r[k] for r in rounds) for k in range(4))
            ratio = statistics.median(r[3] / r[0] for r in rounds)
            calls, failed = len(rec.inputs), CV2_FAILURES[0]
            print(f"{size:>5} {mode:>7} | {n / total:>10.1f} {total / n:>7.4f} | {n / with_cv2:>14.1f} {with_cv2 / n:>7.4f} | "
                  f"{1000 * t_ours / calls:>14.2f} {1000 * t_cv2 / calls:>6.2f} | {ratio:>5.2f} | "
                  f"{PAPER_S_PER_IMAGE[mode]:>11.3f}" + (f"   (cv2 raised on {failed} of {calls} thin regions)" if failed else ""))
            sys.stdout.flush()
    print("with cv2 = the same run with each injection (same region, source, mask) done by cv2.seamlessClone;")
    print(f"inject ms = one injection step; ratio = ours / cv2 images per second (median of the rounds' ratios); "
          f"load now {os.getloadavg()[0]:.1f}")


class Recorder:
    """A blender that keeps (difference map, pattern mask) of every injection for the T study."""

    def __init__(self):
        self.items: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, tgt, src, msk, mode, rule):
        out = poisson.blend(tgt, src, msk, mode, rule)
        diff = np.abs(out.astype(np.int16) - tgt.astype(np.int16))
        self.items.append((diff.max(axis=2) if diff.ndim == 3 else diff, msk))
        return out


def threshold_study(patterns, data: Path, n_targets: int, size: int = 256) -> None:
    """Mean IoU etc. of bin(I_d, T) against the injected pattern's mask, on the injected region.

    Measured before CAI's foreground filter (the patterns lie on the object almost
    everywhere), with CAI's own T set to 0 so no draw is redone because of T.
    """
    targets = real_targets(data, n_targets)
    thresholds = [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64]
    print(f"Eq. 4 threshold study: {len(targets)} MVTec AD targets x 10 at {size} px, {len(patterns)} real patterns")
    print("mean IoU of bin(|I_sa - I_n|, T) with the injected pattern's mask; halo = share of the binarised")
    print("pixels outside the pattern; kept = share of injections whose mask is non-empty")
    for mode in ("normal", "mixed"):
        rec = Recorder()
        cai = CAI(patterns, mode=mode, size=size, seed=0, threshold=0, blender=rec)
        for key, img in targets:
            cai(img, key=key)
        print(f"\n{mode}: {len(rec.items)} injections")
        print(f"{'T':>4} {'IoU':>6} {'halo':>6} {'recall':>7} {'kept':>6}")
        for t in thresholds:
            ious, halos, recalls, kept = [], [], [], 0
            for diff, msk in rec.items:
                b = diff > t
                inter = (b & msk).sum()
                union = (b | msk).sum()
                ious.append(inter / union if union else 0.0)
                recalls.append(inter / msk.sum())
                if b.any():
                    kept += 1
                    halos.append((b & ~msk).sum() / b.sum())
            print(f"{t:>4} {np.mean(ious):>6.3f} {np.mean(halos) if halos else 0:>6.3f} {np.mean(recalls):>7.3f} {kept / len(rec.items):>6.3f}")


def cli_targets(data: Path, folder: Path, n: int) -> int:
    """MVTec AD test/good, Magnetic Tile MT_Free and DeepPCB template images, copied into `folder` (n of them)."""
    import shutil

    files = (sorted((data / "mvtec_ad").glob("*/test/good/*.png")) + sorted((data / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))
             + sorted((data / "deeppcb").rglob("*_temp.jpg")))
    for f in files[:n]:
        dst = folder / f.relative_to(data)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    return min(n, len(files))


def child_env(root: Path) -> dict[str, str]:
    """The environment of a timed child process: this one's, with Python's bytecode cache on (in `root`).

    Why: with PYTHONDONTWRITEBYTECODE=1 (set in some shells and containers, this
    machine's included) every fresh `daad` compiled its ~50 daad modules from source,
    0.3 s of a 0.8 s start-up (measured: importing daad.cli and CAI, 0.78-0.82 s against
    0.48 s with cached bytecode), which an installed package never pays and the warm
    library rows never see. The cache lives under `root` (nothing is written outside the
    benchmark's temporary folder); a first untimed run fills it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return env


COLD_RUN = """
import sys
import cv2
cv2.setNumThreads(1)
from daad.synthesis.cai import CAI
from daad.synthesis.cai.output import find_targets, run
from daad.synthesis.cai.patterns import PublishedPool, open_published
rows = open_published(sys.argv[1], "mvtec_ad", progress=False)[0]
run(CAI(PublishedPool(rows), seed=0), find_targets(sys.argv[2]), sys.argv[3], progress=False)
"""


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_release(data: Path, root: Path) -> Path:
    """MVTec AD bottle/capsule and Magnetic Tile defects collected and published (v1.0.0) under root (DAAD_HOME root/home)."""
    from daad.collectors.datasets import collect_dataset
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.release.publish import publish

    home = root / "home"
    os.environ["DAAD_HOME"] = str(home)
    catalog, store = Catalog(home), MediaStore(home)
    collect_dataset("mvtec_ad", data / "mvtec_ad", catalog=catalog, store=store, progress=False)
    collect_dataset("magnetic_tile", data / "magnetic_tile", catalog=catalog, store=store, progress=False)
    for rec in catalog.find(origin="magnetic_tile"):  # stands in for permission obtained (nothing leaves tmp)
        catalog.update(rec.id, who="benchmark", license="CC-BY-4.0", attribution="Huang et al. 2020")
    publish(catalog, "1.0.0", root / "release", store=store, progress=False)
    catalog.close()
    return root / "release"


STARTUP = """
import json, sys, time
t = [time.perf_counter()]
def lap():
    t.append(time.perf_counter()); return t[-1] - t[-2]
out = {}
import daad.cli, daad.synthesis.cai.output
out["import daad.cli + CAI"] = lap()
from daad.synthesis.cai.patterns import PublishedPool, load_published, open_published
if sys.argv[1] == "datasets":
    import datasets
    out["import datasets"] = lap()
    rows = load_published(sys.argv[2], "mvtec_ad", cache_dir=sys.argv[3])[0]
else:
    out["import datasets"] = 0.0
    rows = open_published(sys.argv[2], "mvtec_ad")[0]
out["open the release"] = lap()
PublishedPool(rows)
out["PublishedPool (sides)"] = lap()
out["loaded (datasets..)"] = float(sum(m in sys.modules for m in ("datasets", "pandas", "torch")))
print(json.dumps(out))
"""


def startup(data: Path, repeat: int) -> None:
    """The fixed start-up of a fresh `daad synthesize` process, phase by phase, three ways, interleaved:
    `datasets.load_dataset` and every mask measured (what versions before the pyarrow reader did; its
    Arrow cache already built, as on any run after the first), pyarrow on a release without the
    `mask_box` column (older releases), and pyarrow with the stored boxes (releases published now).
    The CAI work and the writer are not in it: they are the same in all three."""
    import json
    import shutil
    import statistics
    import subprocess
    import tempfile

    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        new = bench_release(data, root)
        old = root / "release-before-mask_box"
        shutil.copytree(new, old)
        for f in old.rglob("*.parquet"):
            pq.write_table(pq.read_table(f).drop_columns(["mask_box"]), f)
        cache = root / "hf_cache"
        env = child_env(root)
        ways = [("datasets.load_dataset, masks measured", "datasets", old), ("pyarrow, masks measured (older release)", "pyarrow", old),
                ("pyarrow + stored mask_box", "pyarrow", new)]

        def once(kind: str, release: Path) -> dict[str, float]:
            wall = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", STARTUP, kind, str(release), str(cache)], check=True, capture_output=True, text=True,
                                 env=env)
            got = json.loads(res.stdout)
            got["whole process"] = time.perf_counter() - wall
            return got

        first = once("datasets", old)["open the release"]  # builds the Arrow cache ("Generating train split") and the bytecode cache
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in ways}
        for _ in range(repeat):
            for label, kind, release in ways:
                runs[label].append(once(kind, release))
        print(f"start-up of a fresh process: {repeat} interleaved runs, medians in wall seconds, load {load_before:.1f} -> "
              f"{os.getloadavg()[0]:.1f}; the first load_dataset (building its cache) took {first:.2f} s")
        phases = list(runs[ways[0][0]][0])
        print(f"  {'':40}" + "".join(f" {p[:22]:>22}" for p in phases))
        base = statistics.median(r["whole process"] for r in runs[ways[0][0]])
        for label, _, _ in ways:
            med = {p: statistics.median(r[p] for r in runs[label]) for p in phases}
            cells = "".join(f" {med[p]:>22.0f}" if p.startswith("loaded") else f" {med[p]:>22.3f}" for p in phases)
            print(f"  {label:40}{cells}   {base / med['whole process']:.2f}x")


def create_ms(folder: Path, n: int = 500) -> float:
    """Wall ms to create (and write 1 KB to) one new file in `folder`, the mean over `n` (left there: deleting them would slow the next).

    Printed with the CLI rows because it swings 20x on this machine's ext4 (no journal,
    so the kernel scans for recently deleted inodes on every create): 0.03-0.06 ms in
    most folders, 0.86 ms in one beside other sessions' mass deletes (measured with the
    same 2,000 creates in five folders), and the writer creates 2,100 files per 100 targets.
    """
    where = folder / "create-probe"
    where.mkdir()
    start = time.perf_counter()
    for i in range(n):
        (where / f"{i}.tmp").write_bytes(b"x" * 1024)
    return 1000 * (time.perf_counter() - start) / n


def cli_vs_library(data: Path, n_targets: int, workers: int, repeat: int = 3, tmp_dir: str | None = None) -> None:
    """Seconds of `daad synthesize` (a fresh process: imports, release loading, pool, CAI, Folder writer)
    against the library's CAI calls on the same targets and pool (compute only), and against the
    library's `output.run` (compute + the same writer), warm in this process and (with one
    worker) cold in a fresh one: the CLI's cost over the cold row is click and the CLI itself,
    over the warm row also the start-up and the first decode of each pattern. A real
    release: MVTec AD bottle/capsule and Magnetic Tile defects collected and published
    into a temporary DAAD_HOME. Child processes run with bytecode cached (`child_env`)
    after one untimed run; the library rows run cv2 at one thread, as `daad synthesize` does.

    The rows are run interleaved `repeat` times and each figure is the median; wall seconds
    (what a user waits) and CPU seconds (this process's, or the child's, all threads
    included: on a shared machine the honest measure of work) are both printed, with the
    load. Every run writes into a new folder, none into one just emptied: creating files
    right after a mass delete cost up to 0.8 ms each on this ext4 disk (the kernel's scan
    for recently deleted inodes) against ~0.1 ms in a fresh folder."""
    import statistics
    import subprocess
    import tempfile

    from daad.synthesis.cai.output import find_targets, run
    from daad.synthesis.cai.patterns import PublishedPool, open_published

    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        root = Path(tmp)
        bench_release(data, root)
        n = cli_targets(data, root / "targets", n_targets)
        ds, _, _ = open_published(root / "release", "mvtec_ad")
        pool = PublishedPool(ds)
        targets = find_targets(root / "targets")
        cai = CAI(pool, seed=0)
        cai(np.asarray(load_image(targets[0].path)), key="warm-up")
        times: dict[str, list[tuple[float, float]]] = {}
        sizes: dict[str, float] = {}
        images = 0
        load_before = os.getloadavg()[0]

        env = child_env(root)

        def child(name: str, cmd: list[str], out: Path) -> None:
            wall, cpu = time.perf_counter(), _children_cpu()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times.setdefault(name, []).append((time.perf_counter() - wall, _children_cpu() - cpu))
            sizes[name] = sum(f.stat().st_size for f in out.rglob("*.png")) / 1e6

        def cli(name: str, *extra: str) -> None:
            out = root / f"{name}_{r}"
            child(name, [sys.executable, "-m", "daad", "synthesize", "--dataset", str(root / "release"), "--exclude", "mvtec_ad",
                         "--targets", str(root / "targets"), "--out", str(out), "--quiet", "--workers", str(workers), *extra], out)

        r = -1
        cli("warm-up")  # fills the bytecode cache (and the page cache): not timed
        times.pop("warm-up")
        for r in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            images = sum(len(cai(np.asarray(load_image(t.path)), key=t.key)) for t in targets)
            times.setdefault("lib", []).append((time.perf_counter() - wall, time.process_time() - cpu))
            wall, cpu = time.perf_counter(), time.process_time()
            run(CAI(pool, seed=0), targets, root / f"lib_out_{r}", workers=workers, progress=False)
            times.setdefault("run", []).append((time.perf_counter() - wall, time.process_time() - cpu))
            if workers == 1:
                child("cold", [sys.executable, "-c", COLD_RUN, str(root / "release"), str(root / "targets"), str(root / f"cold_{r}")],
                      root / f"cold_{r}")
            cli("cli")
            cli("cli6", "--png-level", "6")
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        print(f"CLI vs library: {n} targets x 10 = {images} pseudo anomalies at 256 px, {len(ds)} patterns "
              f"[exclude_mvtec_ad], {os.cpu_count()} CPU cores, --workers {workers}; medians of {repeat} interleaved runs, "
              f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}; creating a file in {root.parent}: {create_ms(root):.2f} ms")
        lib_w, lib_c = med["lib"]
        rows = [("library, CAI calls only (load + inject)", "lib"), ("library, output.run (CAI + Folder writer)", "run"),
                ("output.run in a fresh process (cold pool)", "cold"), ("daad synthesize (default: --png-level 1)", "cli"),
                ("daad synthesize --png-level 6", "cli6")]
        rows = [(label, key) for label, key in rows if key in med]
        print(f"  {'':44} {'wall s':>7} {'ms/image':>8} {'CPU s':>7} | vs library calls: {'wall':>5} {'CPU':>5}")
        for label, key in rows:
            w, c = med[key]
            extra = f", {sizes[key]:.0f} MB of PNG" if key in sizes and key != "cold" else ""
            print(f"  {label:44} {w:7.2f} {1000 * w / images:8.2f} {c:7.2f} | {'':17} {w / lib_w:4.2f}x {c / lib_c:4.2f}x{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512,1024", help="target sizes (default 256,512,1024)")
    ap.add_argument("--targets", type=int, default=4, help="number of target images (default 4)")
    ap.add_argument("--threshold-study", action="store_true", help="measure Eq. 4's T instead of speed")
    ap.add_argument("--cli", type=int, default=0, metavar="N", help="time `daad synthesize` on N targets against the library")
    ap.add_argument("--workers", type=int, default=1, help="with --cli: processes (default 1)")
    ap.add_argument("--repeat", type=int, default=0, help="interleaved rounds, medians printed (default 5; with --cli/--startup 3)")
    ap.add_argument("--tmp", default=None, metavar="DIR", help="with --cli: where its temporary folder goes (default: the system's)")
    ap.add_argument("--startup", action="store_true", help="time a fresh process's start-up phases: datasets vs pyarrow reader")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real sample data not found at {DATA} (set DAAD_SHARED_DATA)")
    if args.startup:
        startup(DATA, args.repeat or 3)
        return
    if args.cli:
        cli_vs_library(DATA, args.cli, args.workers, args.repeat or 3, args.tmp and str(Path(args.tmp).expanduser()))
        return
    patterns = real_patterns(DATA)
    if args.threshold_study:
        threshold_study(patterns, DATA, max(args.targets, 8))
    else:
        speed(patterns, DATA, [int(s) for s in args.sizes.split(",")], args.targets, args.repeat or 5)


if __name__ == "__main__":
    main()
