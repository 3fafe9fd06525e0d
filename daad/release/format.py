"""The on-disk shape of a DAAD release: the one module that writers and readers share.

    <releases>/v1.2.0/            one folder per version (semantic version, `v` prefix)
      README.md                   the card (Hub YAML configs + dataset_info)
      manifest.json               the fields below; its presence marks a version complete
      CHANGELOG.md, changelog.json
      data/<group>/train-*.parquet   one folder per leak group (`no_leak`, `leaks-mvtec_ad+visa`)

Configs are `full` and `exclude_<x>` per evaluation dataset x. manifest.json holds
`format`, `version`, `created`, `gated`, `redistributable`, `eval_datasets`, `configs`
(config -> data folders), `empty_configs` and `samples` (id -> content hash, mask
sha, class, licence, origin, group). `redistributable: false` marks a *local* release
(it may hold what cannot be redistributed; never pushed to the Hub); a manifest without
the field is a public one.

Why a module of its own: `daad publish` writes this shape and synthesis and evaluation
read it, and readers must not load the publishing code (catalog, collectors, pyarrow
writers) to find a folder; this module imports nothing of daad but the errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from daad.core.errors import DaadError

FORMAT = 1
MANIFEST = "manifest.json"
CARD = "README.md"
FULL = "full"
EXCLUDE_PREFIX = "exclude_"
DATA = "data"
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")

Version = tuple[int, int, int]


class ReleaseError(DaadError):
    """A release that cannot be written or read as asked (bad version, no such version, unreadable manifest)."""


def parse_version(version: str) -> Version:
    """`1.2.0` or `v1.2.0` -> (1, 2, 0); anything else is an error naming the expected form."""
    m = _SEMVER.match(version.strip())
    if not m:
        raise ReleaseError(f"version {version!r} is not a semantic version X.Y.Z (e.g. 1.0.0)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def version_name(version: str | Version) -> str:
    """The folder and git tag name of a version: `v1.2.0`."""
    v = parse_version(version) if isinstance(version, str) else version
    return "v{}.{}.{}".format(*v)


def config_name(dataset: str | None) -> str:
    """`exclude_<dataset>` with the name reduced to what config names allow; `full` for no dataset."""
    if not dataset:
        return FULL
    return EXCLUDE_PREFIX + re.sub(r"[^a-z0-9_]+", "_", dataset.lower()).strip("_")


def is_version_folder(path: Path) -> bool:
    """A complete version: the card and the manifest are there (the manifest is written last)."""
    return (path / CARD).is_file() and (path / MANIFEST).is_file()


def published_versions(out_dir: Path | str) -> list[tuple[Version, Path]]:
    """Complete versions under `out_dir` (folders `vX.Y.Z` with a manifest), oldest first."""
    out = Path(out_dir).expanduser()
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = _SEMVER.match(p.name)
            if m and p.name.startswith("v") and (p / MANIFEST).is_file():
                found.append(((int(m.group(1)), int(m.group(2)), int(m.group(3))), p))
    return sorted(found)


def published_folder(out_dir: Path | str, version: str | None = None) -> Path:
    """The folder `datasets.load_dataset(folder, config)` reads: a given version or the newest.

    Accepts the version folder itself too, so callers can pass whatever a user typed.
    """
    out = Path(out_dir).expanduser()
    if is_version_folder(out):
        return out
    if version is not None:
        p = out / version_name(version)
        if not (p / MANIFEST).is_file():
            raise ReleaseError(f"{out}: no published version {version_name(version)}")
        return p
    versions = published_versions(out)
    if not versions:
        raise ReleaseError(f"{out}: no published DAAD version (expected folders like v1.0.0 written by `daad publish`)")
    return versions[-1][1]


def build_manifest(version: str, created: str, gated: str, eval_datasets: list[str], configs: dict[str, list[str]],
                   empty_configs: list[str], samples: dict[str, dict[str, Any]], redistributable: bool = True) -> dict[str, Any]:
    """The manifest.json object (`configs`: config -> group folder names under data/)."""
    return {
        "format": FORMAT,
        "version": version,
        "created": created,
        "gated": gated,
        "redistributable": redistributable,
        "eval_datasets": eval_datasets,
        "configs": {name: [f"{DATA}/{f}" for f in folders] for name, folders in configs.items()},
        "empty_configs": empty_configs,
        "samples": samples,
    }


def load_manifest(path: Path | str) -> dict[str, Any]:
    """A manifest.json (or the manifest of a version folder); ReleaseError when it is not one."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{p}: cannot read manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("samples"), dict):
        raise ReleaseError(f"{p}: not a DAAD manifest (no 'samples' object)")
    return data


def is_redistributable(manifest: dict[str, Any]) -> bool:
    """False for a local release (`redistributable: false`); public releases, older ones included, are True."""
    return bool(manifest.get("redistributable", True))
