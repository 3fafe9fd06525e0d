"""What every dataset adapter shares: identity, licence, class mapping, item building.

An adapter is a reader for one public IAD dataset in the layout its publisher
distributes. It knows three things a generic walker cannot: where the anomalous images
and their masks are (`iter_items`), where *all* images are, normal ones included
(`iter_all_images`, which leakage checks hash), and how to tell its layout from a wrong
folder (`check_layout`). Everything else (mapping a defect type to a DAAD class, the
licence and citation each record carries) is data, kept here once.

The class mapping is a YAML file per dataset beside its module (`mvtec_ad.yaml`): keys
are the source's own labels (`bottle/broken_large`) or a bare defect type
(`contamination`, matched when no full key exists); values are one of the eight classes,
`unassigned` (collect it and let review decide: for datasets with no defect types), or
`null` (not an appearance anomaly of the eight classes: skipped and counted, never
guessed). A user's file is laid over the default one, key by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import yaml
from PIL import Image

from daad.core import taxonomy
from daad.core.errors import LayoutError
from daad.core.images import IMAGE_SUFFIXES
from daad.core.ingest import Item, Skip

Mapping = dict[str, Union[str, None]]


@dataclass(frozen=True)
class Download:
    """One archive of a dataset at its publisher's URL, with the checksum that proves it.

    `sha256` is pinned (ours, or a well-known pin such as anomalib's); `md5` only where
    no sha256 is known (MVTec 3D-AD). MVTec and the others publish no checksum themselves.
`size` is pinned where it is known (MVTec AD), so a server cannot send more.
    """

    url: str
    filename: str
    sha256: str = ""
    md5: str = ""
    size: int = 0  # bytes, when pinned: the download is capped at it (0: unknown, --max-gb caps it)


def load_mapping(name: str, mapping_file: Union[str, Path, None] = None) -> Mapping:
    """The default mapping of dataset `name`, with `mapping_file`'s entries laid over it.

    Values are checked here, so a typo in a user's file fails before any image is read.
    """
    text = resources.files("daad.collectors.datasets").joinpath(f"{name}.yaml").read_text()
    mapping = _parse_mapping(text, f"{name}.yaml")
    if mapping_file is not None:
        path = Path(mapping_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: mapping file not found")
        mapping.update(_parse_mapping(path.read_text(), str(path)))
    return mapping


def _parse_mapping(text: str, where: str) -> Mapping:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of defect type -> class (or null), found {type(data).__name__}")
    out: Mapping = {}
    for key, value in data.items():
        if value is None:
            out[str(key)] = None
            continue
        try:
            out[str(key)] = taxonomy.check_class(str(value))
        except ValueError as exc:
            raise ValueError(f"{where}: {key}: {exc}") from None
    return out


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted (empty when the folder is absent)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def mask_has_defect(mask: Path) -> bool | None:
    """Whether a publisher's mask marks any pixel; None when it cannot be read.

    For datasets that ship a mask for every image, normal ones included (KolektorSDD,
    KolektorSDD2): an all-zero mask means a normal image. An unreadable mask gives None,
    so the adapter still yields the item and ingest reports it as bad, by name.
    """
    try:
        with Image.open(mask) as im:
            return bool(np.asarray(im).any())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def describe_folder(root: Path) -> str:
    """A few words on what is really at `root`, for layout errors."""
    if not root.exists():
        return "nothing (the path does not exist)"
    if not root.is_dir():
        return "a file, not a folder"
    entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    if not entries:
        return "an empty folder"
    shown = ", ".join(entries[:8]) + (f", ... ({len(entries)} entries)" if len(entries) > 8 else "")
    return f"a folder holding {shown}"


def folders_found(root: Path) -> str:
    """`folders found: a, b, ...` (the first ten sub-folders): what a layout error shows instead."""
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    return f"folders found: {', '.join(found[:10]) or 'none'}"


class DatasetAdapter:
    """Base class of the nine adapters; subclasses set the class attributes and three methods."""

    name: str = ""  # the records' origin
    title: str = ""  # human name, e.g. "MVTec AD"
    license: str = ""  # SPDX id or terms:<name> (see daad/core/licenses.py)
    attribution: str = ""
    citation: str = ""
    citation_key: str = ""
    homepage: str = ""
    layout: str = ""  # one line: the layout check_layout expects, quoted in errors
    downloads: tuple[Download, ...] = ()
    mask_binarize: bool = False  # the publisher's masks hold grey values
    mask_threshold: int = 128

    # -- what subclasses implement -------------------------------------------------------
    def check_layout(self, root: Union[str, Path]) -> None:
        """Raise LayoutError naming what was expected and where, unless `root` is this dataset."""
        raise NotImplementedError

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        """Every anomalous image with its ground-truth mask, as Item (mapped) or Skip (unmapped)."""
        raise NotImplementedError

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        """(ref relative to root, path) of every image, normal and anomalous, train and test; no masks."""
        raise NotImplementedError

    # -- shared helpers ------------------------------------------------------------------
    def mapping(self, mapping_file: Union[str, Path, None] = None) -> Mapping:
        return load_mapping(self.name, mapping_file)

    def layout_error(self, root: Path, problem: str) -> LayoutError:
        """A LayoutError that says which dataset, which layout, where, and what was wrong."""
        return LayoutError(f"{root}: this is not {self.title} ({problem}); expected {self.layout}")

    def require_dir(self, root: Union[str, Path]) -> Path:
        root = Path(root).expanduser()
        if not root.is_dir() or not any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise self.layout_error(root, f"found {describe_folder(root)}")
        return root

    def classify(self, label: str, mapping: Mapping) -> tuple[str | None, str]:
        """(class, "") for a mapped label, or (None, why) when it is null or not in the mapping."""
        for key in (label, label.rsplit("/", 1)[-1]):
            if key in mapping:
                cls = mapping[key]
                if cls is None:
                    return None, f"{label}: mapped to null (not an appearance anomaly of the eight classes)"
                return cls, ""
        return None, f"{label}: not in the {self.name} class mapping (add it to a --mapping file)"

    def item(
        self,
        root: Path,
        image: Path,
        mask: Path,
        label: str,
        mapping: Mapping,
        split: str,
        **meta: object,
    ) -> Union[Item, Skip]:
        """The Item for one anomalous image, or a Skip when its label is unmapped."""
        cls, why = self.classify(label, mapping)
        if cls is None:
            return Skip(str(image), why)
        return Item(
            image=image,
            name=str(image),
            source=taxonomy.EXISTING_DATASET,
            origin=self.name,
            anomaly_class=cls,
            mask=mask,
            mask_status=taxonomy.GROUND_TRUTH,
            mask_binarize=self.mask_binarize,
            mask_threshold=self.mask_threshold,
            origin_label=label,
            origin_ref=image.relative_to(root).as_posix(),
            license=self.license,
            attribution=self.attribution,
            meta={"citation_key": self.citation_key, "split": split, **meta},
        )

    def rel(self, root: Path, path: Path) -> str:
        return path.relative_to(root).as_posix()
