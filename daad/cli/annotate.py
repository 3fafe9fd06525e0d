"""`daad annotate send|load|assist|stop`: draw masks in Label Studio (a thin layer over daad.curate.annotate)."""

from __future__ import annotations

import time

import click

from daad.core import taxonomy
from daad.core.errors import DaadError

PROJECT = click.option("--project", default="daad-masks", show_default=True, help="Label Studio project title.")


@click.group()
def annotate() -> None:
    """Draw masks in Label Studio: send samples (with proposals), load what annotators drew."""


def _records(catalog, view, ids, anomaly_class, source, origin, mask_status, leaks, representatives):
    from daad.curate.annotate.selection import select

    return select(catalog, view=view, ids=list(ids), anomaly_class=anomaly_class, source=source, origin=origin,
                  mask_status=mask_status, leaks=leaks, representatives_only=representatives)


@annotate.command("send")
@click.argument("ids", nargs=-1)
@click.option("--view", help="A review queue (mask-missing, mask-proposed, unassigned, duplicates, leaks-<x>, class-<c>) or a saved view of `daad review`.")
@click.option("--class", "anomaly_class", type=click.Choice(taxonomy.CLASSES_AND_UNASSIGNED))
@click.option("--source", type=click.Choice(taxonomy.SOURCES))
@click.option("--origin", help="e.g. openverse, photos:bench")
@click.option("--mask-status", type=click.Choice(taxonomy.MASK_STATUSES))
@click.option("--leaks", help="Only samples that leak this evaluation dataset.")
@click.option("--representatives", is_flag=True, help="Hide near-duplicates.")
@PROJECT
@click.option("--quiet", is_flag=True, help="No progress bar.")
def send(ids, view, anomaly_class, source, origin, mask_status, leaks, representatives, project, quiet) -> None:
    """Send samples to a Label Studio project; `proposed` masks go along as pre-annotations.

    \b
    Uses DAAD_LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY when set; otherwise starts (or reuses)
    a local server under DAAD_HOME/label-studio that serves the media store.
    Examples:
      daad annotate send --view mask-missing
      daad annotate send --view mask-proposed --project daad-proposals
      daad annotate send --origin openverse --class scratch
    """
    from daad.core.catalog import Catalog
    from daad.curate.annotate import label_studio, tasks

    try:
        catalog = Catalog()
        records = _records(catalog, view, ids, anomaly_class, source, origin, mask_status, leaks, representatives)
        server = label_studio.server_for(catalog.home, log=click.echo)
        report = tasks.send(records, project, server, catalog, progress=not quiet)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    click.echo(f"label at: {report.url}")
    if server.password_file is not None:
        click.echo(f"log in as {server.username} (password in {server.password_file})")


@annotate.command("load")
@PROJECT
@click.option("--replace", is_flag=True, help="Also replace ground-truth masks and annotated masks from elsewhere.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def load(project, replace, quiet) -> None:
    """Attach the submitted masks of a project to their samples as `annotated`.

    \b
    Re-running loads nothing twice; skipped or empty tasks change nothing.
    Example:
      daad annotate load --project daad-masks
    """
    from daad.core.catalog import Catalog
    from daad.curate.annotate import label_studio, tasks

    try:
        catalog = Catalog()
        server = label_studio.server_for(catalog.home, start=False)
        report = tasks.load(project, server, catalog, replace=replace, progress=not quiet)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())


@annotate.command("assist")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9090, show_default=True)
@PROJECT
def assist(host, port, project) -> None:
    """Serve the box-to-mask helper (a Label Studio ML backend) and connect it to the project.

    \b
    In the labelling page, pick "box to mask" and drag a box around the anomaly, or click
    positive/negative points: the mask appears as a brush region to correct. Ctrl-C stops.
    Example:
      daad annotate assist --project daad-masks
    """
    from daad.core.catalog import Catalog
    from daad.core.media_store import MediaStore
    from daad.curate.annotate import label_studio
    from daad.curate.annotate.assist import AssistBackend, catalog_images

    catalog = Catalog()
    try:
        backend = AssistBackend(catalog_images(MediaStore(catalog.home).root / "images"))
        http = backend.serve(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    url = f"http://{host}:{http.server_address[1]}"
    click.echo(f"assist backend at {url}")
    try:
        server = label_studio.server_for(catalog.home, start=False)
        client = label_studio.Client(server)
        proj = client.project(project, create=False)
        if proj is not None:
            client.add_ml_backend(proj["id"], url)
            click.echo(f"connected to project {project!r} at {server.url}")
        else:
            click.echo(f"no project {project!r} yet: connect {url} in its Settings > Model")
    except DaadError as exc:
        click.echo(f"not connected ({exc}); connect {url} in the project's Settings > Model")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        http.shutdown()


@annotate.command("stop")
def stop() -> None:
    """Stop the Label Studio server daad started for this DAAD_HOME."""
    from daad.core.settings import daad_home
    from daad.curate.annotate.label_studio import stop_server

    click.echo("stopped" if stop_server(daad_home()) else "no server daad started is running")


def register(group: click.Group) -> None:
    group.add_command(annotate)
