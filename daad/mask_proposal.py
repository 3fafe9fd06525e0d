"""Propose masks for mask-less samples with a classical method that needs no model weights.

Why classical: search images arrive without masks, and a curator's time is best spent
correcting a rough mask rather than drawing from nothing; a method without weights runs
anywhere the base install runs and gives the same answer every time. Proposals are
marked `proposed` and are meant to be accepted, corrected or rejected in review.

The method (for anomalies that are darker or brighter than a locally smooth surface:
scratches, cracks, pits, holes, stains on plates, walls, tiles):

1. Grey, downscaled so the longer side is at most `work_side` px (speed, and a scale
   that does not depend on the camera), then a 3x3 median filter against sensor noise.
2. Background estimation by grey-level morphology with a square of side `se_fraction` x
   the shorter side: a *closing* erases dark structures narrower than the square and
   keeps slow illumination changes, so `closing - image` (black-hat) is the dark residual;
   `image - opening` (top-hat) is the bright residual.
3. Thresholds from the residual itself: the high threshold is the larger of a robust
   z-score (median + `k` x 1.4826 x MAD) and Otsu's threshold, never below `min_contrast`;
   the low threshold is `low_ratio` x high. Hysteresis keeps the pixels above the low
   threshold connected to a pixel above the high one (faint ends of a scratch stay, lone
   noise goes).
4. Cleanup: components smaller than `min_area` of the image are dropped, a 3x3 closing
   joins broken strokes and holes inside a component are filled.
5. `polarity="auto"` computes both residuals and keeps the one whose mask carries more
   residual mass. A mask covering more than `max_area` of the image means the surface
   was not smooth enough for this method: nothing is proposed.

The mask is computed at the working scale and resized (nearest) to the image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from daad import taxonomy
from daad.catalog import Catalog
from daad.errors import BadItemError
from daad.images import load_image
from daad.masks import MaskOutcome, MaskReport, attach_mask, default_who
from daad.media_store import MediaStore

METHOD = "morphological-residual-hysteresis"


def _ndimage():
    try:
        from scipy import ndimage
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("mask proposal needs scipy: pip install 'daad[masks]'") from exc
    return ndimage


@dataclass
class ProposalParams:
    """The method's knobs (see the module docstring); the defaults suit photos of flat surfaces."""

    polarity: str = "auto"  # dark | bright | auto
    work_side: int = 512
    se_fraction: float = 0.08
    k: float = 5.0
    low_ratio: float = 0.5
    min_contrast: float = 0.06  # in [0, 1] grey units: ~15 grey levels
    min_area: float = 0.0005
    max_area: float = 0.5


@dataclass
class Proposal:
    mask: np.ndarray | None  # bool, image size; None when nothing was found
    polarity: str = ""
    threshold: float = 0.0
    area: float = 0.0  # fraction of the image
    reason: str = ""
    params: dict = field(default_factory=dict)


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    w0 = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = 0
    return float(edges[int(np.argmax(between)) + 1])


def _segment(residual: np.ndarray, p: ProposalParams) -> tuple[np.ndarray, float]:
    ndi = _ndimage()
    med = float(np.median(residual))
    sigma = 1.4826 * float(np.median(np.abs(residual - med)))
    high = max(med + p.k * max(sigma, 1 / 255), _otsu(residual), p.min_contrast)
    strong = residual >= high
    if not strong.any():
        return strong, high
    labels, _ = ndi.label(residual >= p.low_ratio * high, structure=np.ones((3, 3)))
    keep = np.unique(labels[strong])
    mask = np.isin(labels, keep[keep > 0])
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n:
        sizes = ndi.sum(mask, labels, index=np.arange(1, n + 1))
        min_px = max(10.0, p.min_area * mask.size)
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= min_px))
    mask = ndi.binary_closing(mask, structure=np.ones((3, 3)), border_value=0) | mask
    return ndi.binary_fill_holes(mask), high


def propose_mask(image: Image.Image | np.ndarray, params: ProposalParams | None = None) -> Proposal:
    """Propose a binary anomaly mask for one image (see the module docstring for the method)."""
    p = params or ProposalParams()
    if p.polarity not in ("dark", "bright", "auto"):
        raise ValueError(f"polarity must be dark, bright or auto, not {p.polarity!r}")
    ndi = _ndimage()
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    grey = im.convert("L")
    w, h = grey.size
    scale = min(1.0, p.work_side / max(w, h))
    if scale < 1.0:
        grey = grey.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    g = ndi.median_filter(np.asarray(grey, dtype=np.float64) / 255.0, size=3)
    se = max(7, int(round(p.se_fraction * min(g.shape))) | 1)
    residuals = {}
    if p.polarity in ("dark", "auto"):
        residuals["dark"] = ndi.grey_closing(g, size=(se, se)) - g
    if p.polarity in ("bright", "auto"):
        residuals["bright"] = g - ndi.grey_opening(g, size=(se, se))
    best: tuple[float, str, np.ndarray, float] | None = None
    for pol, r in residuals.items():
        mask, thr = _segment(r, p)
        mass = float(r[mask].sum())
        if mask.any() and (best is None or mass > best[0]):
            best = (mass, pol, mask, thr)
    info = {**asdict(p), "structuring_element_px": se, "work_size": [g.shape[1], g.shape[0]]}
    if best is None:
        return Proposal(None, reason=f"no region stands out from the background by more than {p.min_contrast:.2f}", params=info)
    _, pol, mask, thr = best
    area = float(mask.mean())
    if area > p.max_area:
        return Proposal(None, pol, thr, area, f"the {pol} residual covers {area:.0%} of the image: surface not smooth enough for this method", info)
    full = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
    return Proposal(full, pol, thr, area, params=info)


