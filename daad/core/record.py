"""One DAAD sample: a real anomaly image, stored once by content hash."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from daad.core import licenses, taxonomy

ORIGIN_FIELDS: tuple[str, ...] = ("source", "origin", "origin_label", "origin_ref", "license", "attribution")
"""What a record keeps of each origin it was collected from (one JSON object per origin)."""


def governing_origin(origins: list[dict[str, str]]) -> int:
    """Index of the origin whose source, licence and attribution a record publishes under.

    A dataset's own licence beats a re-hosted copy's claim: when any origin is an existing
    dataset (its publisher), only dataset origins compete, since a web page or a photo folder
    holding a dataset's image can neither grant more nor take away what the publisher
    licensed. Among those that compete, the most restrictive licence wins
    (`daad.core.licenses.restrictiveness`), the earliest origin on a tie.
    """
    pool = [i for i, o in enumerate(origins) if o.get("source") == taxonomy.EXISTING_DATASET] or list(range(len(origins)))
    return pool[licenses.strictest([origins[i].get("license", "") for i in pool])]


def origin_key(o: dict[str, str]) -> tuple[str, str]:
    """Two origins are the same when they name the same origin and the same reference in it."""
    return o.get("origin", ""), o.get("origin_ref", "")


@dataclass
class Record:
    """The catalog's row for one sample.

    `id` is the sha256 of the stored image bytes and `mask_sha` that of the stored mask;
    paths are derived from them by the media store, never stored, so DAAD_HOME can move.
    `meta` keeps what a source knows beyond the common fields (creator, landing page,
    provider, citation key, ...) without a schema change per source.

    `origins` lists every origin the same bytes were collected from, oldest first, each
    with the `ORIGIN_FIELDS`; the record's own source, origin, origin_label, origin_ref,
    license and attribution are those of its governing origin (`governing_origin`). A
    record built with no `origins` gets one from its own fields.
    """

    id: str
    width: int
    height: int
    source: str
    origin: str
    anomaly_class: str = taxonomy.UNASSIGNED
    mask_sha: str | None = None
    mask_status: str = taxonomy.MISSING
    origin_label: str = ""
    origin_ref: str = ""
    license: str = ""
    attribution: str = ""
    phash: str | None = None
    dhash: str | None = None
    duplicate_of: str | None = None
    leaks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    origins: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    added_at: str = ""
    updated_at: str = ""

    def __post_init__(self) -> None:
        taxonomy.check_source(self.source)
        self.anomaly_class = taxonomy.check_class(self.anomaly_class)
        taxonomy.check_mask_status(self.mask_status)
        if self.mask_sha is None and self.mask_status != taxonomy.MISSING:
            raise ValueError(f"{self.id}: mask_status {self.mask_status!r} needs a mask")
        if not self.origins:
            self.origins = [self.origin_fields()]
        for o in self.origins:
            taxonomy.check_source(o.get("source", ""))

    def origin_fields(self) -> dict[str, str]:
        """The record's own origin fields, as one entry of `origins`."""
        return {k: getattr(self, k) for k in ORIGIN_FIELDS}

    @property
    def dataset_origins(self) -> list[str]:
        """Every existing-dataset origin of this record (its own leak of those datasets)."""
        return sorted({o["origin"] for o in self.origins if o.get("source") == taxonomy.EXISTING_DATASET})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))


def origins_update(origins: list[dict[str, str]]) -> dict[str, object]:
    """The field values of a record holding `origins`: the list itself plus its governing origin's fields."""
    gov = origins[governing_origin(origins)]
    return {"origins": origins, **{k: gov.get(k, "") for k in ORIGIN_FIELDS}}
