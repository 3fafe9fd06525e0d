"""Which licences let DAAD redistribute an image, decided in one place.

Every record carries a licence id: an SPDX id where one exists (`CC-BY-4.0`, `MIT`), the
Public Domain Mark as `PDM-1.0`, or a dataset publisher's terms name (`terms:magnetic_tile`)
for data released under custom terms. Publishing includes an image only when its licence
allows redistribution; search collectors additionally require that derivatives are
allowed (DAAD crops, masks and injects), and non-commercial licences only when asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LicenseInfo:
    id: str
    redistributable: bool
    derivatives: bool
    noncommercial: bool
    reason: str = ""


_CC = re.compile(r"^CC-(BY(?:-NC)?(?:-ND|-SA)?)-(\d\.\d)(?:-[A-Z]+)?$")
_PERMISSIVE = {"MIT", "APACHE-2.0", "BSD-2-CLAUSE", "BSD-3-CLAUSE", "CC0-1.0", "PDM-1.0", "ODC-BY-1.0", "CDLA-PERMISSIVE-2.0"}


def normalize(raw: str, version: str | None = None) -> str:
    """Turn common spellings into one id.

    Accepts SPDX ids, provider short names with a separate version (Openverse's
    `by-sa` + `2.0`), creativecommons.org URLs, `cc0`, `pdm`/`publicdomain`.
    """
    s = (raw or "").strip()
    if not s:
        return ""
    m = re.search(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)?", s, re.I)
    if m:
        kind, code, ver = m.group(1).lower(), m.group(2).lower(), m.group(3) or "1.0"
        if kind == "publicdomain":
            return "CC0-1.0" if code == "zero" else "PDM-1.0"
        return f"CC-{code.upper()}-{ver}"
    low = s.lower().replace("_", "-").replace(" ", "-")
    if low in ("cc0", "cc0-1.0", "cc-zero"):
        return "CC0-1.0"
    if low in ("pdm", "pdm-1.0", "public-domain", "publicdomain", "public-domain-mark"):
        return "PDM-1.0"
    m = re.fullmatch(r"(?:cc-)?(by(?:-nc)?(?:-nd|-sa)?)(?:-(\d\.\d))?", low)
    if m:
        return f"CC-{m.group(1).upper()}-{m.group(2) or version or '4.0'}"
    return s


def info(license_id: str) -> LicenseInfo:
    """What a licence id allows. Unknown or empty licences allow nothing."""
    lid = normalize(license_id)
    up = lid.upper()
    if not lid:
        return LicenseInfo("", False, False, False, "no licence recorded")
    if up in _PERMISSIVE:
        return LicenseInfo(lid, True, True, False)
    m = _CC.match(up)
    if m:
        parts = m.group(1).split("-")
        nd = "ND" in parts
        return LicenseInfo(
            lid,
            redistributable=True,
            derivatives=not nd,
            noncommercial="NC" in parts,
            reason="no derivatives allowed" if nd else "",
        )
    if lid.startswith("terms:"):
        return LicenseInfo(lid, False, True, True, f"publisher's terms ({lid[6:]}) allow research use but not redistribution")
    return LicenseInfo(lid, False, False, False, f"licence {lid!r} is not known to allow redistribution")


def publishable(license_id: str) -> tuple[bool, str]:
    """(True, "") when DAAD may publish an image under this licence, else (False, why)."""
    li = info(license_id)
    if not li.redistributable:
        return False, li.reason
    if not li.derivatives:
        return False, li.reason or "no derivatives allowed"
    return True, ""


def collectable(license_id: str, allow_noncommercial: bool = False) -> tuple[bool, str]:
    """Whether a search result may be stored: redistribution and derivatives allowed (NC on request)."""
    ok, why = publishable(license_id)
    if not ok:
        return ok, why
    if info(license_id).noncommercial and not allow_noncommercial:
        return False, "non-commercial licence (pass --allow-nc to collect it)"
    return True, ""


_NO_CREDIT = {"CC0-1.0", "PDM-1.0"}


def restrictiveness(license_id: str) -> tuple[int, int, int, int, int, int]:
    """How much a licence forbids, as a sort key: larger is more restrictive.

    "Most restrictive" compares, in this order, what a licence takes away from DAAD's
    users: being understood at all (an unknown or empty licence allows nothing, so it is
    the most restrictive), redistribution (publisher's terms such as `terms:magnetic_tile`
    allow research use only), derivatives (ND), commercial use (NC), the share-alike duty
    (SA), then the duty to credit. So, from least to most restrictive:
    CC0 / PDM < MIT / BSD / CC-BY ... < CC-BY-SA < CC-BY-NC < CC-BY-NC-SA < CC-BY-ND
    < CC-BY-NC-ND < terms:<publisher> < unknown. Licence versions do not count (CC-BY-2.0
    ties CC-BY-4.0).
    """
    li = info(license_id)
    known = bool(li.id) and (li.redistributable or li.id.startswith("terms:"))
    return (int(not known), int(not li.redistributable), int(not li.derivatives), int(li.noncommercial), int("-SA" in li.id.upper()),
            int(li.id.upper() not in _NO_CREDIT))


def strictest(license_ids: list[str]) -> int:
    """Index of the most restrictive licence in `license_ids` (the first one on a tie).

    Raises ValueError on an empty list. Which licences compete is the caller's rule (see
    `daad.core.record.governing_origin`: a dataset's own licence beats a re-hosted copy's).
    """
    if not license_ids:
        raise ValueError("no licence to choose from")
    return max(range(len(license_ids)), key=lambda i: (restrictiveness(license_ids[i]), -i))
