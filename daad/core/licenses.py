"""Which licences let DAAD redistribute an image, decided in one place.

Every record carries a licence id: an SPDX id where one exists (`CC-BY-4.0`, `MIT`), the
Public Domain Mark as `PDM-1.0`, or a dataset publisher's terms name (`terms:magnetic_tile`)
for data released under custom terms. Publishing includes an image only when its licence
allows redistribution; search collectors additionally require that derivatives are
allowed (DAAD crops, masks and injects), and non-commercial licences only when asked.

Why the parser is strict: a licence string is input from other people's servers and
files, and reading "more or less" is how `CC-BY-4.0-NC` became publishable and how
"All rights reserved. Not https://creativecommons.org/licenses/by/4.0" became CC BY.
A string is understood only when it is, as a whole, one of the forms below; anything
else is `unknown` (never published publicly, never collected from a search):

- an SPDX id (case-insensitive): `CC-BY-SA-4.0`, `CC0-1.0`, `MIT`, ... and the SPDX ids
  of ported CC licences (`CC-BY-SA-3.0-DE`);
- a creativecommons.org licence URL, optionally with a port, `deed.xx` or `legalcode`
  (`https://creativecommons.org/licenses/by/3.0/de/deed.en`, `.../publicdomain/zero/1.0/`);
- a provider's short name with its version given separately (Openverse's `by-sa` +
  `2.0`, `cc0`, `pdm`);
- the short names Wikimedia Commons and Flickr print (`CC BY-SA 4.0`, `CC BY 3.0 de`,
  `CC0`, `Public domain`, `Public Domain Dedication (CC0)`, `Public Domain Mark`).

A ported licence (3.0 de) grants what its generic version grants, so it is recorded as
the generic id; the exact URL stays in the record's `license_url` where a provider gave one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNKNOWN = "unknown"


@dataclass(frozen=True)
class LicenseInfo:
    id: str
    redistributable: bool
    derivatives: bool
    noncommercial: bool
    sharealike: bool
    reason: str = ""


# The six CC licence elements, in the only order CC (and SPDX) write them.
_CC_KINDS = ("BY", "BY-SA", "BY-NC", "BY-ND", "BY-NC-SA", "BY-NC-ND")
_CC_VERSIONS = {"1.0", "2.0", "2.1", "2.5", "3.0", "4.0"}  # 2.1 exists only as ports (JP, ES, AU)
# Jurisdictions CC ported 2.x/3.0 licences to (and IGO). An explicit list, so that a suffix
# like -NC, -ND or -SA can never be read as a port.
_PORTS = set(
    "ar at au be bg br ca ch cl cn co cr cz de dk ec ee eg es fi fr ge gr gt hk hr hu ie igo il in it "
    "jp kr lu mk mt mx my nl no nz pe ph pl pr pt ro rs scotland se sg si sk th tw ug uk us ve vn za".split()
)
_PERMISSIVE = {"MIT": "MIT", "APACHE-2.0": "Apache-2.0", "BSD-2-CLAUSE": "BSD-2-Clause", "BSD-3-CLAUSE": "BSD-3-Clause",
               "CC0-1.0": "CC0-1.0", "PDM-1.0": "PDM-1.0", "ODC-BY-1.0": "ODC-By-1.0", "CDLA-PERMISSIVE-2.0": "CDLA-Permissive-2.0"}
_TERMS = re.compile(r"terms:[a-z0-9_]+")

_KIND = r"(by|by-sa|by-nc|by-nd|by-nc-sa|by-nc-nd)"
_VER = r"(\d\.\d)"
_SPDX_CC = re.compile(rf"cc-{_KIND}-{_VER}(?:-([a-z]+))?")
_CC_URL = re.compile(
    rf"(?:https?:)?//(?:www\.)?creativecommons\.org/licenses/{_KIND}/{_VER}(?:/(?!deed|legalcode)([a-z]+))?"
    r"(?:/(?:deed(?:\.[a-z]{2,3}(?:[-_][a-z0-9]+)?)?|legalcode(?:\.[a-z]{2,3})?))?/?"
)
_PD_URL = re.compile(r"(?:https?:)?//(?:www\.)?creativecommons\.org/publicdomain/(zero|mark)/1\.0(?:/(?:deed(?:\.[a-z]{2,3})?|legalcode))?/?")
_HUMAN_CC = re.compile(rf"cc {_KIND.replace('-', '[ -]')} {_VER}(?: ([a-z]+))?")
_CC0_NAMES = {"cc0", "cc0-1.0", "cc0 1.0", "cc-zero", "public domain dedication (cc0)", "cc0 1.0 universal"}
_PDM_NAMES = {"pdm", "pdm-1.0", "public domain", "public-domain", "publicdomain", "public domain mark", "public domain mark 1.0"}


def _cc(kind: str, version: str | None, port: str | None) -> str:
    """`CC-<KIND>-<version>` when kind, version and port make a licence CC published, else unknown."""
    kind = kind.upper().replace(" ", "-")
    if kind not in _CC_KINDS or version not in _CC_VERSIONS:
        return UNKNOWN
    if port is not None and (port not in _PORTS or version not in ("2.0", "2.1", "2.5", "3.0")):
        return UNKNOWN  # 4.0 and 1.0 were never ported
    if version == "2.1" and port is None:
        return UNKNOWN
    if kind == "BY-NC-ND" and version == "1.0":
        return UNKNOWN  # 1.0 named it BY-ND-NC
    return f"CC-{kind}-{version}"


def normalize(raw: object, version: object = None) -> str:
    """One licence id for `raw`, "" when none was given, `unknown` when it is not understood.

    `version` is the separate version field some providers send (Openverse's
    `license_version`); it is used only with a short name (`by-sa`), never to complete
    an id that already names its version.
    """
    if raw is None:
        return ""
    if not isinstance(raw, str):
        return UNKNOWN
    s = raw.strip()
    if not s:
        return ""
    if not s.isprintable():
        return UNKNOWN
    low = s.lower()
    if low == UNKNOWN:
        return UNKNOWN
    if _TERMS.fullmatch(low):
        return low
    if low.upper() in _PERMISSIVE:
        return _PERMISSIVE[low.upper()]
    if m := _SPDX_CC.fullmatch(low):
        return _cc(m.group(1), m.group(2), m.group(3))
    if m := _CC_URL.fullmatch(low):
        return _cc(m.group(1), m.group(2), m.group(3))
    if m := _PD_URL.fullmatch(low):
        return "CC0-1.0" if m.group(1) == "zero" else "PDM-1.0"
    spaced = " ".join(low.replace("_", " ").split())
    if spaced in _CC0_NAMES:
        return "CC0-1.0"
    if spaced in _PDM_NAMES:
        return "PDM-1.0"
    if m := _HUMAN_CC.fullmatch(spaced):
        return _cc(m.group(1), m.group(2), m.group(3))
    if re.fullmatch(_KIND, low):  # a provider's short name: the version comes separately
        ver = version.strip() if isinstance(version, str) else None
        return _cc(low, ver, None) if ver else UNKNOWN
    return UNKNOWN


def info(license_id: str) -> LicenseInfo:
    """What a licence id allows. Unknown or empty licences allow nothing."""
    lid = normalize(license_id)
    if not lid:
        return LicenseInfo("", False, False, False, False, "no licence recorded")
    if lid == UNKNOWN:
        shown = license_id if isinstance(license_id, str) and license_id.strip() and license_id.strip() != UNKNOWN else ""
        what = f"licence {shown!r} is not understood" if shown else "licence unknown"
        return LicenseInfo(UNKNOWN, False, False, False, False, f"{what} (unknown licences are never published or collected)")
    if lid in _PERMISSIVE.values():
        return LicenseInfo(lid, True, True, False, False)
    if lid.startswith("CC-"):
        parts = lid[3:].rsplit("-", 1)[0].split("-")
        nd = "ND" in parts
        return LicenseInfo(
            lid,
            redistributable=True,
            derivatives=not nd,
            noncommercial="NC" in parts,
            sharealike="SA" in parts,
            reason="no derivatives allowed" if nd else "",
        )
    return LicenseInfo(lid, False, True, True, False, f"publisher's terms ({lid[6:]}) allow research use but not redistribution")


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
    return (int(not known), int(not li.redistributable), int(not li.derivatives), int(li.noncommercial), int(li.sharealike),
            int(li.id.upper() not in _NO_CREDIT))


def strictest(license_ids: list[str]) -> int:
    """Index of the most restrictive licence in `license_ids` (the first one on a tie).

    Raises ValueError on an empty list. Which licences compete is the caller's rule (see
    `daad.core.record.governing_origin`: a dataset's own licence beats a re-hosted copy's).
    """
    if not license_ids:
        raise ValueError("no licence to choose from")
    return max(range(len(license_ids)), key=lambda i: (restrictiveness(license_ids[i]), -i))
