"""The dataset card's decisions: per-source cards, Hub licence ids, when the Hub gate is asked for."""

from __future__ import annotations

from collections import Counter

import pytest

from daad.release.dataset_card import gating, hub_license, load_source_card, parse_source_card, size_category

TERMS_CARD = """---
title: Example Defects
url: https://example.org/defects
gated: manual
gate_prompt: I will cite Example et al. and not redistribute the images.
citation: |
  @article{example2020, title={Example Defects}}
---
# Example Defects

Collected by a lab.

## Terms
```bash
# a comment, not a heading
```

## Download

`daad collect dataset example PATH --download` (curators only)
"""


def test_source_card_front_matter_and_body() -> None:
    card = parse_source_card("example", TERMS_CARD)
    assert card.title == "Example Defects" and card.source.homepage == "https://example.org/defects"
    assert card.source.gated == "manual" and card.source.citation.startswith("@article{example2020")
    assert card.body.startswith("Collected by a lab.")
    assert "##### Terms" in card.body and "\n# a comment, not a heading" in card.body
    assert "Download" not in card.body  # how a source is collected is not for the dataset's users
    with pytest.raises(ValueError, match="gated must be one of"):
        parse_source_card("bad", "---\ngated: sometimes\n---\nbody")


def test_photos_card_is_shared_by_every_photos_origin() -> None:
    card = load_source_card("photos:acme-lab")
    assert card is not None and card.source.name == "photos" and card.title.startswith("Your own photos")
    assert load_source_card("no_such_source_anywhere") is None


def test_gate_follows_licences_and_source_terms() -> None:
    cards = {"example": parse_source_card("example", TERMS_CARD), "photos:lab": None}
    assert gating({"photos:lab": Counter({"CC-BY-4.0": 3})}, cards) == ("", "")
    mode, prompt = gating({"photos:lab": Counter({"CC-BY-NC-4.0": 1})}, cards)
    assert mode == "auto" and "CC-BY-NC-4.0" in prompt
    mode, prompt = gating({"example": Counter({"CC-BY-4.0": 2}), "photos:lab": Counter({"CC-BY-NC-SA-4.0": 1})}, cards)
    assert mode == "manual" and prompt.startswith("I will cite Example et al.") and "non-commercial" in prompt


def test_hub_licence_ids_and_size_categories() -> None:
    assert hub_license("CC-BY-NC-SA-4.0") == "cc-by-nc-sa-4.0"
    assert hub_license("cc0") == "cc0-1.0"
    assert hub_license("PDM-1.0") == "other"  # the Hub has no id for the Public Domain Mark
    assert [size_category(n) for n in (0, 999, 1000, 6000, 250_000)] == ["n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "100K<n<1M"]
