"""`daad review`: the catalog in the FiftyOne App (needs the `review` extra)."""

from __future__ import annotations

import click

from daad.cli.params import UserPath


@click.command()
@click.option("--dataset", "name", default="daad", show_default=True, help="Name of the persistent FiftyOne dataset.")
@click.option("--remote", is_flag=True, help="Serve the App without opening a browser (connect to it from another machine).")
@click.option("--port", default=5151, show_default=True, type=int, help="Port of the App server.")
@click.option("--address", default=None, help="Address to serve on (default: FiftyOne's, localhost; 0.0.0.0 for every interface).")
@click.option("--apply-tags", is_flag=True, help="Apply the tags class:<name>, mask:ok, mask:bad typed in the App to the catalog, then exit.")
@click.option("--no-app", is_flag=True, help="Only load the catalog into the dataset (saved views, masks); do not open the App.")
@click.option("--release", type=UserPath(file_okay=False), help="Open a published release folder (masks bit-exact) instead of the catalog.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def review(name: str, remote: bool, port: int, address: str | None, apply_tags: bool, no_app: bool, release: str | None, quiet: bool) -> None:
    """Review classes and masks in the FiftyOne App; decisions go to the catalog.

    \b
    Loads the catalog into the FiftyOne dataset (idempotent, keyed by record id) with
    saved views unassigned, mask-missing, mask-proposed, duplicates, leaks-<dataset>
    and class-<name>, and opens the App with daad's operators (press ` in the App):
    "daad: set anomaly class", "daad: accept mask", "daad: reject mask" act on the
    selected samples (or the one open) and record who and when in the catalog.
    Examples:
      daad review                                   # local App in your browser
      daad review --remote --port 5151              # then ssh -L 5151:localhost:5151 host
      daad review --apply-tags                      # honour class:crack, mask:ok, mask:bad tags
      daad review --no-app                          # refresh the dataset only
      daad review --release ~/daad-hub              # a release's `full` config, read-only
    """
    try:
        from daad.curate import review as rv
    except ImportError as e:
        raise click.ClickException(f"daad review needs FiftyOne: pip install 'daad[review]' ({e})") from None
    import fiftyone as fo

    from daad.core.catalog import Catalog

    if release:
        from daad.core.errors import DaadError
        from daad.release.fiftyone_config import load_release

        try:
            ds = load_release(release, name=None if name == "daad" else name)
        except (DaadError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"FiftyOne dataset {ds.name!r}: {len(ds)} samples of {ds.info['daad_release']} (full config)")
        if not no_app:
            session = fo.launch_app(ds, remote=remote, port=port, address=address)
            click.echo(f"App: {session.url}  (Ctrl-C to stop)")
            session.wait(-1 if remote else 3)
        return
    if apply_tags:
        if not fo.dataset_exists(name):
            raise click.ClickException(f"no FiftyOne dataset {name!r}: run `daad review` first")
        ds = fo.load_dataset(name)
        catalog = rv.catalog_of(ds)  # the catalog this dataset was loaded from
        report = rv.apply_tags(ds, catalog=catalog, progress=not quiet)
        click.echo(f"tags applied to catalog {catalog.path}: {report.summary()}")
        for err in report.errors:
            click.echo(f"error: {err}", err=True)
        return
    ds, report = rv.load_catalog(Catalog(), name, progress=not quiet)
    click.echo(report.summary())
    if no_app:
        return
    session = rv.launch(ds, remote=remote, port=port, address=address)
    click.echo(f"App: {session.url}  (plugin operators: daad: set anomaly class / accept mask / reject mask; Ctrl-C to stop)")
    session.wait(-1 if remote else 3)


def register(group: click.Group) -> None:
    group.add_command(review)
