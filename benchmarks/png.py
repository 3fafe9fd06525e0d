"""PNG encoding of real CAI outputs: ISA-L (daad.synthesis.png) and each of cv2's row filters (zlib level 1, Z_RLE) against PIL's level 6.

    python benchmarks/png.py                 # 40 targets x 10 pseudo anomalies, 5 interleaved rounds
    python benchmarks/png.py --targets 100

Why: encoding is most of the Folder writer's work (a 256 px CAI image costs ~2 ms to
compute and, with libpng's adaptive filter choice, ~1.8 ms to encode; its mask another
0.7 ms), so the filter is chosen by measurement. Inputs are what `daad synthesize`
writes: CAI-N outputs, their masks and the normal targets at 256 px, from the same
mix of targets as `benchmarks/cai.py --cli` (MVTec AD test/good in RGB, Magnetic Tile
MT_Free and DeepPCB templates in grey) and the same real patterns. Every encoder takes
the RGB array the writer holds (cv2's include their RGB -> BGR conversion, as the writer
paid it), and every encoding is decoded again and must give the very same pixels. Times
are CPU ms per file of this process (one thread); sizes KB per file; rounds interleaved,
medians printed.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from daad.core.images import load_image
from daad.synthesis.cai import CAI
from daad.synthesis.cai.cai import resize_target
from daad.synthesis.png import FILTER_NONE, FILTER_UP, png_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cai import DATA, real_patterns  # noqa: E402  (the same real patterns as the CAI benchmark)

cv2.setNumThreads(1)
FILTERS = {"adaptive": None, "none": cv2.IMWRITE_PNG_FILTER_NONE, "sub": cv2.IMWRITE_PNG_FILTER_SUB,
           "up": cv2.IMWRITE_PNG_FILTER_UP, "avg": cv2.IMWRITE_PNG_FILTER_AVG, "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
           "fast": cv2.IMWRITE_PNG_FAST_FILTERS}


def target_files(data: Path, n: int) -> list[Path]:
    """`n` of the `--cli` benchmark's targets, spread over its three sources."""
    files = (sorted((data / "mvtec_ad").glob("*/test/good/*.png")) + sorted((data / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))
             + sorted((data / "deeppcb").rglob("*_temp.jpg")))
    return files[:: max(1, len(files) // n)][:n]


def encoders() -> dict[str, object]:
    def cv2_enc(params: list[int]):
        return lambda a: cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a, params)[1].tobytes()

    out: dict[str, object] = {}
    for level in (0, 1, 2, 3):
        for name, f in (("up", FILTER_UP), ("none", FILTER_NONE)):
            out[f"ISA-L {level} {name}"] = lambda a, f=f, level=level: png_bytes(a, f, level)
    for name, f in FILTERS.items():
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        out[f"cv2 1 rle {name}"] = cv2_enc(params + ([] if f is None else [cv2.IMWRITE_PNG_FILTER, f]))

    def pil6(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", compress_level=6)
        return buf.getvalue()

    out["PIL 6 (peer)"] = pil6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real sample data not found at {DATA} (set DAAD_SHARED_DATA)")
    cai = CAI(real_patterns(DATA), seed=0)
    kinds: dict[str, list[np.ndarray]] = {"RGB images": [], "grey images": [], "masks": [], "normals": []}
    for f in target_files(DATA, args.targets):
        image = resize_target(np.asarray(load_image(f)), cai.size)
        kinds["normals"].append(image)
        for inj in cai(image, key=str(f)):
            kinds["RGB images" if inj.image.ndim == 3 else "grey images"].append(inj.image)
            kinds["masks"].append(inj.mask)
    enc = encoders()
    times: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, fn in enc.items():
            for kind, arrays in kinds.items():
                start = time.process_time()
                blobs = [fn(a) for a in arrays]  # type: ignore[operator]
                times.setdefault((kind, name), []).append((time.process_time() - start) / len(arrays))
                sizes[(kind, name)] = sum(map(len, blobs)) / len(arrays)
                for a, b in zip(arrays[:3], blobs[:3]):
                    back = np.asarray(Image.open(io.BytesIO(b)))
                    assert np.array_equal(back, a), f"{name} changed the pixels of a {kind[:-1]}"
    print(f"PNG encoding of real CAI-N outputs at 256 px: {args.targets} targets, "
          + ", ".join(f"{len(v)} {k}" for k, v in kinds.items()) + f"; CPU ms and KB per file, medians of {args.rounds} rounds")
    print(f"  {'encoder':20}" + "".join(f" | {k:>17}" for k in kinds))
    for name in enc:
        cells = "".join(f" | {1000 * statistics.median(times[(k, name)]):6.2f} ms {sizes[(k, name)] / 1000:6.1f} KB" for k in kinds)
        print(f"  {name:20}{cells}")
    print("every encoding decodes to the very same pixels (checked)")


if __name__ == "__main__":
    main()
