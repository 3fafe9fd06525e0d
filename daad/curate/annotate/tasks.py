"""Samples out to a Label Studio project, drawn masks back into the catalog.

`send` makes one task per sample, keyed by the sample's id (`data.daad_id`), with the
image served from the media store and the sample's `proposed` mask (from `daad masks
propose`) as a pre-annotation, so annotators correct rather than draw. Samples already
in the project are not sent again.

`load` takes each task's newest submitted annotation, unions its brush regions into one
binary mask at the image's size and attaches it as `annotated` through the catalog API,
recorded as `label-studio:<annotator>` with the annotation's id and time in the record's
meta (so a second load of the same annotation changes nothing). A skipped task or an
annotation without a brush region changes nothing; a region drawn on an image of another
size, an undecodable region or a task whose id is not in the catalog is reported as bad
and the batch goes on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from PIL import Image
from tqdm import tqdm

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import BadItemError
from daad.core.masks import attach_mask
from daad.core.media_store import MediaStore
from daad.core.record import Record

from . import brush_rle
from .label_studio import BRUSH, Client, LabelStudioError, Server

PROPOSAL_VERSION = "daad-masks-propose"


@dataclass
class Outcome:
    task: str  # Label Studio task id, or the sample id before it has one
    status: str  # sent | already-there | annotated | unchanged | skipped | empty | bad
    sample_id: str | None = None
    reason: str = ""


@dataclass
class AnnotateReport:
    project: str
    url: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def summary(self) -> str:
        counts = Counter(o.status for o in self.outcomes)
        lines = ["  ".join(f"{k}: {counts[k]}" for k in sorted(counts)) or "nothing to do"]
        lines += [f"{o.status}: task {o.task}: {o.reason}" for o in self.outcomes if o.status in ("bad", "skipped", "empty")]
        return "\n".join(lines)


def _result(mask: np.ndarray, width: int, height: int) -> dict:
    return {"from_name": BRUSH, "to_name": "image", "type": "brushlabels", "original_width": width,
            "original_height": height, "image_rotation": 0,
            "value": {"format": "rle", "rle": brush_rle.encode(mask), "brushlabels": ["anomaly"]}}


def _image_url(server: Server, store: MediaStore, rec: Record) -> str:
    path = store.image_path(rec.id)
    if server.local_root is None:
        raise LabelStudioError(
            f"{server.url} cannot see daad's media store: set DAAD_LABEL_STUDIO_LOCAL_ROOT to a folder above {store.root} that "
            "the server serves as local files (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), or let daad start its own server")
    try:
        rel = path.resolve().relative_to(server.local_root.resolve())
    except ValueError:
        raise LabelStudioError(f"{path} is not under {server.local_root}, the folder the server serves") from None
    return f"/data/local-files/?d={rel.as_posix()}"


def send(
    records: Iterable[Record], project: str, server: Server, catalog: Catalog, store: MediaStore | None = None,
    progress: bool = True,
) -> AnnotateReport:
    """Put `records` into the Label Studio project `project` (created when missing)."""
    store = store if store is not None else MediaStore(catalog.home)
    client = Client(server)
    proj = client.project(project)
    assert proj is not None
    report = AnnotateReport(project, f"{server.url}/projects/{proj['id']}/data")
    if server.local_root is not None:
        client.ensure_local_storage(proj["id"], store.root)
    there = {t["data"].get("daad_id") for t in client.tasks(proj["id"])}
    batch: list[dict] = []
    for rec in tqdm(list(records), desc="annotate send", unit="task", disable=not progress):
        if rec.id in there:
            report.outcomes.append(Outcome(rec.id[:12], "already-there", rec.id))
            continue
        task: dict = {"data": {"image": _image_url(server, store, rec), "daad_id": rec.id,
                               "title": f"{rec.anomaly_class} · {rec.id[:12]} · {rec.origin}"}}
        if rec.mask_status == taxonomy.PROPOSED and rec.mask_sha:
            with Image.open(store.mask_path(rec.mask_sha)) as im:
                mask = np.asarray(im) > 0
            task["predictions"] = [{"model_version": PROPOSAL_VERSION, "score": float(rec.meta.get("proposal_score", 0.5)),
                                    "result": [_result(mask, rec.width, rec.height)]}]
        batch.append(task)
        report.outcomes.append(Outcome(rec.id[:12], "sent", rec.id))
        there.add(rec.id)
    for i in range(0, len(batch), 100):
        client.import_tasks(proj["id"], batch[i:i + 100])
    return report


def _newest_submitted(task: dict) -> dict | None:
    done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
    return max(done, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id", 0))) if done else None


def _who(annotation: dict, users: dict[int, str]) -> str:
    by = annotation.get("completed_by")
    if isinstance(by, dict):
        name = by.get("email") or by.get("username") or str(by.get("id"))
    else:
        name = users.get(by, str(by)) if by is not None else "unknown"
    return f"label-studio:{name}"


def load(
    project: str, server: Server, catalog: Catalog, store: MediaStore | None = None, replace: bool = False,
    progress: bool = True,
) -> AnnotateReport:
    """Attach every newly submitted mask of project `project` to its sample as `annotated`."""
    store = store if store is not None else MediaStore(catalog.home)
    client = Client(server)
    proj = client.project(project, create=False)
    if proj is None:
        raise LabelStudioError(f"Label Studio at {server.url} has no project {project!r}")
    report = AnnotateReport(project, f"{server.url}/projects/{proj['id']}/data")
    users = client.users()
    for task in tqdm(client.tasks(proj["id"]), desc="annotate load", unit="task", disable=not progress):
        tid = str(task.get("id"))
        sample_id = (task.get("data") or {}).get("daad_id")
        rec = catalog.get(sample_id) if isinstance(sample_id, str) and len(sample_id) == 64 else None
        if rec is None:
            report.outcomes.append(Outcome(tid, "bad", None, f"unknown task: daad_id {sample_id!r} is not a sample of {catalog.home}"))
            continue
        annotation = _newest_submitted(task)
        if annotation is None:
            if task.get("annotations"):
                report.outcomes.append(Outcome(tid, "skipped", rec.id, "the annotator skipped this task"))
            continue
        marker = {"project": proj["id"], "task": task["id"], "annotation": annotation.get("id"),
                  "updated_at": annotation.get("updated_at")}
        if rec.meta.get("label_studio") == marker and rec.mask_status == taxonomy.ANNOTATED:
            report.outcomes.append(Outcome(tid, "unchanged", rec.id))
            continue
        if not replace and rec.mask_status in (taxonomy.GROUND_TRUTH, taxonomy.ANNOTATED) and rec.meta.get("label_studio", {}).get("task") != task["id"]:
            report.outcomes.append(Outcome(tid, "skipped", rec.id, f"sample {rec.id[:12]} already has a {rec.mask_status} mask (use --replace)"))
            continue
        try:
            mask = _union_mask(annotation, rec)
        except BadItemError as exc:
            report.outcomes.append(Outcome(tid, "bad", rec.id, exc.reason))
            continue
        if mask is None:
            report.outcomes.append(Outcome(tid, "empty", rec.id, "the annotation has no brush region"))
            continue
        try:
            _, changed = attach_mask(catalog, store, rec, (mask * 255).astype(np.uint8), taxonomy.ANNOTATED,
                                     _who(annotation, users), name=f"label-studio task {tid}", meta={"label_studio": marker})
        except BadItemError as exc:
            report.outcomes.append(Outcome(tid, "bad", rec.id, exc.reason))
            continue
        report.outcomes.append(Outcome(tid, "annotated" if changed else "unchanged", rec.id))
    return report


def _union_mask(annotation: dict, rec: Record) -> np.ndarray | None:
    """The union of an annotation's brush regions (bool, image size), None when it has none."""
    regions = [r for r in annotation.get("result", []) if r.get("type") == "brushlabels"]
    if not regions:
        return None
    mask = np.zeros((rec.height, rec.width), dtype=bool)
    for r in regions:
        w, h = r.get("original_width"), r.get("original_height")
        if (w, h) != (rec.width, rec.height):
            raise BadItemError(rec.id, f"brush region drawn on a {w}x{h} image, but the sample is {rec.width}x{rec.height}")
        try:
            mask |= brush_rle.decode(r["value"]["rle"], rec.width, rec.height)
        except (brush_rle.BrushFormatError, KeyError, TypeError) as exc:
            raise BadItemError(rec.id, f"brush region does not decode ({exc})") from None
    return mask if mask.any() else None
