"""`daad collect paper-datasets ROOT` and `daad collect daad-sources XLSX`: the paper's own DAAD sources."""

from __future__ import annotations

import click

from daad.cli.params import UserPath

from daad.cli.collect import collect


@click.command("paper-datasets")
@click.argument("root", type=UserPath(exists=True, file_okay=False))
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


@click.command("daad-sources")
@click.argument("xlsx", type=UserPath(exists=True, dir_okay=False))
@click.option("--classes", help="Comma-separated class sheets to read (default: all eight), e.g. crack,hole.")
@click.option("--limit", type=click.IntRange(min=1), help="Sources to try in this run at most; the next run continues.")
@click.option("--mirror", help="Fetch every URL as MIRROR/<scheme>/<host>/<path>?<query> (an offline mirror or cache; its host may be private).")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Requests per second per host.")
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True, help="Retries of a request after 5xx, 429 or a dropped connection.")
@click.option("--backoff", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Seconds before the first retry; doubles each time.")
@click.option("--max-mb", type=float, default=25.0, show_default=True, help="Largest download, in MB.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def daad_sources(xlsx: str, classes: str | None, limit: int | None, mirror: str | None, rate: float, retries: int, backoff: float, max_mb: float, quiet: bool) -> None:
    """Collect the web sources the paper's authors list (source of real anomalies.xlsx).

    \b
    One record per resolvable source: class = the sheet, source online_search, origin
    daad_sources, origin_ref = sheet!cell, licence unknown (never in a public release),
    no mask. Resolved in order: direct image URLs, search-engine URLs that hold the
    image's own URL (mediaurl, objurl, imgurl, riu, ...), data: URIs, web pages (their
    og:image and <img>/srcset images; a page listed k times gives its k largest);
    titles alone are unresolvable. Every request goes through the polite HTTP layer
    (rate limit, Retry-After, size cap, image check, no private addresses). Resumable:
    finished sources are never tried again; failures that may pass are retried.
    Examples:
      daad collect daad-sources "source of real anomalies.xlsx" --classes crack,hole --limit 100
      daad collect daad-sources sources.xlsx --mirror http://127.0.0.1:8000/cache
    """
    from daad.collectors.daad_sources import collect_daad_sources
    from daad.collectors.search.credentials import load_credentials, user_agent
    from daad.collectors.search.http import FetchError, HttpConfig
    from daad.core.catalog import Catalog

    catalog = Catalog()
    config = HttpConfig(user_agent=user_agent(load_credentials(catalog.home).contact), rate=rate, retries=retries,
                        backoff=backoff, max_bytes=int(max_mb * 1024 * 1024))  # fmt: skip
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    try:
        report = collect_daad_sources(xlsx, classes=wanted, limit=limit, mirror=mirror, catalog=catalog, http_config=config, progress=not quiet)
    except (FetchError, ValueError, FileNotFoundError, ImportError) as exc:
        raise click.ClickException(f"{exc} (progress so far is saved; run again to resume)") from None
    click.echo(report.summary())


def register(group: click.Group) -> None:
    """Add the paper's source commands to the existing `collect` group (`group` itself gets nothing)."""
    collect.add_command(paper_datasets)
    collect.add_command(daad_sources)
