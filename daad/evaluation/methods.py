"""Method names of `daad compare` and the synthesiser each one builds.

    cai-n, cai-m                 CAI, Normal / Mixed Poisson editing (daad's defaults)
    cai-paper-n, cai-paper-m     CAI as the authors' released code does it
    cutpaste, cutpaste-scar      CutPaste normal / scar
    nsa-n, nsa-m                 NSA, Normal / Mixed
    draem                        DRAEM's Perlin masks over textures (`--textures`)

CAI methods take options after a colon, comma-free except in split (Tables 3 and 4):
`cai-n:no-pe` (pasted), `cai-n:no-stm`, `cai-n:no-ils`, `cai-n:split=2,2,6`,
`cai-n:mask=paper` (the authors' T = 7 + median 7 instead of T = 4), `cai-n:T=7`;
several joined by `+` (`cai-n:no-stm+no-ils`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daad.core.errors import DaadError

BASE_METHODS = ("cai-n", "cai-m", "cai-paper-n", "cai-paper-m", "cutpaste", "cutpaste-scar", "nsa-n", "nsa-m", "draem")
NEEDS_DAAD = ("cai-n", "cai-m", "cai-paper-n", "cai-paper-m")


@dataclass(frozen=True)
class Method:
    """A parsed method name: the base method and its CAI options."""

    spec: str
    base: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """A file-system-safe folder name for this method (`cai-n:split=2,2,6` -> `cai-n_split-2-2-6`)."""
        return re.sub(r"[^A-Za-z0-9.-]+", "-", self.spec.replace(":", "_", 1)).strip("-")


def parse_method(spec: str) -> Method:
    """`cai-n:split=2,2,6` -> Method; DaadError naming the item for an unknown name or option."""
    text = spec.strip().lower()
    base, _, opts = text.partition(":")
    if base not in BASE_METHODS:
        raise DaadError(f"unknown method {spec!r}; expected one of {', '.join(BASE_METHODS)} (CAI ones with :no-pe, :no-stm, :no-ils, :split=L,M,S, :mask=paper, :T=N)")
    options: dict[str, Any] = {}
    if opts and not base.startswith("cai-"):
        raise DaadError(f"method {spec!r}: only CAI methods take options")
    for opt in filter(None, opts.split("+")):
        if opt == "no-pe":
            options["paste"] = True
        elif opt == "no-stm":
            options["stm"] = False
        elif opt == "no-ils":
            options["ils"] = False
        elif opt == "mask=paper":
            options["threshold"], options["median"] = 7, 7
        elif opt.startswith("t="):
            try:
                options["threshold"] = int(opt[2:])
            except ValueError:
                raise DaadError(f"method {spec!r}: T must be an integer, not {opt[2:]!r}") from None
        elif opt.startswith("split="):
            try:
                quota = tuple(int(v) for v in opt[6:].split(","))
            except ValueError:
                quota = ()
            if len(quota) != 3 or min(quota) < 0 or sum(quota) == 0:
                raise DaadError(f"method {spec!r}: split must be three counts L,M,S such as 2,2,6")
            options["quota"] = quota
        else:
            raise DaadError(f"method {spec!r}: unknown option {opt!r} (no-pe, no-stm, no-ils, split=L,M,S, mask=paper, T=N)")
    return Method(spec.strip(), base, options)


def split_methods(text: str) -> list[Method]:
    """A comma-separated list of methods; commas inside `split=` belong to it."""
    parts = re.split(r",(?![0-9])", text)
    return [parse_method(p) for p in parts if p.strip()]


def build(method: Method, *, seed: int, size: int, per_image: int, pool: Any = None, foreground: str = "auto",
          normals: list[tuple[str, Any]] | None = None, textures: str | Path | None = None) -> Any:
    """The configured synthesiser for `method` (callable on a target, with `.size` and `.mode`)."""
    from daad.synthesis.baselines import DRAEM, NSA, CutPaste, paper_code_cai
    from daad.synthesis.cai.cai import CAI, paste
    from daad.synthesis.cai.matching import split_quota

    base = method.base
    if base in NEEDS_DAAD and pool is None:
        raise DaadError(f"method {method.spec}: needs --dataset (a published DAAD)")
    if base.startswith("cai-"):
        opts = dict(method.options)
        quota = opts.pop("quota", split_quota(per_image))
        mode = "normal" if base.endswith("-n") else "mixed"
        if base.startswith("cai-paper"):
            return paper_code_cai(pool, mode=mode, size=size, seed=seed, quota=quota, foreground=foreground)
        if opts.get("median"):  # the authors' 7x7 at 256 px, scaled as in cai_paper
            from daad.synthesis.baselines.cai_paper import scaled

            opts["median"] = scaled(opts["median"], size, odd=True)
        if opts.pop("paste", False):
            opts["blender"] = paste
        return CAI(pool, mode=mode, size=size, seed=seed, quota=quota, foreground=foreground, **opts)
    if base.startswith("cutpaste"):
        return CutPaste(mode="scar" if base == "cutpaste-scar" else "normal", per_image=per_image, size=size, seed=seed)
    if base.startswith("nsa"):
        if not normals:
            raise DaadError(f"method {method.spec}: needs the normal training images")
        return NSA(normals, mode="normal" if base == "nsa-n" else "mixed", per_image=per_image, size=size, seed=seed)
    if textures is None:
        raise DaadError(f"method {method.spec}: needs --textures (a folder of texture images, e.g. DTD or a DAAD release's images)")
    try:
        return DRAEM(textures, per_image=per_image, size=size, seed=seed)
    except ValueError as exc:
        raise DaadError(str(exc)) from None
