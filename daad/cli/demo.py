"""`daad demo`: the main job end to end on the packaged demo set (a thin layer over `daad.demo`)."""

from __future__ import annotations

import click

from daad.cli.params import UserPath


@click.command("demo")
@click.option("--out", "out_dir", default="daad-demo", show_default=True, type=UserPath(file_okay=False),
              help="Folder for everything the demo writes (its own DAAD_HOME, release, CAI output).")
@click.option("--per-image", default=4, show_default=True, type=click.IntRange(min=1), help="Pseudo anomalies per target board.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="CAI processes.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: str, per_image: int, workers: int, quiet: bool) -> None:
    """Collect, dedupe, publish and synthesize on the demo images shipped with daad.

    Needs no network and touches nothing outside OUT (not even ~/.daad): five MVTec AD
    anomalies (CC BY-NC-SA 4.0) become a published DAAD v1.0.0, then CAI injects them
    into four normal MVTec AD images (two capsules, two bottles). Safe to re-run.

    \b
    Example:
      daad demo --out daad-demo
    """
    from daad.demo import keep_caches_under

    keep_caches_under(out_dir)  # before datasets / matplotlib are imported
    from daad.core.errors import DaadError
    from daad.demo import run_demo

    if quiet:
        import datasets

        datasets.disable_progress_bars()
    try:
        result = run_demo(out_dir, per_image=per_image, workers=workers, progress=not quiet)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


def register(group: click.Group) -> None:
    group.add_command(demo)
