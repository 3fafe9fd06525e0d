"""`daad set-license`: give the samples of one origin the licence they were collected without."""

from __future__ import annotations

import click


@click.command("set-license")
@click.argument("origin")
@click.argument("license_id")
@click.option("--attribution", default=None, help="Who to credit, e.g. 'ACME QA' (kept as it is when not given).")
@click.option("--all", "replace", is_flag=True, help="Also replace a licence a sample already has (default: only samples without one).")
def set_license(origin: str, license_id: str, attribution: str | None, replace: bool) -> None:
    """Set the licence (and attribution) of every sample of ORIGIN, e.g. photos:bench.

    \b
    Each change is logged in the sample's history (`daad info ID`).
    Example:
      daad set-license photos:bench CC-BY-4.0 --attribution "ACME QA"
    """
    from daad.core import licenses
    from daad.core.catalog import Catalog

    normalized = licenses.normalize(license_id)
    if not normalized:
        raise click.BadParameter("an empty licence; give an SPDX id such as CC-BY-4.0", param_hint="LICENSE_ID")
    catalog = Catalog()
    recs = catalog.find(origin=origin)
    if not recs:
        raise click.ClickException(f"no samples of origin {origin!r} (see `daad status` / `daad ls --origin ...`)")
    changed = 0
    with catalog.transaction():
        for rec in recs:
            if rec.license.strip() and not replace:
                continue
            fields = {"license": normalized} | ({"attribution": attribution} if attribution is not None else {})
            catalog.update(rec.id, who="set-license", **fields)
            changed += 1
    click.echo(f"{origin}: licence {normalized} set on {changed} of {len(recs)} samples"
               + ("" if replace or changed == len(recs) else " (the others have one; --all replaces it)"))


def register(group: click.Group) -> None:
    group.add_command(set_license)
