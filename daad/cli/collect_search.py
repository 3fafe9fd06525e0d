"""`daad collect search QUERY --provider P --class C --limit N`: images from an image-search API."""

from __future__ import annotations

import click

from daad.core import taxonomy
from daad.cli import choices
from daad.cli.collect import collect



@click.command("search")
@click.argument("query")
@click.option("--provider", type=choices.PROVIDERS, required=True, help="Which image-search API to ask.")
@click.option("--class", "anomaly_class", type=click.Choice(taxonomy.CLASSES_AND_UNASSIGNED), required=True, help="Anomaly class of every image found.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Images this query may add in total, over all runs (raise it to continue).")
@click.option("--allow-nc", is_flag=True, help="Also collect CC BY-NC and BY-NC-SA images (non-commercial use only).")
@click.option("--endpoint", help="API URL instead of the public one (a mirror, a test server). Its host may be private.")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Requests per second per host.")
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True, help="Retries of a request after 5xx, 429 or a dropped connection.")
@click.option("--backoff", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Seconds before the first retry; doubles each time (429 waits what Retry-After asks).")
@click.option("--max-mb", type=float, default=25.0, show_default=True, help="Largest image download, in MB.")
@click.option("--deadline", type=click.FloatRange(min=0.1), default=120.0, show_default=True, help="Seconds one request may take in total (a server sending too slowly is cut off).")
@click.option("--max-pages", type=click.IntRange(min=1), default=100, show_default=True, help="API pages fetched per run at most (run again to continue).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def search(
    query: str, provider: str, anomaly_class: str, limit: int, allow_nc: bool, endpoint: str | None, rate: float, retries: int,
    backoff: float, max_mb: float, deadline: float, max_pages: int, quiet: bool,
) -> None:
    """Collect openly licensed images from Openverse, Wikimedia Commons or Flickr.

    \b
    Only licences that allow redistribution and derivatives are collected (CC0, PDM,
    CC BY, CC BY-SA; NC variants with --allow-nc); each record keeps licence,
    attribution, creator, landing page and provider. Records have no mask
    (mask_status missing): run `daad masks propose` or draw masks and `daad masks import`.
    Resumable: re-running continues where the last run stopped and never downloads
    an image twice. Keys: OPENVERSE_TOKEN (optional), FLICKR_API_KEY (required for
    flickr), DAAD_CONTACT (your e-mail, sent in the User-Agent as Wikimedia asks), or
    the same in DAAD_HOME/search.yaml.
    Examples:
      daad collect search "metal surface scratch" --provider openverse --class scratch --limit 40
      DAAD_CONTACT=me@lab.org daad collect search "concrete crack" --provider wikimedia --class crack
      FLICKR_API_KEY=... daad collect search "rust stain" --provider flickr --class stain --limit 100
    """
    from daad.core.catalog import Catalog
    from daad.collectors.search.collect import collect_search
    from daad.collectors.search.credentials import load_credentials, user_agent
    from daad.collectors.search.http import FetchError, HttpConfig

    catalog = Catalog()
    creds = load_credentials(catalog.home)
    config = HttpConfig(
        user_agent=user_agent(creds.contact), rate=rate, retries=retries, backoff=backoff, max_bytes=int(max_mb * 1024 * 1024), deadline=deadline
    )
    try:
        report = collect_search(
            query, provider, anomaly_class, limit, catalog=catalog, endpoint=endpoint, allow_nc=allow_nc,
            http_config=config, credentials=creds, progress=not quiet, max_pages=max_pages,
        )
    except (FetchError, ValueError) as exc:
        raise click.ClickException(f"{exc} (progress so far is saved; run again to resume)") from None
    click.echo(report.summary())


def register(group: click.Group) -> None:
    """Add `search` to the existing `collect` group (`group` itself gets nothing)."""
    collect.add_command(search)
