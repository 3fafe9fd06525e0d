"""The dataset card (`README.md`) of a published DAAD version, from the `cards/` templates.

Why generated: the card is where the Hub and `datasets` read the configs and features,
and where people read what is in a version, what was left out and under which licences.
Writing it by hand per version would drift from the data; here every number in it comes
from the rows that were actually written.

Per-source cards live in `cards/sources/<key>.md` (key = the origin up to a `:`, so every
`photos:<name>` origin shares `photos.md`); their front matter is the source registry
(`daad.core.sources`). Read here: `title` (heading of the source's section), `homepage`
(fallback `url` of its rows), `citation` (one-line reference) and `bibtex` (the card's citation section),
`gated` / `gate_prompt` (the source's terms ask users to agree); the Markdown body's
user-facing sections are copied into the card. A source without a card gets a section
built from its rows' licences and attributions.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from daad.core import licenses, taxonomy
from daad.core.sources import Source, get_source, parse_source

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

@dataclass(frozen=True)
class SourceCard:
    """A source's registry entry and what the dataset card shows of its Markdown body.

    The facts (homepage, citation, bibtex, gate, ...) are read from `source`, kept once in
    `daad.core.sources`; only what the card derives from the body is held here.
    """

    source: Source
    title: str = ""  # the front matter's title, else the body's leading H1
    body: str = ""  # the body's intro and licence / citation / terms sections, headings demoted below the card's H3


def load_source_card(origin: str) -> SourceCard | None:
    """The source card of `origin` (`cards/sources/<key>.md`, through the source registry), or None when it has none."""
    src = get_source(origin)
    return None if src is None else _card(src)


def parse_source_card(key: str, text: str) -> SourceCard:
    """The card of a source from its text: front matter (daad.core.sources) and the user-facing body."""
    return _card(parse_source(key, text))


def _card(src: Source) -> SourceCard:
    body = src.body.strip()
    title = src.title
    first, _, rest = body.partition("\n")
    if first.startswith("# "):  # a leading H1 is the source's title
        title, body = title or first[2:].strip(), rest.strip()
    # The body sits under a level-3 heading in the dataset card: push its own headings below it.
    return SourceCard(src, title=title, body=_demote_headings(_user_facing(body)))


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
        if card and card.source.gated:
            mode = "manual" if "manual" in (mode, card.source.gated) else "auto"
            prompts.append(card.source.gate_prompt or f"I agree to the terms of {card.title or origin}.")
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
    origin_only: list[str] = field(default_factory=list)  # evaluation datasets never hashed: excluded by origin only
    private_use: Counter | None = None  # local release: (origin, licence, why not redistributable) -> rows; None if public


PRIVATE_USE_LINE = "**For private use only: do not redistribute this dataset or upload it anywhere.**"


def private_notice(private_use: Counter, rows: int) -> str:
    """The lines a local release's card starts with: private use, and what may not be redistributed and why."""
    n = sum(private_use.values())
    lines = [
        PRIVATE_USE_LINE,
        "",
        f"This is a local release (`daad publish --local`): {n} of its {rows} samples are under licences that do not",
        "allow redistribution, or have no licence daad understands. It is for research on your own machine",
        "(`daad synthesize --dataset <this folder>`, `load_dataset(<this folder>, ...)`); `daad push` refuses it.",
        "",
        md_table(
            ["origin", "licence", "why it may not be redistributed", "samples"],
            [[f"`{o}`", lic or "unknown", why, c] for (o, lic, why), c in sorted(private_use.items())],
        ),
    ]
    return "\n".join(lines)


def origin_only_note(datasets: list[str]) -> str:
    """Why some `exclude_` configs may still hold copies of their dataset, and the fix."""
    if not datasets:
        return ""
    names = ", ".join(f"`{d}`" for d in datasets)
    fixes = "; ".join(f"`daad leakage {d} PATH`" for d in datasets)
    return (f"Excluded **by origin only**: {names}. These datasets' images were never hashed, so a copy of one of "
            "their images collected from another origin (web search returns dataset images) is not excluded. "
            f"Fix: {fixes} (PATH = the dataset's folder), then publish again.")


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
        if card and card.body and card.source.name not in seen_keys:
            lines += [card.body, ""]
        if card and card.source.homepage and card.source.homepage not in card.body:
            lines.append(f"Homepage: <{card.source.homepage}>")
        lines.append("Licences: " + ", ".join(f"{k or 'none'} ({v})" for k, v in sorted(lic.items())) + ".")
        attrs = inp.origin_attributions.get(origin, Counter())
        named = [a for a, _ in attrs.most_common() if a]
        if named:
            shown = ", ".join(named[:10]) + (f", and {len(named) - 10} more (see each row's `attribution`)" if len(named) > 10 else "")
            lines.append(f"Credit: {shown}.")
        sections.append("\n".join(lines))
        if card and card.source.name not in seen_keys:
            citations += [c for c in dict.fromkeys((card.source.citation, card.source.bibtex)) if c]
        if card:
            seen_keys.add(card.source.name)
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
    note = origin_only_note(inp.origin_only)
    text = template.substitute(
        yaml=inp.yaml_header.rstrip("\n"),
        version=inp.version,
        date=inp.date,
        rows=inp.rows,
        shards=f"{inp.shards} parquet shard{'' if inp.shards == 1 else 's'}",
        repo=inp.repo,
        revision_arg="" if inp.private_use is not None else f', revision="v{inp.version}"',  # a local folder has no revisions
        configs_table=md_table(
            ["config", "rows"],
            [[f"`{k}`", v] for k, v in inp.configs.items()]
            + [[f"`{k}`", "not written: every published sample leaks this dataset"] for k in inp.omitted_configs],
        ) + (f"\n\n{note}" if note else ""),
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
    if inp.private_use is None:
        return text
    # The notice goes right under the title, the first lines a reader sees (the YAML above it is for machines).
    title = text.index("\n# ", text.index("\n---", 4) + 4)
    end = text.index("\n", title + 1)
    return text[:end] + "\n\n" + private_notice(inp.private_use, inp.rows) + text[end:]
