"""The fixed vocabularies of DAAD: anomaly classes, sources, mask states.

The order of `CLASSES` is part of the published format (it is the ClassLabel order of
the Hugging Face dataset), so it follows the paper (Sec. 3.2) and never changes;
new classes may only be appended.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "pits",
    "crack",
    "hole",
    "stain",
    "scratch",
    "orifice",
    "impurity",
    "abrasion",
)
UNASSIGNED = "unassigned"
CLASSES_AND_UNASSIGNED: tuple[str, ...] = CLASSES + (UNASSIGNED,)

# The paper's three sources: online search (OS), reality photographing (RP), existing datasets (ED).
ONLINE_SEARCH = "online_search"
PHOTOGRAPH = "photograph"
EXISTING_DATASET = "existing_dataset"
SOURCES: tuple[str, ...] = (ONLINE_SEARCH, PHOTOGRAPH, EXISTING_DATASET)

# How far a mask can be trusted, best first.
GROUND_TRUTH = "ground_truth"
ANNOTATED = "annotated"
PROPOSED = "proposed"
MISSING = "missing"
MASK_STATUSES: tuple[str, ...] = (GROUND_TRUTH, ANNOTATED, PROPOSED, MISSING)


def check_class(name: str) -> str:
    """Return `name` normalised (lower case) or raise ValueError listing the valid classes."""
    norm = name.strip().lower()
    if norm not in CLASSES_AND_UNASSIGNED:
        raise ValueError(f"unknown anomaly class {name!r}; expected one of {', '.join(CLASSES_AND_UNASSIGNED)}")
    return norm


def check_source(name: str) -> str:
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    return name


def check_mask_status(name: str) -> str:
    if name not in MASK_STATUSES:
        raise ValueError(f"unknown mask status {name!r}; expected one of {', '.join(MASK_STATUSES)}")
    return name
