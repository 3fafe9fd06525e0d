"""CAI: Cross-domain Anomaly Injection (paper Sec. 3.1, Algorithm 1).

Parts (each swappable): `poisson` (exact DST Poisson solver, Normal/Mixed), `foreground`
(m(I): rembg, Otsu, full, auto), `matching` (STM/MAS scales), `locations` (ILS),
`patterns` (pattern pools: arrays or a published DAAD), `cai` (the `CAI` class),
`output` (anomalib Folder layout, manifest, preview, parallel run).
"""

from .cai import CAI, Injection
from .patterns import ArrayPool, Pattern, PublishedPool

__all__ = ["CAI", "Injection", "Pattern", "ArrayPool", "PublishedPool"]
