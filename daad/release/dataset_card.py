"""The dataset card (`README.md`) of a published DAAD version, from the `cards/` templates.

Why generated: the card is where the Hub and `datasets` read the configs and features,
and where people read what is in a version, what was left out and under which licences.
Writing it by hand per version would drift from the data; here every number in it comes
from the rows that were actually written.

Per-source cards live in `cards/sources/<key>.md` (key = the origin up to a `:`, so every
`photos:<name>` origin shares `photos.md`). A source card may start with YAML front
matter; the keys read here are

    title: MVTec AD            # heading of the source's section
    url: https://...           # fallback `url` of its rows
    citation: |                # BibTeX, copied into the card's citation section
      @inproceedings{...}
    gated: auto                # `auto` or `manual`: the source's terms ask users to agree
    gate_prompt: ...           # what users agree to

and the Markdown body is copied into the card. A source without a card gets a section
built from its rows' licences and attributions.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from daad.core import licenses, taxonomy

# License ids the Hub accepts in card metadata (https://huggingface.co/docs/hub/repositories-licenses),
# restricted to those an SPDX id from daad.core.licenses can map to. Anything else becomes "other".
_HUB_LICENSES = {
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "odc-by", "cdla-permissive-2.0",
    "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
}
_HUB_ALIASES = {"odc-by-1.0": "odc-by"}

GATE_MODES = ("auto", "manual")


@dataclass
class SourceCard:
    """What `cards/sources/<key>.md` says about a source (all optional)."""

    key: str
    title: str = ""
    body: str = ""
    url: str = ""
    citation: str = ""
    gated: str = ""
    gate_prompt: str = ""


def source_key(origin: str) -> str:
    """The card name of an origin: `photos:acme` -> `photos`, `mvtec_ad` -> `mvtec_ad`."""
    return origin.split(":", 1)[0]


def load_source_card(origin: str) -> SourceCard | None:
    """The source card of `origin`, or None when nothing is known about the source.

    Read from `cards/sources/<key>.md`; for the public datasets, title, homepage and
    citation the card does not give come from the dataset's adapter (where the collector
    keeps them once).
    """
    key = source_key(origin)
    path = resources.files("daad.cards").joinpath("sources", f"{key}.md")
    card = parse_source_card(key, path.read_text(encoding="utf-8")) if path.is_file() else None
    adapter = _dataset_adapter(origin)
    if adapter is not None:
        card = card or SourceCard(key=key)
        card.title = card.title or adapter.title
        card.url = card.url or adapter.homepage
        card.citation = card.citation or adapter.citation
    return card


def _dataset_adapter(origin: str):
    """The collector adapter of a public dataset origin (`mvtec_ad`), or None."""
    try:
        from daad.collectors.datasets import ADAPTERS
    except ImportError:  # collectors are optional for publishing
        return None
    return ADAPTERS.get(origin)


def parse_source_card(key: str, text: str) -> SourceCard:
    """Split optional YAML front matter from the Markdown body."""
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            body = text[end + 4 :].lstrip("\n")
    gated = str(meta.get("gated") or "").strip().lower()
    if gated in ("true", "yes"):
        gated = "manual"
    if gated and gated not in GATE_MODES:
        raise ValueError(f"cards/sources/{key}.md: gated must be one of {', '.join(GATE_MODES)}, not {gated!r}")
    body = body.strip()
    title = str(meta.get("title") or "")
    first, _, rest = body.partition("\n")
    if first.startswith("# "):  # a leading H1 is the source's title
        title, body = title or first[2:].strip(), rest.strip()
    # The body sits under a level-3 heading in the dataset card: push its own headings below it.
    body = _demote_headings(_user_facing(body))
    return SourceCard(
        key=key,
        title=title,
        body=body,
        url=str(meta.get("url") or ""),
        citation=str(meta.get("citation") or "").strip(),
        gated=gated,
        gate_prompt=str(meta.get("gate_prompt") or "").strip(),
    )


_USER_SECTIONS = re.compile(r"licen[cs]e|citation|cite|terms|attribution|credit", re.I)


def _user_facing(markdown: str) -> str:
    """The intro and the licence / citation / terms sections of a source card.

    Source cards also tell curators how a source is collected (layout, download); people
    who load the dataset need what they may do with the images and whom to cite.
    """
    blocks: list[list[str]] = [[]]
    fenced = False
    for ln in markdown.splitlines():
        if ln.lstrip().startswith("```"):
            fenced = not fenced
        if ln.startswith("#") and not fenced:
            blocks.append([])
        blocks[-1].append(ln)
    keep = [blocks[0]] + [b for b in blocks[1:] if _USER_SECTIONS.search(b[0])]
    return "\n".join("\n".join(b).strip("\n") + "\n" for b in keep if any(x.strip() for x in b)).strip()


def _demote_headings(markdown: str, levels: int = 3) -> str:
    """Add `levels` to every Markdown heading outside code fences."""
    out, fenced = [], False
    for ln in markdown.splitlines():
        if ln.lstrip().startswith("```"):
            fenced = not fenced
        out.append("#" * levels + ln if ln.startswith("#") and not fenced else ln)
    return "\n".join(out)


def hub_license(license_id: str) -> str:
    """The Hub's metadata id for an SPDX-style licence id, or "other"."""
    low = licenses.normalize(license_id).lower()
    low = _HUB_ALIASES.get(low, low)
    return low if low in _HUB_LICENSES else "other"


