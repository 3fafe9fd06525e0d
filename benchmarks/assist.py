"""How good is `daad annotate assist`'s box-to-mask? IoU against the publishers' masks.

For every anomalous image of the real datasets in ../shared/data that come with pixel
masks (MVTec AD bottle + capsule, Magnetic Tile), each connected region of the ground
truth gives one box: its bounding box grown by --grow of its size on every side, as an
annotator would drag it. The assist answers with a mask inside the box; the baseline
"box" is the filled box itself (what an annotator has before any help). Printed: mean IoU
per dataset for both, and the ratio, plus the mean time per box.

    python benchmarks/assist.py [--grow 0.1] [--limit 200]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from daad.curate.annotate.assist import box_to_mask

SHARED = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pairs():
    """(dataset, image path, mask path) of every anomalous image with a pixel mask."""
    for cat in ("bottle", "capsule"):
        for img in sorted((SHARED / "mvtec_ad" / cat / "test").glob("*/*.png")):
            if img.parent.name == "good":
                continue
            yield "mvtec_ad", img, SHARED / "mvtec_ad" / cat / "ground_truth" / img.parent.name / f"{img.stem}_mask.png"
    for folder in sorted((SHARED / "magnetic_tile").glob("MT_*")):
        if folder.name == "MT_Free":
            continue
        for img in sorted((folder / "Imgs").glob("*.jpg")):
            yield "magnetic_tile", img, img.with_suffix(".png")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--grow", type=float, default=0.1, help="box margin, as a fraction of the region's size")
    ap.add_argument("--limit", type=int, default=200, help="images per dataset at most")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"Error: {SHARED}: no shared data (set DAAD_SHARED_DATA)")
    stats: dict[str, dict[str, list[float]]] = {}
    seen: dict[str, int] = {}
    for name, img_path, mask_path in pairs():
        if seen.get(name, 0) >= args.limit or not mask_path.is_file():
            continue
        seen[name] = seen.get(name, 0) + 1
        image = np.asarray(Image.open(img_path).convert("RGB"))
        truth = np.asarray(Image.open(mask_path).convert("L")) > 127
        labels, n = ndimage.label(truth)
        for sl in ndimage.find_objects(labels):
            if sl is None:
                continue
            region = labels[sl] > 0
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            if region.sum() < 16:
                continue
            gy, gx = args.grow * (y1 - y0), args.grow * (x1 - x0)
            box = (x0 - gx, y0 - gy, (x1 - x0) + 2 * gx, (y1 - y0) + 2 * gy)
            t0 = time.perf_counter()
            pred = box_to_mask(image, box)
            dt = time.perf_counter() - t0
            # Score against the regions inside this box only (other regions are other boxes).
            bx0, by0 = max(0, int(box[0])), max(0, int(box[1]))
            bx1, by1 = int(np.ceil(box[0] + box[2])), int(np.ceil(box[1] + box[3]))
            inside = np.zeros_like(truth)
            inside[by0:by1, bx0:bx1] = True
            target = truth & inside
            filled = inside.copy()
            s = stats.setdefault(name, {"assist": [], "box": [], "ms": []})
            s["assist"].append(iou(pred, target))
            s["box"].append(iou(filled, target))
            s["ms"].append(1000 * dt)
    print(f"boxes: ground-truth regions grown by {args.grow:.0%}; IoU against the publisher's mask inside the box")
    print(f"{'dataset':<14} {'boxes':>6} {'assist IoU':>11} {'box IoU':>8} {'ratio':>6} {'ms/box':>7}")
    for name, s in stats.items():
        a, b = float(np.mean(s["assist"])), float(np.mean(s["box"]))
        print(f"{name:<14} {len(s['assist']):>6} {a:>11.3f} {b:>8.3f} {a / b:>6.2f} {np.mean(s['ms']):>7.1f}")


if __name__ == "__main__":
    main()
