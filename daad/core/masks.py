"""Attaching a mask to a catalogued sample, and the report both mask commands print.

Shared by `mask_proposal` (machine-proposed masks, status `proposed`) and `mask_import`
(masks people drew in any tool, status `annotated`): the mask is checked against its
image (size, binary), stored by content hash and linked with `Catalog.update`, which
logs who changed what, so every mask in the catalog can be traced to a command or a person.
"""

from __future__ import annotations

import getpass
import os
from collections import Counter
from dataclasses import dataclass, field

from daad.core.catalog import Catalog
from daad.core.images import ImageSource, load_mask, require_anomaly
from daad.core.media_store import MediaStore
from daad.core.names import one_line, shown
from daad.core.record import Record


def default_who(prefix: str) -> str:
    """`<prefix>:<DAAD_REVIEWER or the OS user>`: who a mask change is recorded as."""
    user = os.environ.get("DAAD_REVIEWER")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry (containers): still record something useful
            user = os.environ.get("USER", "unknown")
    return f"{prefix}:{user}"


def attach_mask(
    catalog: Catalog, store: MediaStore, rec: Record, mask: ImageSource, status: str, who: str,
    name: str | None = None, binarize: bool = False, threshold: int = 128, meta: dict | None = None,
) -> tuple[Record, bool]:
    """Check, store and link `mask` to `rec`; returns (record, changed). Raises BadMaskError.

    An empty (all-zero) mask is refused: it would say the sample's anomaly is nowhere.
    """
    size = (rec.width, rec.height)
    checked = require_anomaly(load_mask(mask, size, name, binarize, threshold), name or rec.id)
    sha = store.put_mask(checked, size)
    if sha == rec.mask_sha and rec.mask_status == status:
        return rec, False
    fields: dict = {"mask_sha": sha, "mask_status": status}
    if meta:
        fields["meta"] = {**rec.meta, **meta}
    return catalog.update(rec.id, who=who, **fields), True


@dataclass
class MaskOutcome:
    name: str  # the sample id (propose) or the mask file (import)
    status: str  # proposed | annotated | unchanged | empty | skipped | bad
    sample_id: str | None = None
    reason: str = ""


@dataclass
class MaskReport:
    outcomes: list[MaskOutcome] = field(default_factory=list)

    def add(self, o: MaskOutcome) -> None:
        self.outcomes.append(o)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def summary(self) -> str:
        """Counts per outcome, then one line per item that was skipped, empty or bad."""
        counts = Counter(o.status for o in self.outcomes)
        lines = ["  ".join(f"{k}: {counts[k]}" for k in sorted(counts)) or "nothing to do"]
        for o in self.outcomes:
            if o.status in ("skipped", "empty", "bad"):
                lines.append(f"{o.status}: {shown(o.name)}: {one_line(o.reason)}")
        return "\n".join(lines)
