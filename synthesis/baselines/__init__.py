"""The pseudo-anomaly baselines the paper compares CAI with (Table 1), in CAI's public shape.

Each is configured once and called on a normal target, `synth(image, key=...)`, giving
`Injection`s (image, binary mask, provenance), so `daad.synthesis.cai.output.run` writes
their anomalib Folder layout exactly as it writes CAI's:

- `cutpaste.CutPaste` (Li et al., CVPR 2021): a patch of the target itself, "normal" or "scar".
- `nsa.NSA` (Schlueter et al., ECCV 2022): patches of *other* normal images, Poisson-blended
  ("normal" NSA-N, "mixed" NSA-M).
- `draem.DRAEM` (Zavrtanik et al., ICCV 2021): Perlin-noise masks filled from a texture folder.
- `cai_paper.paper_code_cai`: CAI with the choices of the authors' released code.
"""

from .cai_paper import paper_code_cai
from .cutpaste import CutPaste
from .draem import DRAEM
from .nsa import NSA

__all__ = ["CutPaste", "NSA", "DRAEM", "paper_code_cai"]
