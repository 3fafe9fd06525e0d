"""The main job end to end on the packaged demo set: collect -> dedupe -> publish -> CAI.

`daad demo --out DIR` is the first thing a newcomer runs, on a fresh machine with no
network, so it uses only what ships inside the package (`demo_data/`: five MVTec AD
anomalies with their masks in MVTec's own layout, four DeepPCB normal boards as targets)
and keeps everything it writes under DIR: its own DAAD_HOME (`DIR/home`), the published
release (`DIR/release/v1.0.0`), the CAI output (`DIR/cai`) and two PNGs to look at.
It calls the same public functions the individual commands call, so a green demo means
the real path works, not a demo path.

Re-running it is safe: collect and dedupe are idempotent, and an existing release is
reused (a published version is never overwritten).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
DEMO_VERSION = "1.0.0"


@dataclass
class DemoResult:
    """Where the demo put things and what each stage reported, for printing."""

    home: Path
    release: Path
    cai_dir: Path
    status_png: Path
    preview_png: Path
    lines: list[str]

    def summary(self) -> str:
        return "\n".join(self.lines)


CACHE_VARIABLES = ("HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "MPLCONFIGDIR", "XDG_CACHE_HOME")


def keep_caches_under(out: Union[str, Path]) -> Path:
    """Point the caches of `datasets`, `huggingface_hub` and matplotlib into `out/cache`; returns it.

    Without this the demo wrote ~/.cache/huggingface (the release's arrow cache) and
    ~/.cache/matplotlib (the font list) although it promises to touch nothing outside
    its folder. The libraries read these variables when they are imported, so this must
    run before them (`daad demo` calls it first thing).
    """
    cache = Path(out).expanduser().resolve() / "cache"
    for var in CACHE_VARIABLES:
        os.environ[var] = str(cache / var.lower())
    return cache


def run_demo(out: Union[str, Path], per_image: int = 4, workers: int = 1, progress: bool = True) -> DemoResult:
    """Run collect, dedupe, publish and CAI synthesis on the demo set, all under `out`.

    Raises DaadError (from the stage that failed) when a stage cannot go on.
    """
    from daad.collectors.datasets.collect import collect_dataset
    from daad.curate.dedupe import dedupe
    from daad.core.errors import DaadError
    from daad.release.publish import publish, published_folder
    from daad.curate.status import plot_status, status_table
    from daad.synthesis.cai.cai import CAI
    from daad.synthesis.cai.matching import split_quota
    from daad.synthesis.cai.output import find_targets, run
    from daad.synthesis.cai.patterns import PublishedPool, load_published

    out = Path(out).expanduser().resolve()
    home = out / "home"
    catalog = Catalog(home)
    store = MediaStore(home)
    lines: list[str] = []

    lines.append(f"1/4 collect: MVTec AD demo subset ({DEMO_DATA / 'mvtec_ad'}) -> catalog {catalog.path}")
    collected = collect_dataset("mvtec_ad", DEMO_DATA / "mvtec_ad", catalog=catalog, store=store, progress=progress)
    lines.append(f"    {len(collected.added)} added, {collected.count('existing')} already there, {len(collected.bad)} bad")
    lines.append(status_table(catalog))
    status_png = plot_status(catalog, out / "status.png")

    lines.append("2/4 dedupe: near-duplicate clusters by pHash + dHash")
    report = dedupe(catalog, store, progress=progress, who="demo")
    lines.append(f"    {report.samples} samples, {len(report.clusters)} clusters, {report.duplicates} marked duplicate")

    releases = out / "release"
    release = releases / f"v{DEMO_VERSION}"
    if release.exists():
        lines.append(f"3/4 publish: {release} exists, reused (a published version is never overwritten)")
    else:
        result = publish(catalog, DEMO_VERSION, releases, store=store, progress=progress)
        lines.append(f"3/4 publish: {result.rows} samples -> {result.path}")
        lines += [f"    config {name}: {rows} rows" for name, rows in result.configs.items()]
    release = published_folder(releases, DEMO_VERSION)

    # Every demo anomaly comes from MVTec AD, so exclude_mvtec_ad would be empty: use full.
    ds, config, _ = load_published(release, None, cache_dir=out / "cache" / "hf_datasets_cache")
    targets = find_targets(DEMO_DATA / "targets")
    lines.append(f"4/4 synthesize: CAI-N, {len(ds)} anomalies [{config}] into {len(targets)} DeepPCB boards, {per_image} each")
    # A DeepPCB template is a board filling the whole frame (a texture, in the paper's
    # terms): its foreground is the whole image, not the largest Otsu blob.
    cai = CAI(PublishedPool(ds, progress=progress), mode="normal", quota=split_quota(per_image), foreground="full", size=256, seed=0)
    cai_dir = out / "cai"
    synth = run(cai, targets, cai_dir, workers=workers, progress=progress)
    lines.append("    " + synth.summary().replace("\n", "\n    "))
    if synth.images == 0:
        raise DaadError("demo: CAI wrote no pseudo anomaly: " + "; ".join(synth.failed))
    preview_png = cai_dir / "preview.png"
    lines += [
        "look at:",
        f"  {status_png}   (class x source counts)",
        f"  {preview_png}   (targets, pseudo anomalies, their masks)",
        f"  {cai_dir}/abnormal, {cai_dir}/mask, {cai_dir}/normal   (anomalib Folder layout)",
        f"load the release: datasets.load_dataset({str(release)!r}, 'full')",
    ]
    return DemoResult(home, release, cai_dir, status_png, preview_png, lines)
