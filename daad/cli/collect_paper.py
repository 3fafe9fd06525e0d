"""`daad collect paper-datasets ROOT` and `daad collect daad-sources XLSX`: the paper's own DAAD sources."""

from __future__ import annotations

import click

from daad.cli.collect import collect


@click.command("paper-datasets")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bars.")
def paper_datasets(root: str, quiet: bool) -> None:
    """Find the paper's nine existing datasets under ROOT, collect those present, list the rest.

    \b
    The nine (the authors' release, sheet Existing_datasets): AeBAD, DAGM 2007, Magnetic
    Tile, MVTec AD, MVTec LOCO AD, RSDDs, VisA, BTAD, CrackForest. Each is recognised by
    its publisher's layout, in ROOT itself, in a sub-folder or one wrapper folder deeper.
    The table at the end says for each: collected (with counts), found (collecting failed,
    and why) or missing (where to get it, and its licence). Re-running adds nothing new.
    Example:
      daad collect paper-datasets ~/data
    """
    from daad.collectors.datasets import collect_paper_datasets
    from daad.core.errors import DaadError

    try:
        report = collect_paper_datasets(root, progress=not quiet)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())


def register(group: click.Group) -> None:
    """Add the paper's source commands to the existing `collect` group (`group` itself gets nothing)."""
    collect.add_command(paper_datasets)
