"""`daad status`, `daad ls`, `daad info`: reading the catalog."""

from __future__ import annotations

import json

import click

from daad.cli.params import UserPath
from daad.core import taxonomy
from daad.core.text_table import format_table


@click.command()
@click.option("--plot", type=UserPath(dir_okay=False), help="Also save a class x source bar chart as PNG.")
def status(plot: str | None) -> None:
    """Samples by anomaly class x source, with masks present/missing.

    \b
    Example:
      daad status --plot status.png
    """
    from daad.core.catalog import Catalog
    from daad.curate.status import plot_status, status_table

    catalog = Catalog(readonly=True)
    click.echo(f"catalog: {catalog.path} ({len(catalog)} samples)")
    click.echo(status_table(catalog))
    if plot:
        click.echo(f"plot: {plot_status(catalog, plot)}")


@click.command("ls")
@click.option("--class", "anomaly_class", type=click.Choice(taxonomy.CLASSES_AND_UNASSIGNED))
@click.option("--source", type=click.Choice(taxonomy.SOURCES))
@click.option("--origin", help="e.g. mvtec_ad, openverse, photos:bench")
@click.option("--mask-status", type=click.Choice(taxonomy.MASK_STATUSES))
@click.option("--leaks", help="Only samples that leak this evaluation dataset.")
@click.option("--representatives", is_flag=True, help="Hide near-duplicates (duplicate_of set).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record, with absolute image_path and mask_path.")
def ls(anomaly_class, source, origin, mask_status, leaks, representatives, as_json) -> None:
    """List samples, optionally filtered.

    \b
    Examples:
      daad ls --class crack --mask-status missing
      daad ls --json | jq -r .image_path
    """
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore

    catalog = Catalog(readonly=True)
    store = MediaStore(catalog.home)
    recs = list(catalog.find(anomaly_class, source, origin, mask_status, representatives, leaks))
    if as_json:
        for r in recs:
            click.echo(json.dumps(store.describe(r), sort_keys=True))
        return
    if recs:
        shown = {r.id: r.origin + (f" (+{len(r.origins) - 1})" if len(r.origins) > 1 else "") for r in recs}  # +N: other origins
        rows = [[r.id[:12], r.anomaly_class, r.mask_status, shown[r.id], f"{r.width}x{r.height}", r.origin_label] for r in recs]
        click.echo(format_table(None, rows, align="<<<<><"))


@click.command()
@click.argument("sample_id")
def info(sample_id: str) -> None:
    """Everything about one sample (id or a unique id prefix), and its change log.

    \b
    Example:
      daad info 3fa1c2
    """
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.core.record import origin_key

    catalog = Catalog(readonly=True)
    rec = catalog.get(sample_id)
    if rec is None:
        raise click.ClickException(f"no sample with id or unique prefix {sample_id!r}")
    click.echo(json.dumps(MediaStore(catalog.home).describe(rec), indent=2, sort_keys=True))
    click.echo(f"origins ({len(rec.origins)}; * = the one it publishes under, licence {rec.license or 'unknown'}):")
    gov = origin_key(rec.origin_fields())
    for o in rec.origins:
        mark = "*" if origin_key(o) == gov else " "
        click.echo(f"  {mark} {o['origin']}  {o['source']}  {o.get('license') or 'unknown'}  {o.get('origin_ref', '')}"
                   + (f"  ({o['attribution']})" if o.get("attribution") else ""))
    for ev in catalog.events(rec.id):
        if ev["field"] == "origins":  # the lists are long: say which origin joined
            before = {origin_key(o) for o in ev["old"] or []}
            joined = [f"{o['origin']} {o.get('origin_ref', '')}" for o in ev["new"] or [] if origin_key(o) not in before]
            click.echo(f"{ev['at']}  {ev['who']}: origins + {', '.join(joined) or '(edited)'}")
            continue
        click.echo(f"{ev['at']}  {ev['who']}: {ev['field']} {ev['old']!r} -> {ev['new']!r}")


def register(group: click.Group) -> None:
    for cmd in (status, ls, info):
        group.add_command(cmd)
