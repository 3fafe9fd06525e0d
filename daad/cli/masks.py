"""`daad masks propose` and `daad masks import DIR`: masks for samples that have none."""

from __future__ import annotations

import click

from daad.cli.params import UserPath
from daad.core import taxonomy


@click.group()
def masks() -> None:
    """Give mask-less samples (e.g. from image search) a mask: proposed by a classical method, or drawn by you."""


@masks.command("propose")
@click.argument("ids", nargs=-1)
@click.option("--class", "anomaly_class", type=click.Choice(taxonomy.CLASSES_AND_UNASSIGNED), help="Only samples of this class.")
@click.option("--origin", help="Only samples from this origin, e.g. openverse.")
@click.option("--polarity", type=click.Choice(["auto", "dark", "bright"]), default="auto", show_default=True, help="Anomalies darker or brighter than the surface.")
@click.option("--scale", "se_fraction", type=click.FloatRange(0.01, 0.5), default=0.08, show_default=True, help="Background window, as a fraction of the shorter image side; larger than the widest anomaly.")
@click.option("--redo", is_flag=True, help="Also re-propose samples whose mask is already `proposed`.")
@click.option("--preview", type=UserPath(dir_okay=False), help="Also save a PNG grid of the new proposals overlaid in red.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def propose(ids: tuple[str, ...], anomaly_class: str | None, origin: str | None, polarity: str, se_fraction: float, redo: bool, preview: str | None, quiet: bool) -> None:
    """Propose masks (status `proposed`) with a method that needs no model weights.

    \b
    Method: the surface is estimated by grey-level morphology (closing for dark
    anomalies, opening for bright ones, window --scale of the image); the residual is
    divided by the local strength of the surface's grain and made a robust z-score, and
    the region around the strongest peak (plus any nearly as strong) is proposed,
    assuming one anomaly per image. Good on pits, holes, cracks, scratches and spots;
    review the proposals (`daad review`) before trusting them.
    Samples with ground-truth or annotated masks are never touched.
    Examples:
      daad masks propose                       # every sample with mask_status missing
      daad masks propose --origin openverse --class scratch --polarity dark
      daad masks propose 3f2a9c1b --redo       # one sample, by id prefix
      daad masks propose --preview proposals.png
    """
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore

    try:
        from daad.curate.mask_proposal import ProposalParams, preview_sheet, propose_masks

        catalog = Catalog()
        store = MediaStore(catalog.home)
        params = ProposalParams(polarity=polarity, se_fraction=se_fraction)
        report = propose_masks(catalog, store, ids=list(ids) or None, anomaly_class=anomaly_class, origin=origin, redo=redo,
                               params=params, progress=not quiet)
    except ImportError as exc:  # the base install has no scipy: one line saying which extra to add
        raise click.ClickException(f"{exc} (pip install 'daad[masks]')") from None
    click.echo(report.summary())
    proposed = [o.sample_id for o in report.outcomes if o.status == "proposed" and o.sample_id]
    if preview and proposed:
        click.echo(f"preview: {preview_sheet(catalog, store, proposed, preview)}")


@masks.command("import")
@click.argument("folder", type=UserPath(exists=True, file_okay=False))
@click.option("--binarize", is_flag=True, help="Accept grey/anti-aliased masks: values >= --threshold become foreground.")
@click.option("--threshold", type=click.IntRange(0, 255), default=128, show_default=True)
@click.option("--replace", is_flag=True, help="Also replace existing annotated or ground-truth masks.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_(folder: str, binarize: bool, threshold: int, replace: bool, quiet: bool) -> None:
    """Attach masks drawn in any tool (status `annotated`), matched by file name.

    \b
    A mask named <sample id>.png, <id prefix (8+ hex)>.png, or after the collected
    file (<original stem>.png or <original stem>_mask.png) goes to that sample. Masks
    must have the image's size and be binary (0 and one foreground value; alpha
    masks work too). Bad files are named with the reason; the rest are imported.
    Examples:
      daad ls --mask-status missing --json | jq -r .image_path   # images to draw on
      daad masks import ~/drawn-masks
      daad masks import ~/cvat-export --binarize --threshold 1
    """
    from daad.curate.mask_import import import_masks

    report = import_masks(folder, binarize=binarize, threshold=threshold, replace=replace, progress=not quiet)
    click.echo(report.summary())


def register(group: click.Group) -> None:
    group.add_command(masks)
