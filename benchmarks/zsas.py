"""The paper's comparison (Table 1's protocol) on real data at CPU scale, with its wall time.

    python benchmarks/zsas.py                       # about 9 min on 2 busy CPU cores
    python benchmarks/zsas.py --size 256 --epochs 200 --seeds 3 --per-image 10 --per-defect 1000 \\
        --width 64 --depth 5 --batch-size 8 --lr 1e-4 --threads 0 --device cuda   # the paper's setting (not run yet)

Target domain: Magnetic Tile (../shared/data, or DAAD_SHARED_DATA). MT_Free is split
in two: the first half are the normal training images (the targets of every method),
the second half the normal test images; the test anomalies are `--per-defect` images
of each defect folder (MT_Blowhole, MT_Break, MT_Crack, MT_Fray, MT_Uneven) with their
masks. DAAD is built by the real pipeline from the *other* datasets: MVTec AD (bottle,
capsule) collected into a temporary DAAD_HOME and published (CrackForest has no
adapter, its masks are .mat files; Magnetic Tile is never in it). DRAEM's textures are
the CrackForest photos. Everything is written under a temporary folder (or `--out`).
Prints the table of `daad compare` (mean ± std over seeds, best epoch and mean of the
last epochs) and the wall time of each stage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DEFECTS = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
METHODS = "cai-n,cai-m,cai-paper-n,cutpaste-scar,nsa-n,draem"


def build_release(root: Path) -> Path:
    """MVTec AD (bottle, capsule) -> catalog -> `publish` 1.0.0: the DAAD of this benchmark."""
    from daad.collectors.datasets import collect_dataset
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.release.publish import publish

    home = root / "home"
    os.environ["DAAD_HOME"] = str(home)
    catalog, store = Catalog(home), MediaStore(home)
    collect_dataset("mvtec_ad", DATA / "mvtec_ad", catalog=catalog, store=store, progress=False)
    publish(catalog, "1.0.0", root / "release", store=store, progress=False)
    catalog.close()
    return root / "release"


def build_target_domain(root: Path, per_defect: int) -> tuple[Path, Path]:
    """(normal training folder, test folder with images/ + masks/) from Magnetic Tile."""
    free = sorted((DATA / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))
    half = len(free) // 2
    train, test = root / "mt_train", root / "mt_test"
    (train).mkdir(parents=True)
    (test / "images").mkdir(parents=True)
    (test / "masks").mkdir()
    for p in free[:half]:
        shutil.copy(p, train / p.name)
    for p in free[half:]:
        shutil.copy(p, test / "images" / p.name)
    for kind in DEFECTS:
        for p in sorted((DATA / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:per_defect]:
            shutil.copy(p, test / "images" / f"{kind}_{p.name}")
            shutil.copy(p.with_suffix(".png"), test / "masks" / f"{kind}_{p.stem}.png")
    return train, test


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--per-image", type=int, default=3)
    ap.add_argument("--per-defect", type=int, default=6)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default); 1 was 2.5x faster on our shared 2-core machine")
    ap.add_argument("--out", default=None, help="keep everything here (default: a temporary folder)")
    args = ap.parse_args()
    if not (DATA / "magnetic_tile").is_dir() or not (DATA / "mvtec_ad").is_dir():
        raise SystemExit(f"real sample data not found at {DATA} (set DAAD_SHARED_DATA)")

    import datasets
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from daad.evaluation import CompareConfig, compare, split_methods

    datasets.disable_progress_bars()
    root = Path(args.out).expanduser() if args.out else Path(tempfile.mkdtemp(prefix="zsas-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    release = build_release(root)
    train, test = build_target_domain(root, args.per_defect)
    t1 = time.perf_counter()
    print(f"DAAD from MVTec AD published and Magnetic Tile split in {t1 - t0:.1f} s: "
          f"{len(list(train.iterdir()))} normal training images, {len(list((test / 'images').iterdir()))} test images "
          f"({len(list((test / 'masks').iterdir()))} anomalous)", flush=True)
    config = CompareConfig(train_normal=str(train), test=str(test), out=str(root / "compare"), methods=[],
                           dataset=str(release), textures=str(DATA / "crackforest" / "image"), seeds=args.seeds,
                           per_image=args.per_image, foreground="full",
                           eval={"size": args.size, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                 "samples": args.samples, "width": args.width, "depth": args.depth, "device": args.device,
                                 "last_k": min(3, args.epochs)})
    results = compare(config, split_methods(args.methods), progress=False, echo=lambda s: print(s, flush=True))
    t2 = time.perf_counter()
    print((root / "compare" / "results.md").read_text())
    for row in results["rows"]:
        epochs = [r["best_epoch"] for r in row["runs"]]
        print(f"  {row['method']}: best epochs {epochs}")
    print(f"\nwall time: setup {t1 - t0:.1f} s, compare {t2 - t1:.1f} s ({len(results['rows'])} methods x {args.seeds} seeds, "
          f"{args.epochs} epochs at {args.size} px, UNet width {args.width} depth {args.depth}) -> {root}")


if __name__ == "__main__":
    main()