def gating(origin_licenses: dict[str, Counter], cards: dict[str, SourceCard | None]) -> tuple[str, str]:
    """(mode, prompt) for the Hub's access gate, or ("", "") when nothing asks for one.

    A source card can ask for a gate (`gated: auto|manual`: the source's terms want users to
    agree before download); `manual` wins over `auto`. Non-commercial licences ask for an
    automatic gate whose prompt states the non-commercial terms, so nobody downloads an
    NC image for a product without having been told.
    """
    mode, prompts = "", []
    for origin in sorted(origin_licenses):
        card = cards.get(origin)
        if card and card.gated:
            mode = "manual" if "manual" in (mode, card.gated) else "auto"
            prompts.append(card.gate_prompt or f"I agree to the terms of {card.title or origin}.")
    nc = sorted({lic for counts in origin_licenses.values() for lic in counts if licenses.info(lic).noncommercial})
    if nc:
        mode = mode or "auto"
        prompts.append(
            f"Some images are licensed for non-commercial use only ({', '.join(nc)}; see each row's `license`): "
            "I will use those images only under their licence terms."
        )
    return mode, " ".join(dict.fromkeys(prompts))


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class CardInputs:
    """Everything the card says, measured on the rows that were written."""

    version: str
    date: str
    repo: str
    yaml_header: str
    rows: int
    shards: int
    configs: dict[str, int]  # config -> rows
    class_source: Counter  # (class, source) -> rows
    exclusions: Counter  # reason -> samples left out
    origin_licenses: dict[str, Counter]  # origin -> licence -> rows
    origin_attributions: dict[str, Counter]  # origin -> attribution -> rows
    cards: dict[str, SourceCard | None]
    changelog: str
    gate_prompt: str = ""
    omitted_configs: list[str] = field(default_factory=list)  # exclude configs with no row left


def _class_source_table(cs: Counter) -> str:
    sources = list(taxonomy.SOURCES)
    rows = []
    for cls in taxonomy.CLASSES:
        counts = [cs[(cls, s)] for s in sources]
        rows.append([cls, *counts, sum(counts)])
    totals = [sum(cs[(c, s)] for c in taxonomy.CLASSES) for s in sources]
    rows.append(["**total**", *totals, sum(totals)])
    return md_table(["class", *sources, "total"], rows)


def _source_sections(inp: CardInputs) -> tuple[str, str]:
    """One section per origin (card body or a fallback from the rows), plus the citations."""
    sections, citations, seen_keys = [], [], set()
    for origin in sorted(inp.origin_licenses):
        card = inp.cards.get(origin)
        lic = inp.origin_licenses[origin]
        n = sum(lic.values())
        if card and card.title:
            title = card.title if f"`{origin}`" in card.title else f"{card.title}: `{origin}`"
        else:
            title = f"`{origin}`"
        lines = [f"### {title} ({n} samples)", ""]
        if card and card.body and card.key not in seen_keys:
            lines += [card.body, ""]
        if card and card.url and card.url not in card.body:
            lines.append(f"Homepage: <{card.url}>")
        lines.append("Licences: " + ", ".join(f"{k or 'none'} ({v})" for k, v in sorted(lic.items())) + ".")
        attrs = inp.origin_attributions.get(origin, Counter())
        named = [a for a, _ in attrs.most_common() if a]
        if named:
            shown = ", ".join(named[:10]) + (f", and {len(named) - 10} more (see each row's `attribution`)" if len(named) > 10 else "")
            lines.append(f"Credit: {shown}.")
        sections.append("\n".join(lines))
        if card and card.citation and card.key not in seen_keys:
            citations.append(card.citation)
        if card:
            seen_keys.add(card.key)
    cit = ""
    if citations:  # BibTeX entries in one code block, plain references as a list
        bib = [c for c in citations if c.startswith("@")]
        plain = [c for c in citations if not c.startswith("@")]
        cit = "\nPlease also cite the sources whose images you use:\n\n"
        cit += "".join(f"- {c}\n" for c in plain)
        cit += ("\n```bibtex\n" + "\n\n".join(bib) + "\n```\n") if bib else ""
    return "\n\n".join(sections) or "No samples.", cit


def render_card(inp: CardInputs) -> str:
    """The README.md text: YAML header, then the `cards/dataset_card.md` template filled in."""
    template = string.Template(resources.files("daad.cards").joinpath("dataset_card.md").read_text(encoding="utf-8"))
    lic_total: Counter = Counter()
    for counts in inp.origin_licenses.values():
        lic_total.update(counts)
    sections, citations = _source_sections(inp)
    excluded_total = sum(inp.exclusions.values())
    gate = f"\n\nAccess is gated: {inp.gate_prompt}" if inp.gate_prompt else ""
    return template.substitute(
        yaml=inp.yaml_header.rstrip("\n"),
        version=inp.version,
        date=inp.date,
        rows=inp.rows,
        shards=f"{inp.shards} parquet shard{'' if inp.shards == 1 else 's'}",
        repo=inp.repo,
        revision_arg=f', revision="v{inp.version}"',
        configs_table=md_table(
            ["config", "rows"],
            [[f"`{k}`", v] for k, v in inp.configs.items()]
            + [[f"`{k}`", "not written: every published sample leaks this dataset"] for k in inp.omitted_configs],
        ),
        class_list=", ".join(f"`{c}`" for c in taxonomy.CLASSES) + " (ClassLabel, in this order)",
        class_source_table=_class_source_table(inp.class_source),
        exclusions=(
            f"{excluded_total} samples of the catalog were left out:\n\n"
            + md_table(["reason", "samples"], [[k, v] for k, v in inp.exclusions.most_common()])
            if excluded_total else "Nothing in the catalog was left out."
        ),
        license_table=md_table(["licence", "rows"], [[k, v] for k, v in lic_total.most_common()]) + gate,
        source_sections=sections,
        changelog=inp.changelog,
        source_citations=citations,
    )
