"""The metrics of the paper's evaluation protocol (Sec. 4.1, after AnomalyDiffusion [12]).

Pixel AUROC and pixel AP pool every pixel of every test image (normal test images count
as all-negative pixels); image AUROC scores an image by the maximum of its map. These
three are scikit-learn's `roc_auc_score` / `average_precision_score` (maintained,
already installed with the synthesis extras; anomalib would pull a CUDA build of torch,
torchmetrics has no PRO). PRO is written here, to the MVTec AD definition (Bergmann et
al., IJCV 2021, and the official evaluation code): ground-truth regions are the
8-connected components of each mask; at each threshold the PRO is the mean over all
regions of the fraction of the region above it, the FPR is the fraction of normal pixels
above it; the area under PRO(FPR) from FPR 0 to 0.3 (linearly interpolated at 0.3)
divided by 0.3. It is computed exactly in one sort (every distinct score is a
threshold), and tested against a threshold-by-threshold loop.
"""

from __future__ import annotations

from typing import cast

import numpy as np

PRO_FPR_LIMIT = 0.3


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks).astype(bool)
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be (N, H, W)")
    if not masks.any() or masks.all():
        raise ValueError("the masks need both anomalous and normal pixels")
    return maps, masks


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    maps, masks = _check(maps, masks)
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def pixel_ap(maps: np.ndarray, masks: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    maps, masks = _check(maps, masks)
    return float(average_precision_score(masks.ravel(), maps.ravel()))


def image_auroc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """AUROC of max(map) against "the mask marks something"; None when all test images are of one kind."""
    from sklearn.metrics import roc_auc_score

    maps, masks = _check(maps, masks)
    labels = masks.reshape(len(masks), -1).any(axis=1)
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, maps.reshape(len(maps), -1).max(axis=1)))


def regions(masks: np.ndarray) -> np.ndarray:
    """Region labels (N, H, W): 0 for normal pixels, 1..R for the 8-connected components, numbered across images."""
    from scipy import ndimage

    out = np.zeros(masks.shape, dtype=np.int64)
    offset = 0
    for i, m in enumerate(masks):
        lab, n = cast("tuple[np.ndarray, int]", ndimage.label(m, structure=np.ones((3, 3))))
        out[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return out


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at every distinct score taken as threshold (score >= t is anomalous), FPR ascending, from (0, 0)."""
    maps, masks = _check(maps, masks)
    lab = regions(masks).ravel()
    scores = maps.ravel()
    n_regions = int(lab.max())
    sizes = np.bincount(lab, minlength=n_regions + 1).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    s, lb = scores[order], lab[order]
    neg = lb == 0
    fpr_step = neg / neg.sum()
    pro_step = np.where(neg, 0.0, 1.0 / (sizes[lb] * n_regions))
    fpr, pro = np.cumsum(fpr_step), np.cumsum(pro_step)
    last = np.r_[s[1:] != s[:-1], True]  # the last pixel of each group of equal scores
    return np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]


def area_to(fpr: np.ndarray, pro: np.ndarray, limit: float = PRO_FPR_LIMIT) -> float:
    """Area under the piecewise-linear curve from FPR 0 to `limit`, divided by `limit`."""
    keep = fpr <= limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < limit:
        j = int(np.searchsorted(fpr, limit))
        y_lim = pro[j - 1] + (pro[j] - pro[j - 1]) * (limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x, y = np.r_[x, limit], np.r_[y, y_lim]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / limit)


def pro_score(maps: np.ndarray, masks: np.ndarray, limit: float = PRO_FPR_LIMIT) -> float:
    """Normalised area under the PRO curve up to FPR `limit` (MVTec AD's AUPRO at 0.3)."""
    fpr, pro = pro_curve(maps, masks)
    return area_to(fpr, pro, limit)


def all_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float | None]:
    """pixel_auroc, pixel_ap, pro, image_auroc of one set of maps."""
    return {"pixel_auroc": pixel_auroc(maps, masks), "pixel_ap": pixel_ap(maps, masks),
            "pro": pro_score(maps, masks), "image_auroc": image_auroc(maps, masks)}


METRICS = ("pixel_auroc", "pixel_ap", "pro", "image_auroc")
