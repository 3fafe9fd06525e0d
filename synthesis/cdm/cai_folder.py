"""Reading CDM's training data: a `daad synthesize` (CAI) output folder.

Layout (anomalib `Folder`): `abnormal/<name>.png`, `mask/<name>.png` with the same
names, and `manifest.jsonl` with one JSON object per image holding at least the image
file (`file`, a name or a path ending in it) and its `anomaly_class`. Extra keys
(provenance) are ignored, so the reader keeps working as CAI's manifest grows.
A row whose image or mask is missing, unreadable, of the wrong size or empty is
reported (one line naming it) and skipped; the rest of the folder is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from daad.core.errors import BadItemError, BadMaskError, LayoutError
from daad.core.images import load_image, load_mask
from daad.core.taxonomy import CLASSES, check_class


@dataclass(frozen=True)
class Sample:
    """One CAI pseudo anomaly: where its image and mask are, and its class."""

    image: Path
    mask: Path
    anomaly_class: str


def read_manifest(folder: Path) -> list[dict]:
    path = folder / "manifest.jsonl"
    if not path.is_file():
        raise LayoutError(f"{folder}: no manifest.jsonl; expected a `daad synthesize` output folder (abnormal/, mask/, manifest.jsonl)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LayoutError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


def find_samples(folder: str | Path, classes: Iterable[str] | None = None) -> tuple[list[Sample], list[str]]:
    """List the usable samples of `folder` (optionally only `classes`) and the one-line reasons for skipped rows.

    Images and masks are decoded and checked here (same size, binary, non-empty) so a bad
    file is reported once up front instead of failing a training step hours later.
    """
    folder = Path(folder)
    for sub in ("abnormal", "mask"):
        if not (folder / sub).is_dir():
            raise LayoutError(f"{folder}: no {sub}/ folder; expected a `daad synthesize` output folder (abnormal/, mask/, manifest.jsonl)")
    wanted = {check_class(c) for c in classes} if classes else None
    samples: list[Sample] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for row in read_manifest(folder):
        name = Path(str(row.get("file", ""))).name
        cls = str(row.get("anomaly_class", "")).strip().lower()
        if not name or not cls:
            skipped.append(f"{folder / 'manifest.jsonl'}: row without file or anomaly_class: {json.dumps(row)[:120]}")
            continue
        if (wanted is not None and cls not in wanted) or name in seen:
            continue
        seen.add(name)
        image, mask = folder / "abnormal" / name, folder / "mask" / name
        try:
            if check_class(cls) not in CLASSES:
                raise BadItemError(image, f"class {cls!r} cannot be learned (one of {', '.join(CLASSES)} is needed)")
            if not image.is_file():
                raise BadItemError(image, "listed in manifest.jsonl but missing")
            if not mask.is_file():
                raise BadMaskError(mask, f"no mask for abnormal/{name}")
            im = load_image(image)
            m = load_mask(mask, im.size, binarize=True)
            if not np.asarray(m).any():
                raise BadMaskError(mask, "mask is empty (the loss would have no pixel to learn from)")
        except (BadItemError, ValueError) as exc:
            skipped.append(str(exc))
            continue
        samples.append(Sample(image, mask, cls))
    return samples, skipped


def load_pair(sample: Sample, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Image as float32 (3,H,W) in [-1,1] and mask as float32 (1,H,W) in {0,1}, both resolution x resolution.

    The mask is box-filtered and then every cell with any anomaly pixel is kept, so a
    one-pixel scratch survives downscaling (nearest neighbour can drop it); the image
    is resized bicubically.
    """
    im = load_image(sample.image).convert("RGB")
    m = load_mask(sample.mask, im.size, binarize=True)
    im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
    m = m.resize((resolution, resolution), Image.Resampling.BOX)
    x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    y = (np.asarray(m) > 0).astype(np.float32)[None]
    return x, y