def preview_sheet(catalog: Catalog, store: MediaStore, sample_ids: list[str], path: str, tile: int = 256, columns: int = 4) -> str:
    """Save a PNG grid of the samples with their masks overlaid in red, for a quick look before review."""
    from pathlib import Path

    recs = [r for r in (catalog.get(i) for i in sample_ids) if r is not None and r.mask_sha]
    if not recs:
        raise ValueError("no sample with a mask to preview")
    columns = min(columns, len(recs))
    rows = -(-len(recs) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * tile), (32, 32, 32))
    for n, rec in enumerate(recs):
        im = Image.open(store.image_path(rec.id)).convert("RGB")
        mask = Image.open(store.mask_path(rec.mask_sha)).convert("L")
        red = Image.new("RGB", im.size, (255, 0, 0))
        im = Image.composite(Image.blend(im, red, 0.6), im, mask)
        im.thumbnail((tile, tile))
        sheet.paste(im, ((n % columns) * tile + (tile - im.width) // 2, (n // columns) * tile + (tile - im.height) // 2))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return str(path)


def propose_masks(
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    ids: list[str] | None = None,
    anomaly_class: str | None = None,
    origin: str | None = None,
    redo: bool = False,
    params: ProposalParams | None = None,
    who: str | None = None,
    progress: bool = True,
) -> MaskReport:
    """Propose masks for samples without one (or, with `redo`, re-propose `proposed` ones).

    `ids` (full ids or unique prefixes) pick samples explicitly; otherwise every sample
    with mask_status missing (and proposed, with `redo`) matching the filters. Masks a
    person drew or a dataset shipped are never replaced. A proposal identical to one
    that review rejected is not proposed again.
    """
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    who = who or default_who("masks-propose")
    report = MaskReport()
    if ids:
        recs = []
        for i in ids:
            rec = catalog.get(i)
            if rec is None:
                report.add(MaskOutcome(i, "bad", reason="no such sample (or the prefix is not unique)"))
            else:
                recs.append(rec)
    else:
        statuses = [taxonomy.MISSING] + ([taxonomy.PROPOSED] if redo else [])
        recs = [r for s in statuses for r in catalog.find(anomaly_class=anomaly_class, origin=origin, mask_status=s)]
    for rec in tqdm(recs, desc="propose masks", unit="img", disable=not progress):
        if rec.mask_status in (taxonomy.GROUND_TRUTH, taxonomy.ANNOTATED) or (rec.mask_status == taxonomy.PROPOSED and not redo):
            report.add(MaskOutcome(rec.id, "skipped", rec.id, f"already has a {rec.mask_status} mask"))
            continue
        try:
            prop = propose_mask(load_image(store.image_path(rec.id), str(store.image_path(rec.id))), params)
            if prop.mask is None:
                report.add(MaskOutcome(rec.id, "empty", rec.id, prop.reason))
                continue
            mask_img = Image.fromarray(prop.mask.astype(np.uint8) * 255, "L")
            sha = store.put_mask(mask_img, (rec.width, rec.height))
            rejected = [e for e in catalog.events(rec.id) if e["field"] == "mask_sha" and e["old"] == sha and e["new"] is None]
            if rejected:
                report.add(MaskOutcome(rec.id, "skipped", rec.id, f"the same mask was rejected by {rejected[-1]['who']} at {rejected[-1]['at']}"))
                continue
            meta = {"mask_proposal": {"method": METHOD, **prop.params, "polarity": prop.polarity, "threshold": round(prop.threshold, 4), "area": round(prop.area, 5)}}
            _, changed = attach_mask(catalog, store, rec, mask_img, taxonomy.PROPOSED, who, meta=meta)
            report.add(MaskOutcome(rec.id, "proposed" if changed else "unchanged", rec.id))
        except (BadItemError, OSError) as exc:
            report.add(MaskOutcome(rec.id, "bad", rec.id, str(exc)))
    return report
