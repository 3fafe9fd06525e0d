"""One DAAD sample: a real anomaly image, stored once by content hash."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from daad.core import taxonomy


@dataclass
class Record:
    """The catalog's row for one sample.

    `id` is the sha256 of the stored image bytes and `mask_sha` that of the stored mask;
    paths are derived from them by the media store, never stored, so DAAD_HOME can move.
    `meta` keeps what a source knows beyond the common fields (creator, landing page,
    provider, citation key, ...) without a schema change per source.
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
    meta: dict[str, Any] = field(default_factory=dict)
    added_at: str = ""
    updated_at: str = ""

    def __post_init__(self) -> None:
        taxonomy.check_source(self.source)
        self.anomaly_class = taxonomy.check_class(self.anomaly_class)
        taxonomy.check_mask_status(self.mask_status)
        if self.mask_sha is None and self.mask_status != taxonomy.MISSING:
            raise ValueError(f"{self.id}: mask_status {self.mask_status!r} needs a mask")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))
