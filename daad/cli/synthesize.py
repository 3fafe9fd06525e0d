"""`daad synthesize`: CAI pseudo anomalies for a folder of normal images (a thin layer over `daad.synthesis.cai`)."""

from __future__ import annotations

import click

from daad.cli import choices
from daad.cli.params import UserPath
from daad.cli.engine_options import engine_options, make_engine
from daad.core import taxonomy



def _parse_split(text: str) -> tuple[int, int, int]:
    parts = text.replace("/", ",").replace(":", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected three counts L,M,S such as 4,3,3") from None
    if len(values) != 3 or min(values) < 0 or sum(values) == 0:
        raise click.BadParameter(f"{text!r}: expected three non-negative counts L,M,S with a positive sum")
    return values  # type: ignore[return-value]


def _parse_classes(text: str | None) -> list[str] | None:
    if not text:
        return None
    try:
        return [taxonomy.check_class(c) for c in text.split(",") if c.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("synthesize")
@click.option("--dataset", required=True, help="Published DAAD: a `daad publish` output folder (or one vX.Y.Z in it) or a Hub repo id.")
@click.option("--exclude", default=None, help="Evaluation dataset to keep out (reads config exclude_<name>; refuses if it is missing). Without it: config full.")
@click.option("--targets", required=True, type=UserPath(exists=True), help="Folder of normal target images (searched recursively) or one image.")
@click.option("--out", "out_dir", required=True, type=UserPath(file_okay=False), help="Output folder (anomalib Folder layout).")
@click.option("--per-image", default=10, show_default=True, type=click.IntRange(min=1), help="Pseudo anomalies per target, split large/medium/small 4:3:3.")
@click.option("--split", "split", default=None, help="Explicit large,medium,small counts per target, e.g. 6,2,2 (overrides --per-image).")
@click.option("--mode", default="normal", show_default=True, type=choices.MODES, help="Poisson editing mode: normal (CAI-N) or mixed (CAI-M).")
@click.option("--classes", default=None, help="Only these anomaly classes, comma-separated, e.g. crack,scratch.")
@click.option("--foreground", default="auto", show_default=True, type=choices.FOREGROUNDS, help="Foreground m(I): auto picks per image and says which.")
@click.option("--rembg-model", type=UserPath(exists=True, dir_okay=False), default=None, help="Local rembg ONNX model (e.g. u2net.onnx); used by rembg and by auto.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=16), help="Targets are resized to SIZE x SIZE.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same inputs -> bit-identical output.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Processes (local, default 1) or Ray workers (default: one per CPU of the cluster); the output does not depend on it.")
@click.option("--threshold", default=None, type=click.IntRange(0, 254), help="T of Eq. 4 in grey levels (default 4, measured on real data: see daad.synthesis.cai.cai).")
@click.option("--mixed-rule", default="perez", show_default=True, type=choices.MIXED_RULES, help="Mixed mode: Pérez's |grad| comparison, or OpenCV MIXED_CLONE's.")
@click.option("--png-level", default=1, show_default=True, type=click.IntRange(0, 9), help="PNG compression: 0-3 ISA-L's levels (fast), 4-9 zlib's through PIL (smaller; 6 is 36x slower and writes the bytes of versions before 1 became the default). Pixels never change.")
@click.option("--overwrite", is_flag=True, help="Replace an --out made with other settings (removes what this run does not write).")
@engine_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
def synthesize(dataset: str, exclude: str | None, targets: str, out_dir: str, per_image: int, split: str | None, mode: str,
               classes: str | None, foreground: str, rembg_model: str | None, size: int, seed: int, workers: int | None,
               threshold: int | None, mixed_rule: str, png_level: int, overwrite: bool, engine_name: str,
               ray_address: str | None, quiet: bool) -> None:
    """Inject real DAAD anomalies into normal images by CAI (paper Sec. 3.1).

    \b
    Writes OUT/abnormal/*.png, OUT/mask/*.png (same names), OUT/normal/*.png,
    OUT/manifest.jsonl (provenance per image) and OUT/preview.png; a re-run skips
    targets already complete. --engine ray gives the same bytes (OUT on a shared path).
    Examples:
      daad synthesize --dataset ./daad-release --exclude mvtec_ad --targets mvtec/bottle/train/good --out cai-bottle
      daad synthesize --dataset ./daad-release/v1.0.0 --exclude mvtec_ad --targets good/ --out cai-m --mode mixed --workers 2
      daad synthesize --dataset <org>/daad --exclude visa --targets pcb1/ --out cai-pcb --classes crack,scratch --split 6,2,2
      daad synthesize --dataset /shared/daad --exclude mvtec_ad --targets /shared/normal --out /shared/cai --engine ray --ray-address auto
    """
    from daad.core.errors import DaadError
    from daad.synthesis.cai.cai import CAI, DEFAULT_THRESHOLD
    from daad.synthesis.cai.matching import split_quota
    from daad.synthesis.cai.output import find_targets, run
    from daad.synthesis.cai.patterns import PublishedPool, open_published

    engine = make_engine(engine_name, workers, ray_address)
    quota = _parse_split(split) if split else split_quota(per_image)
    wanted = _parse_classes(classes)
    if not exclude:
        click.echo("note: no --exclude: using config 'full' (pass --exclude <evaluation dataset> to keep it out)", err=True)
    try:
        ds, config, path = open_published(dataset, exclude, wanted, progress=not quiet)
        target_list = find_targets(targets)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    if len(ds) == 0:
        raise click.ClickException(f"{dataset} [{config}]: no samples" + (f" of class {', '.join(wanted)}" if wanted else ""))
    click.echo(f"DAAD {path} [{config}]: {len(ds)} anomalies; {len(target_list)} targets; "
               f"{sum(quota)} per target ({quota[0]}/{quota[1]}/{quota[2]} large/medium/small), mode {mode}, seed {seed}")
    pool = PublishedPool(ds, progress=not quiet)
    _one_cv2_thread()
    try:
        cai = CAI(pool, mode=mode, quota=quota, foreground=foreground, rembg_model=rembg_model, size=size,
                  threshold=DEFAULT_THRESHOLD if threshold is None else threshold, seed=seed, mixed_rule=mixed_rule)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    settings = {"dataset": str(path), "config": config, "classes": sorted(wanted or [])}
    if engine_name != "local":
        click.echo(f"engine: {engine.describe()}")
    try:
        report = run(cai, target_list, out_dir, progress=not quiet, settings=settings, overwrite=overwrite, png_level=png_level,
                     engine=engine)
    except DaadError as exc:  # FolderInUseError: --out made with other settings; engine errors
        raise click.ClickException(str(exc)) from None
    finally:
        engine.close()
    click.echo(report.summary())
    if report.images == 0:
        raise click.ClickException("no pseudo anomaly was written")


def _one_cv2_thread() -> None:
    """cv2 at one thread in this process: its thread pool spun on the second core, which the writer's PNG encoding needs.

    strace -f -c of one `daad synthesize` of `benchmarks/cai.py --cli 100`: 174k
    sched_yield and 98k futex calls with cv2's default pool, none and 14k with one thread
    (OPENBLAS_NUM_THREADS=1 changed neither: cv2's CAI calls use no BLAS). At 256 px a
    cv2 call is too short to split. Worker processes and Ray actors keep their own setting.
    """
    import cv2

    cv2.setNumThreads(1)


def register(group: click.Group) -> None:
    group.add_command(synthesize)
