"""`daad collect dataset NAME PATH`: one of the public IAD datasets, in its publisher's layout."""

from __future__ import annotations

from pathlib import Path

import click

from daad.cli import choices
from daad.cli.collect import collect
from daad.cli.params import UserPath

@click.command("dataset")
@click.argument("name", type=choices.DATASETS)
@click.argument("path", type=UserPath(file_okay=False))
@click.option("--mapping", "mapping_file", type=UserPath(exists=True, dir_okay=False), help="YAML of <label or defect type>: <class or null>, laid over the default mapping.")
@click.option("--download", is_flag=True, help="First fetch the publisher's archive, verify its checksum and extract it safely into PATH.")
@click.option("--dest", type=UserPath(file_okay=False), help="With --download: where the archive is kept (default DAAD_HOME/downloads); a partial one resumes.")
@click.option("--max-gb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True, help="With --download: the largest archive accepted, for archives without a pinned size.")
@click.option("--stall-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="With --download: seconds without data before a connection is dropped and resumed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def dataset(name: str, path: str, mapping_file: str | None, download: bool, dest: str | None, max_gb: float, stall_timeout: float, quiet: bool) -> None:
    """Collect the anomalous images (with ground-truth masks) of a public IAD dataset.

    \b
    NAME is one of the dataset adapters (listed in the usage line above).
    PATH is the dataset's folder as its publisher's archive extracts (for mvtec_ad the
    folder holding bottle/, cable/, ...). Defect types map to DAAD classes through
    the dataset's YAML mapping; types mapped to null (bent, misplaced, missing parts,
    combined) are skipped and counted. Re-running adds nothing new.
    Examples:
      daad collect dataset mvtec_ad ~/data/mvtec_anomaly_detection
      daad collect dataset magnetic_tile ~/data/Magnetic-tile-defect-datasets.
      daad collect dataset crackforest ~/data/CrackForest-dataset
      daad collect dataset visa ~/data/VisA --mapping my_visa_classes.yaml
      daad collect dataset mvtec_ad ~/data/mvtec --download --dest ~/archives
    """
    from daad.collectors.datasets import collect_dataset, get_adapter, summary
    from daad.core.errors import DaadError
    from daad.core.settings import daad_home

    adapter = get_adapter(name)
    root = Path(path).expanduser()
    try:
        if download:
            from daad.collectors.download import fetch

            if not adapter.downloads:
                raise click.ClickException(f"{adapter.title} has no direct download URL from its publisher; get it from {adapter.homepage} and run without --download")
            archives = Path(dest).expanduser() if dest else daad_home() / "downloads"
            fetch(adapter.downloads, root, archives, progress=not quiet, max_bytes=int(max_gb * 1e9), stall=stall_timeout)
            click.echo(f"downloaded to {archives}, extracted into {root}")
        report = collect_dataset(name, root, mapping_file=mapping_file, progress=not quiet)
    except (DaadError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary(report))


def register(group: click.Group) -> None:
    """Add `dataset` to the existing `collect` group (`group` itself gets nothing)."""
    collect.add_command(dataset)
