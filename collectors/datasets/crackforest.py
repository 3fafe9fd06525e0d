"""CrackForest (CFD), road cracks (Shi, Cui, Qi, Meng, Chen, IEEE T-ITS 2016).

Publisher's layout (github.com/cuilimeng/CrackForest-dataset, the repository is the
distribution):

    image/NNN.jpg            480x320 road photographs
    groundTruth/NNN.mat      MATLAB struct `groundTruth` with `Segmentation` (a label per
                             pixel, 1-based) and `Boundaries` (1-pixel segment outlines)
    seg/NNN.seg              the same segmentation as ASCII run-lengths (Berkeley format:
                             a header, then `data`, then `segment row col_start col_end`,
                             0-based and inclusive)

The masks come from both files, and both must agree pixel for pixel: `.seg` segment s is
`.mat` label s+1. When they disagree (or one is missing or unreadable) the image is
reported as bad with the number of differing pixels and is not collected: neither file
is trusted over the other. Measured on the 118 annotated images of the repository: all
118 agree exactly.

Which segments are cracks: label 1 is the road, label 2 the crack (how the community's
CFD-to-PNG converters read it). 22 images have a label 3: road enclosed by crack loops
(grey level as the road's, widest point up to 39 px from its edge); 5 images have a
label 4: thin curves (at most 2.8 px from their edge) along faint cracks, checked by
eye on all five. So the mask is labels 2 and 4 (`CRACK_SEGMENTS`). `Boundaries` outlines
segments, not cracks, and is not used for the mask.

Alignment, measured: in 117 of the 118 images the masked pixels are darker on average
than the rest (cracks are dark); image 042's mask does not follow the crack in its photo
(a publisher annotation error, collected as published: review can reject it).

Images 201-208 and 301-329 have no ground truth; they are listed by `iter_all_images`
(leakage checks) and skipped by `iter_items` with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

import numpy as np

from daad.core.errors import BadMaskError
from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

CRACK_SEGMENTS = (2, 4)  # 1-based .mat labels; see the module docstring
LABEL = "crack"


def read_mat_segmentation(path: Path) -> np.ndarray:
    """The `Segmentation` label image of one groundTruth .mat file (1-based labels)."""
    try:
        import scipy.io
    except ImportError:  # pragma: no cover - scipy comes with the masks/dedupe extras
        raise BadMaskError(path, "reading .mat files needs scipy: pip install 'daad[masks]'") from None
    try:
        gt = scipy.io.loadmat(str(path))["groundTruth"]
        seg = np.asarray(gt[0, 0]["Segmentation"], dtype=np.int64)
    except FileNotFoundError:
        raise BadMaskError(path, "file is missing") from None
    except (KeyError, IndexError, ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise BadMaskError(path, f"not a CrackForest groundTruth struct ({type(exc).__name__}: {exc})") from None
    if seg.ndim != 2:
        raise BadMaskError(path, f"Segmentation has shape {seg.shape}, expected a 2-D label image")
    return seg


def read_seg_file(path: Path) -> np.ndarray:
    """The label image of one Berkeley-format ASCII .seg file, as 1-based labels (like the .mat)."""
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except FileNotFoundError:
        raise BadMaskError(path, "file is missing") from None
    except OSError as exc:
        raise BadMaskError(path, f"cannot read ({exc})") from None
    header: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "data")
    except StopIteration:
        raise BadMaskError(path, "no `data` line: not a .seg file") from None
    for line in lines[:start]:
        key, _, value = line.strip().partition(" ")
        header[key] = value.strip()
    try:
        width, height = int(header["width"]), int(header["height"])
    except (KeyError, ValueError):
        raise BadMaskError(path, "header has no width/height") from None
    if header.get("format", "ascii cr").split()[0] != "ascii":
        raise BadMaskError(path, f"format {header.get('format')!r} is not supported (only ascii)")
    labels = np.zeros((height, width), np.int64)  # 0 = not covered by any run
    for n, line in enumerate(lines[start + 1 :], start + 2):
        if not line.strip():
            continue
        try:
            s, r, c1, c2 = (int(v) for v in line.split())
        except ValueError:
            raise BadMaskError(path, f"line {n}: expected `segment row col_start col_end`, found {line.strip()[:40]!r}") from None
        if not (0 <= r < height and 0 <= c1 <= c2 < width):
            raise BadMaskError(path, f"line {n}: run row {r} cols {c1}-{c2} is outside {width}x{height}")
        labels[r, c1 : c2 + 1] = s + 1
    if header.get("invert", "0") == "1" or header.get("flipflop", "0") == "1":
        raise BadMaskError(path, "inverted or flipped .seg files are not supported")
    return labels


def crack_mask(mat: Path, seg: Path) -> np.ndarray:
    """The 0/255 crack mask of one image from both files; BadMaskError unless they agree exactly."""
    a, b = read_mat_segmentation(mat), read_seg_file(seg)
    if a.shape != b.shape:
        raise BadMaskError(mat, f"{mat.name} is {a.shape[1]}x{a.shape[0]} but {seg.name} is {b.shape[1]}x{b.shape[0]}; not collected")
    differ = int((a != b).sum())
    if differ:
        raise BadMaskError(mat, f"{mat.name} and seg/{seg.name} disagree on {differ} of {a.size} pixels; not collected (neither file is trusted over the other)")
    return np.isin(a, CRACK_SEGMENTS).astype(np.uint8) * 255


class CrackForest(DatasetAdapter):
    name = "crackforest"
    layout = "CrackForest's layout image/NNN.jpg with groundTruth/NNN.mat and seg/NNN.seg"

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        if not (root / "image").is_dir():
            raise self.layout_error(root, f"no image/ folder here; {folders_found(root)}")
        if not image_files(root / "image"):
            raise self.layout_error(root, "image/ holds no NNN.jpg photographs")
        for sub in ("groundTruth", "seg"):
            if not (root / sub).is_dir():
                raise self.layout_error(root, f"{sub}/ (the masks) is missing (half-cloned, or another dataset)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for image in image_files(root / "image"):
            mat, seg = root / "groundTruth" / f"{image.stem}.mat", root / "seg" / f"{image.stem}.seg"
            if not mat.exists() and not seg.exists():
                yield Skip(str(image), "no ground truth published for this image (neither .mat nor .seg)", label=LABEL)
                continue
            yield self.item(root, image, lambda m=mat, s=seg: crack_mask(m, s), LABEL, mapping, "all")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for image in image_files(root / "image"):
            yield self.rel(root, image), image
