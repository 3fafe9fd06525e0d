"""What the detector trains and is tested on, read into memory at the working size.

Training: the normal images (`--train-normal`, or the Folder's `normal/`) plus the
pseudo anomalies of an anomalib Folder (`abnormal/` + same-name `mask/`, what `daad
synthesize`, `daad cdm generate` and the baselines write). A pair that is unpaired,
whose mask is empty, or whose mask is not binary (values other than 0 and one other
level) is reported by name and left out; the rest is used.

Test: `NAME:PATH` through the dataset adapters (`iter_test_images`: every test image,
normal ones as all-negative masks; PATH the dataset's root or one category folder, or
`--category`), or a plain folder `images/` + `masks/` (same stem; an image without a mask
is normal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from daad.core.errors import DaadError
from daad.core.images import IMAGE_SUFFIXES, load_image


@dataclass
class ImageSet:
    """Images (N, S, S, 3) uint8, masks (N, S, S) bool, their names, and what was left out and why."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def anomalous(self) -> int:
        return int(self.masks.reshape(len(self.masks), -1).any(axis=1).sum()) if len(self) else 0


def read_rgb(path: Path, size: int) -> np.ndarray:
    im = np.asarray(load_image(path).convert("RGB"))
    if im.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if im.shape[0] * im.shape[1] > size * size else cv2.INTER_LINEAR
        im = cv2.resize(im, (size, size), interpolation=interp)
    return im


def read_mask(path: Path, size: int, threshold: int = 128) -> np.ndarray:
    with Image.open(path) as im:
        m = np.asarray(im.convert("L")) >= threshold
    return cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def _stack(images: list[np.ndarray], masks: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), bool)
    return np.stack(images), np.stack(masks)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def check_pair_mask(path: Path) -> str:
    """Why a pseudo anomaly's mask cannot be used ('' when it can): unreadable, empty, not binary."""
    try:
        with Image.open(path) as im:
            m = np.asarray(im.convert("L"))
    except (OSError, ValueError, SyntaxError) as exc:
        return f"unreadable mask ({exc})"
    levels = np.unique(m)
    if levels.size == 1 and levels[0] == 0:
        return "empty mask"
    if levels.size > 2 or (levels.size == 2 and levels[0] != 0):
        return f"mask is not binary ({levels.size} grey levels)"
    return ""


def load_training_set(folder: str | Path, size: int, train_normal: str | Path | None = None, samples: int | None = 1000,
                      seed: int = 0) -> ImageSet:
    """The normal images plus up to `samples` pseudo anomalies of `folder` (drawn with `seed` when there are more)."""
    root = Path(folder).expanduser()
    if not (root / "abnormal").is_dir():
        raise DaadError(f"{root}: not a pseudo-anomaly folder (no abnormal/; expected abnormal/ + mask/ + normal/)")
    skipped: list[str] = []
    abnormal = {p.name: p for p in _images_in(root / "abnormal")}
    masks = {p.name: p for p in _images_in(root / "mask")}
    pairs = []
    for name in sorted(abnormal):
        if name not in masks:
            skipped.append(f"{root / 'abnormal' / name}: no mask of the same name in mask/")
            continue
        why = check_pair_mask(masks[name])
        if why:
            skipped.append(f"{masks[name]}: {why}")
            continue
        pairs.append(name)
    skipped += [f"{masks[n]}: mask without an image in abnormal/" for n in sorted(set(masks) - set(abnormal))]
    if not pairs:
        raise DaadError(f"{root}: no usable pseudo anomaly" + (f" ({len(skipped)} left out)" if skipped else ""))
    if samples and len(pairs) > samples:
        pick = np.random.default_rng(seed).choice(len(pairs), size=samples, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    normal_dir = Path(train_normal).expanduser() if train_normal else root / "normal"
    normals = _images_in(normal_dir)
    if not normals:
        raise DaadError(f"{normal_dir}: no normal training images")
    images, ms, names = [], [], []
    for p in normals:
        try:
            images.append(read_rgb(p, size))
        except (OSError, ValueError, DaadError) as exc:
            skipped.append(f"{p}: {exc}")
            continue
        ms.append(np.zeros((size, size), bool))
        names.append(f"normal:{p.name}")
    for n in pairs:
        images.append(read_rgb(abnormal[n], size))
        ms.append(read_mask(masks[n], size))
        names.append(f"abnormal/{n}")
    imgs, mks = _stack(images, ms, size)
    return ImageSet(imgs, mks, names, skipped)


def parse_test_spec(spec: str) -> tuple[str | None, Path]:
    """`NAME:PATH` (a dataset adapter) or a plain folder path."""
    from daad.collectors.datasets import ADAPTERS

    name, sep, rest = spec.partition(":")
    if sep and name.strip().lower().replace("-", "_") in ADAPTERS:
        return name.strip().lower().replace("-", "_"), Path(rest).expanduser()
    return None, Path(spec).expanduser()


def _adapter_entries(name: str, path: Path, category: str | None) -> list[tuple[str, Path, Path | None]]:
    from daad.collectors.datasets import get_adapter

    adapter = get_adapter(name)
    categories = getattr(adapter, "categories", ())
    root = path
    if path.name in categories and category in (None, path.name):  # one category folder was given
        root, category = path.parent, path.name
    entries = list(adapter.iter_test_images(root))
    if category:
        entries = [e for e in entries if e[0].split("/", 1)[0] == category]
        if not entries:
            raise DaadError(f"{root}: no test images of category {category!r}")
    elif categories and len({e[0].split('/', 1)[0] for e in entries}) > 1:
        found = sorted({e[0].split("/", 1)[0] for e in entries})
        raise DaadError(f"{root}: holds several categories ({', '.join(found)}); pass --category or one category folder")
    return entries


def _folder_entries(path: Path) -> list[tuple[str, Path, Path | None]]:
    if not (path / "images").is_dir():
        raise DaadError(f"{path}: not a test set (expected NAME:PATH of a dataset, or a folder with images/ and masks/)")
    masks: dict[str, Path] = {}
    for m in _images_in(path / "masks"):
        masks.setdefault(m.stem, m)
        if m.stem.endswith("_mask"):
            masks.setdefault(m.stem[: -len("_mask")], m)
    return [(p.relative_to(path / "images").as_posix(), p, masks.get(p.stem)) for p in _images_in(path / "images")]


def load_test_set(spec: str, size: int, category: str | None = None, threshold: int = 128) -> ImageSet:
    """Every test image of `spec` with its mask (all-negative for normal images), at size x size."""
    name, path = parse_test_spec(spec)
    entries = _adapter_entries(name, path, category) if name else _folder_entries(path)
    images, masks, names, skipped = [], [], [], []
    for ref, image, mask in entries:
        try:
            images.append(read_rgb(image, size))
            masks.append(read_mask(mask, size, threshold) if mask is not None else np.zeros((size, size), bool))
        except (OSError, ValueError, DaadError) as exc:
            if len(masks) < len(images):
                images.pop()
            skipped.append(f"{image}: {exc}")
            continue
        names.append(ref)
    imgs, mks = _stack(images, masks, size)
    out = ImageSet(imgs, mks, names, skipped)
    if len(out) == 0:
        raise DaadError(f"{spec}: no test images")
    if out.anomalous == 0:
        raise DaadError(f"{spec}: no anomalous test image with a non-empty mask (the metrics need anomalous pixels)")
    return out
