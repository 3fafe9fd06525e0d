"""The main job end to end on the packaged demo set: collect -> dedupe -> publish -> CAI.

`daad demo --out DIR` is the first thing a newcomer runs, on a fresh machine with no
network, so it uses only what ships inside the package (`demo_data/`: five MVTec AD
anomalies with their masks in MVTec's own layout, four normal MVTec AD images, two capsules
and two bottles, as targets)
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


def labelled_preview(cai_dir: Path, path: Path, tile: int = 160, gap: int = 8, label_h: int = 16) -> Path:
    """The demo's picture: one row per target (all of them), the normal image then each pseudo
    anomaly with its mask's edge in red, white gaps between tiles and a label over each
    (`target <name>`, or the injected anomaly's class and scale). Returns `path`.
    """
    import json

    from PIL import Image, ImageDraw, ImageFilter

    rows: dict[str, list[dict]] = {}
    for line in (cai_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.setdefault(r["normal"], []).append(r)
    cols = 1 + max(len(v) for v in rows.values())
    title_h = 2 * label_h
    width, height = gap + cols * (tile + gap), title_h + len(rows) * (label_h + tile + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 6), f"daad demo: CAI-N injects real MVTec AD anomalies into {len(rows)} normal images "
                        "(first column); red = the written mask's edge", fill="black")

    def put(im: Image.Image, label: str, i: int, j: int) -> None:
        x, y = gap + j * (tile + gap), title_h + i * (label_h + tile + gap)
        draw.text((x, y + 2), label, fill="black")
        sheet.paste(im.convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR), (x, y + label_h))

    for i, (normal, items) in enumerate(rows.items()):
        put(Image.open(cai_dir / normal), f"target {Path(normal).stem}", i, 0)
        for j, r in enumerate(items, 1):
            im = Image.open(cai_dir / r["file"]).convert("RGB")
            edge = Image.open(cai_dir / r["mask"]).convert("L").filter(ImageFilter.FIND_EDGES)
            im.paste((255, 0, 0), mask=edge.point(lambda v: 255 if v else 0))
            put(im, f"{r['anomaly_class']} ({r['scale']})", i, j)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


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
    from daad.synthesis.cai.patterns import PublishedPool, open_published

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
    ds, config, _ = open_published(release, None, progress=progress)  # pyarrow: no `datasets` cache written under out/
    targets = find_targets(DEMO_DATA / "targets")
    lines.append(f"4/4 synthesize: CAI-N, {len(ds)} anomalies [{config}] into {len(targets)} normal MVTec AD images, {per_image} each")
    # Why these targets: grey capsules and bottles on a plain background, where an injected
    # crack or contamination from the *other* object is easy to see and the foreground
    # (auto: Otsu) keeps it on the object. The earlier binary DeepPCB boards hid what
    # Poisson blending does (a grey smudge on black and white).
    cai = CAI(PublishedPool(ds, progress=progress), mode="normal", quota=split_quota(per_image), foreground="auto", size=256, seed=0)
    cai_dir = out / "cai"
    synth = run(cai, targets, cai_dir, workers=workers, progress=progress)
    lines.append("    " + synth.summary().replace("\n", "\n    "))
    if synth.images == 0:
        raise DaadError("demo: CAI wrote no pseudo anomaly: " + "; ".join(synth.failed))
    preview_png = labelled_preview(cai_dir, out / "preview.png")
    lines += [
        "look at:",
        f"  {status_png}   (class x source counts)",
        f"  {preview_png}   (all {len(targets)} targets, each with its {per_image} pseudo anomalies and their masks)",
        f"  {cai_dir}/abnormal, {cai_dir}/mask, {cai_dir}/normal   (anomalib Folder layout)",
        f"load the release: datasets.load_dataset({str(release)!r}, 'full')",
    ]
    return DemoResult(home, release, cai_dir, status_png, preview_png, lines)
