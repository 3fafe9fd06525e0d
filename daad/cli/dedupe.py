"""`daad dedupe` and `daad leakage NAME PATH`: near-duplicates and evaluation-set leakage."""

from __future__ import annotations

import click

from daad.cli import choices
from daad.cli.engine_options import engine_options, make_engine
from daad.cli.params import UserPath

def _require_dedupe_extra() -> None:
    """Hashing and clustering need scipy, which the base install leaves out: say how to get it."""
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise click.ClickException("this command needs the dedupe extra: pip install 'daad[dedupe]'") from None


def _hashing_engine(name: str, workers: int | None, address: str | None):
    """None (hashing's own default, `hashing.default_workers`: this process, one thread per CPU, for a small batch, else one process per CPU), `workers` processes, or Ray."""
    if name == "local" and not address:
        if not workers:
            return None
        from daad.engine import LocalEngine

        return LocalEngine(workers)
    return make_engine(name, workers, address)


_K_HELP = "Hamming threshold on hamming(pHash) + hamming(dHash) (default 8, measured on ../shared/data; see README)."


_FAST_HELP = ("Faster hashing: JPEGs are downscaled while decoding (DCT domain). Hashes then differ from imagehash's "
              "by a few bits and are not stored; recall of planted copies is in the README.")


@click.command()
@click.option("-k", "--threshold", "k", type=click.IntRange(0, 127), default=8, show_default=True, help=_K_HELP)
@click.option("--variants", is_flag=True, help="Also match mirrored/rotated copies (8 dihedral variants per image; reads every image again).")
@click.option("--fast", is_flag=True, help=_FAST_HELP)
@click.option("--method", type=click.Choice(["mih", "brute"]), default="mih", show_default=True, help="Search: multi-index hashing, or all pairs.")
@click.option("--plot", type=UserPath(dir_okay=False), help="Save a contact sheet PNG of the largest clusters.")
@click.option("--limit", type=int, default=20, show_default=True, help="Clusters listed in the report.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Hashing processes (local, default: this process, one thread per CPU, under 64 MB of images, else one process per CPU) or Ray workers (default: one per CPU of the cluster).")
@engine_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
def dedupe(k: int, variants: bool, fast: bool, method: str, plot: str | None, limit: int, workers: int | None, engine_name: str,
           ray_address: str | None, quiet: bool) -> None:
    """Cluster near-duplicate samples; keep one per cluster, mark the others (never deleted).

    The representative has a ground-truth mask > annotated mask > larger image > source
    existing_dataset > photograph > online_search. The others get duplicate_of and the
    tag `duplicate`. Idempotent: re-running releases samples no longer in a cluster.

    \b
    Examples:
      daad dedupe
      daad dedupe --variants --plot clusters.png
      daad dedupe --engine ray --ray-address auto
      daad ls --representatives
    """
    _require_dedupe_extra()
    from daad.core.errors import DaadError
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.curate.dedupe import contact_sheet
    from daad.curate.dedupe import dedupe as run

    engine = _hashing_engine(engine_name, workers, ray_address)
    catalog = Catalog()
    store = MediaStore(catalog.home)
    try:
        report = run(catalog, store, k=k, variants=variants, method=method, progress=not quiet, fast=fast, engine=engine)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if engine is not None:
            engine.close()
    click.echo(report.summary(limit))
    if plot:
        click.echo(f"plot: {contact_sheet(report, store, plot)}")


@click.command()
@click.argument("name", type=choices.DATASETS)
@click.argument("path", type=UserPath(file_okay=False, exists=True))
@click.option("-k", "--threshold", "k", type=click.IntRange(0, 127), default=8, show_default=True, help=_K_HELP)
@click.option("--variants", is_flag=True, help="Also match mirrored/rotated copies of the dataset's images.")
@click.option("--fast", is_flag=True, help=_FAST_HELP)
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Hashing processes (local, default: this process, one thread per CPU, under 64 MB of images, else one process per CPU) or Ray workers (default: one per CPU of the cluster).")
@engine_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
def leakage(name: str, path: str, k: int, variants: bool, fast: bool, workers: int | None, engine_name: str, ray_address: str | None,
            quiet: bool) -> None:
    """Mark samples that come from, or near-duplicate, evaluation dataset NAME at PATH.

    Hashes every image of the dataset (normal and anomalous, train and test; cached in
    the catalog until the folder changes) and adds NAME to `leaks` of each sample whose
    origin is NAME or whose hash is within k of any of them.

    \b
    Examples:
      daad leakage mvtec_ad ~/data/mvtec_anomaly_detection
      daad leakage visa ~/data/VisA --variants
      daad leakage visa /shared/VisA --engine ray
      daad ls --leaks mvtec_ad
    """
    _require_dedupe_extra()
    from daad.core.errors import DaadError
    from daad.curate.leakage import mark_leakage

    engine = _hashing_engine(engine_name, workers, ray_address)
    try:
        report = mark_leakage(name, path, k=k, variants=variants, progress=not quiet, fast=fast, engine=engine)
    except (DaadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if engine is not None:
            engine.close()
    click.echo(report.summary())


def register(group: click.Group) -> None:
    group.add_command(dedupe)
    group.add_command(leakage)
