"""The source registry: every source's facts, kept once, in the YAML front matter of `cards/sources/<name>.md`.

    ---
    title: MVTec AD
    homepage: https://www.mvtec.com/company/research/datasets/mvtec-ad
    license: CC-BY-NC-SA-4.0              # SPDX id or terms:<name> (daad.core.licenses)
    attribution: MVTec AD, MVTec Software GmbH (Bergmann et al., CVPR 2019), CC BY-NC-SA 4.0
    citation: Paul Bergmann, ... CVPR 2019, pp. 9592-9600.     # one-line reference
    citation_key: bergmann2019mvtec       # in every record's meta
    bibtex: |                             # the dataset card's citation section
      @inproceedings{bergmann2019mvtec, ...}
    downloads:                            # pinned archives (`daad collect dataset NAME PATH --download`)
      - url: https://...
        filename: mvtec_anomaly_detection.tar.xz
        sha256: cf4313b1...               # or md5: where no sha256 is known
        size: 5264982680                  # bytes, when known
    gated: auto                           # the source's terms ask Hub users to agree (auto|manual)
    gate_prompt: ...
    ---
    # Markdown body: what the source is, its terms in words, how it is collected

Readers: the dataset adapters (`DatasetAdapter.title`, `.license`, ... are these
fields), the search providers' cards, the dataset card and publish, the downloader.
Why here, in core: publish and the card must read a source's facts without importing
the collectors that produce its records. All keys are optional; `url` is read as an
old spelling of `homepage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

GATE_MODES = ("auto", "manual")


@dataclass(frozen=True)
class Download:
    """One archive of a dataset at its publisher's URL, with the checksum that proves it.

    `sha256` is pinned (ours, or a well-known pin such as anomalib's); `md5` only where
    no sha256 is known (MVTec 3D-AD). MVTec and the others publish no checksum themselves.
    """

    url: str
    filename: str
    sha256: str = ""
    md5: str = ""
    size: int = 0  # bytes; 0 when unknown


@dataclass(frozen=True)
class Source:
    """The facts of one source (a public dataset, a search provider, a photo collection)."""

    name: str
    title: str = ""
    homepage: str = ""
    license: str = ""
    attribution: str = ""
    citation: str = ""
    citation_key: str = ""
    bibtex: str = ""
    downloads: tuple[Download, ...] = ()
    gated: str = ""
    gate_prompt: str = ""
    body: str = field(default="", repr=False)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(the YAML front matter as a dict, the Markdown body) of a card's text."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            if not isinstance(meta, dict):
                raise ValueError(f"front matter is a {type(meta).__name__}, not a mapping")
            return meta, text[end + 4 :].lstrip("\n")
    return {}, text


def parse_source(name: str, text: str) -> Source:
    """A Source from a card's text; ValueError naming the card and key when a value is wrong."""
    where = f"cards/sources/{name}.md"
    try:
        meta, body = split_front_matter(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{where}: bad front matter ({exc})") from None
    gated = str(meta.get("gated") or "").strip().lower()
    if gated in ("true", "yes"):
        gated = "manual"
    if gated and gated not in GATE_MODES:
        raise ValueError(f"{where}: gated must be one of {', '.join(GATE_MODES)}, not {gated!r}")
    downloads = []
    for i, d in enumerate(meta.get("downloads") or []):
        if not isinstance(d, dict) or not d.get("url") or not d.get("filename") or not (d.get("sha256") or d.get("md5")):
            raise ValueError(f"{where}: downloads[{i}] needs url, filename and sha256 (or md5)")
        downloads.append(Download(str(d["url"]), str(d["filename"]), str(d.get("sha256") or ""), str(d.get("md5") or ""), int(d.get("size") or 0)))

    def text_of(key: str) -> str:
        return str(meta.get(key) or "").strip()

    return Source(
        name=name, title=text_of("title"), homepage=text_of("homepage") or text_of("url"), license=text_of("license"),
        attribution=text_of("attribution"), citation=text_of("citation"), citation_key=text_of("citation_key"),
        bibtex=text_of("bibtex"), downloads=tuple(downloads), gated=gated, gate_prompt=text_of("gate_prompt"), body=body,
    )


def source_key(origin: str) -> str:
    """The card name of an origin: `photos:acme` -> `photos`, `mvtec_ad` -> `mvtec_ad`."""
    return origin.split(":", 1)[0]


@lru_cache(maxsize=None)
def get_source(origin: str) -> Source | None:
    """The registry entry of `origin` (its card's front matter and body), or None when it has no card."""
    key = source_key(origin)
    path = resources.files("daad.cards").joinpath("sources", f"{key}.md")
    if not path.is_file():
        return None
    return parse_source(key, path.read_text(encoding="utf-8"))


def require_source(origin: str) -> Source:
    """Like get_source, but a missing card is an error (an adapter's card must exist)."""
    src = get_source(origin)
    if src is None:
        raise LookupError(f"no source card cards/sources/{source_key(origin)}.md for {origin!r}")
    return src
