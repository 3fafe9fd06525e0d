"""`daad collect ...`: one subcommand per kind of source."""

from __future__ import annotations

import click

from daad.cli.params import UserPath
from daad.core import taxonomy


@click.group()
def collect() -> None:
    """Collect anomaly images into the catalog (idempotent: re-running adds nothing new)."""


@collect.command("photos")
@click.argument("folder", type=UserPath(exists=True, file_okay=False))
@click.option("--class", "anomaly_class", type=click.Choice(taxonomy.CLASSES_AND_UNASSIGNED), help="Class of every photo (default: first folder name if it is a class).")
@click.option("--license", "license_", default="", help="SPDX id of the photos' licence, e.g. CC-BY-4.0 (no licence: never published).")
@click.option("--attribution", default="", help="Who to credit, e.g. 'ACME QA'.")
@click.option("--name", default=None, help="Origin name: records get origin photos:<name> (default: folder name).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def photos(folder: str, anomaly_class: str | None, license_: str, attribution: str, name: str | None, quiet: bool) -> None:
    """Collect a folder of your own anomaly photos (JPEG/PNG/BMP/TIFF/WebP/HEIC).

    \b
    Masks are optional: <name>_mask.png beside an image, or a masks/ folder mirroring it.
    Bad files are named in the report and skipped; the rest of the folder is collected.
    Example:
      daad collect photos ~/defect-photos --class crack --license CC-BY-4.0 --attribution "ACME QA"
    """
    from daad.collectors.photos import collect_photos
    from daad.core.errors import DaadError

    try:
        report = collect_photos(folder, anomaly_class=anomaly_class, license=license_, attribution=attribution, name=name, progress=not quiet)
    except (DaadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    unlicensed = report.count("added") if not license_.strip() else 0
    if unlicensed:
        from pathlib import Path

        origin = f"photos:{name or Path(folder).resolve().name}"
        click.echo(
            f"warning: {unlicensed} photo{'s' if unlicensed != 1 else ''} collected without --license: never published until "
            f"they have one; set it with `daad set-license {origin} CC-BY-4.0 --attribution \"...\"`", err=True,
        )


def register(group: click.Group) -> None:
    group.add_command(collect)
