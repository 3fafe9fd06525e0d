"""`fiftyone.yml` in every release, and a lossless way to open a release in FiftyOne.

With the file at the top of a pushed version, `fiftyone.utils.huggingface.load_from_hub(
"<org>/daad")` builds a FiftyOne dataset from the Hub's parquet files: `anomaly_class` as
a Classification, `mask` as a Segmentation, the `full` subset only (every `exclude_<x>`
config lists a subset of the same rows, so loading them too would duplicate samples).
That loader reads rows through the Hub's dataset viewer, which serves image columns as
JPEG for display, so masks can come back with compression artefacts (values other than
0 and 255 along edges). For exact masks read the parquet files themselves:
`datasets.load_dataset(path, "full")`, or `load_release` below (`daad review --release DIR`),
which writes each row's PNG bytes to disk unchanged and makes a FiftyOne dataset of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, cast

import yaml

FILENAME = "fiftyone.yml"


def fiftyone_config(version: str, license_ids: list[str], description: str) -> dict:
    """The `fiftyone.yml` mapping of one release version (FiftyOne's ParquetFilesDataset format)."""
    return {
        "name": f"DAAD {version}",
        "format": "ParquetFilesDataset",
        "description": description,
        "license": ", ".join(sorted(license_ids)) or "unknown",
        "tags": ["anomaly-detection", "segmentation", "daad"],
        "subsets": ["full"],
        "splits": ["train"],
        "filepath": "image",
        "classification_fields": ["anomaly_class"],
        "mask_fields": ["mask"],
    }


def write_fiftyone_config(folder: Path, version: str, license_ids: list[str], description: str) -> Path:
    path = folder / FILENAME
    path.write_text(yaml.safe_dump(fiftyone_config(version, license_ids, description), sort_keys=False), encoding="utf-8")
    return path


def load_release(release: Path | str, name: str | None = None, media_dir: Path | str | None = None, overwrite: bool = True):
    """A FiftyOne dataset of a release's `full` config with masks bit-exact.

    Images and masks are written (as their original PNG bytes) under `media_dir` (default:
    `<release>/.fiftyone-media`, with the `datasets` cache); the dataset is called `name` (default `daad-release-<version>`).
    """
    import fiftyone as fo
    from datasets import load_dataset

    from daad.release.format import published_folder

    folder = published_folder(Path(release).expanduser()).resolve()
    version = folder.name
    ds_name = name or f"daad-release-{version}"
    media = Path(media_dir).expanduser() if media_dir else folder / ".fiftyone-media"
    (media / "images").mkdir(parents=True, exist_ok=True)
    (media / "masks").mkdir(parents=True, exist_ok=True)
    rows = load_dataset(str(folder), "full", split="train", cache_dir=str(media / "hf-cache")).cast_column("image", _raw_image()).cast_column("mask", _raw_image())
    classes = rows.features["anomaly_class"].names
    if ds_name in fo.list_datasets():
        if not overwrite:
            return fo.load_dataset(ds_name)
        fo.delete_dataset(ds_name)
    ds = fo.Dataset(ds_name, persistent=True)
    samples = []
    for row in cast(Iterable[dict[str, Any]], rows):
        img_path = media / "images" / f"{row['id']}.png"
        mask_path = media / "masks" / f"{row['id']}.png"
        if not img_path.is_file():
            img_path.write_bytes(row["image"]["bytes"])
        if not mask_path.is_file():
            mask_path.write_bytes(row["mask"]["bytes"])
        samples.append(fo.Sample(
            filepath=str(img_path), daad_id=row["id"], source=row["source"], origin=row["origin"],
            license=row["license"], attribution=row["attribution"],
            anomaly_class=fo.Classification(label=classes[row["anomaly_class"]]),
            mask=fo.Segmentation(mask_path=str(mask_path)),
        ))
    ds.add_samples(samples, progress=False)
    ds.info = {"daad_release": str(folder)}  # a new dataset: nothing else in info yet
    ds.save()
    return ds


def _raw_image():
    from datasets import Image as HFImage

    return HFImage(decode=False)

