"""`daad publish` (write a version as a Hub dataset folder, optionally push it) and `daad push`."""

from __future__ import annotations

import re

import click

from daad.cli.params import UserPath

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """`500MB`, `2GiB`, `1000000` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise click.BadParameter(f"{text!r} is not a size like 500MB, 2GiB or 1000000")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


_GATED = click.Choice(["auto", "manual", "none"])


def _gate(value: str | None) -> str | None:
    return None if value is None else ("" if value == "none" else value)


@click.command("publish")
@click.option("--version", "version", required=True, help="Semantic version X.Y.Z of this release (never overwritten).")
@click.option("--out", "out_dir", required=True, type=UserPath(file_okay=False), help="Folder holding all versions; writes OUT/vX.Y.Z.")
@click.option("--previous", type=UserPath(exists=True, dir_okay=False), help="manifest.json of the previous version to diff against (default: newest older version in OUT).")
@click.option("--shard-size", default="500MB", show_default=True, help="Largest parquet shard (image + mask bytes).")
@click.option("--push", "repo_id", default=None, help="Also upload to this Hub dataset repo (<org>/<name>): one commit, tag vX.Y.Z.")
@click.option("--private", is_flag=True, help="With --push: the Hub repo is private.")
@click.option("--gated", type=_GATED, default=None, help="Hub access gate (default: what the sources' licences ask for).")
@click.option("--card-repo", default=None, help="Repo id the card's examples load from (default: the --push repo, else <org>/daad).")
@click.option("--local", is_flag=True, help="A release for private use: also images whose licence forbids redistribution or is unknown (never pushed).")
@click.option("--force-version", is_flag=True, help="Write even if VERSION is a smaller bump than the changes call for (refused without it).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def publish_cmd(
    version: str, out_dir: str, previous: str | None, shard_size: str, repo_id: str | None, private: bool, gated: str | None,
    card_repo: str | None, local: bool, force_version: bool, quiet: bool,
) -> None:
    """Write version X.Y.Z of DAAD as a script-free Hugging Face dataset folder.

    \b
    Publishes representatives with a class, a ground-truth or annotated mask and a
    redistributable licence; configs `full` and `exclude_<dataset>` for every evaluation
    dataset the catalog knows; a card with counts, exclusions, licences and changelog.
    Samples not yet checked against a hashed evaluation dataset are checked first.
    --local also publishes what may not be redistributed, for use on this machine
    (`daad synthesize --dataset OUT`); such a release is never pushed.
    Examples:
      daad publish --version 1.0.0 --out ~/daad-hub
      daad publish --version 1.0.0 --out ~/daad-local --local
      daad publish --version 1.1.0 --out ~/daad-hub --push acme/daad --private
      daad publish --version 1.2.0 --out ~/daad-hub --card-repo acme/daad && daad push ~/daad-hub/v1.2.0 acme/daad
      python -c "from datasets import load_dataset; print(load_dataset('$HOME/daad-hub/v1.1.0', 'exclude_mvtec_ad'))"
    """
    from daad.core.catalog import Catalog
    from daad.release.publish import PublishError, publish

    if local and repo_id:
        raise click.ClickException("--local and --push exclude each other: a local release may hold images that must not be redistributed")
    try:
        result = publish(
            Catalog(), version, out_dir, previous=previous, shard_bytes=parse_size(shard_size),
            repo_id=card_repo or repo_id or "<org>/daad", gated=_gate(gated), local=local, progress=not quiet, force_version=force_version,
        )
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())
    if repo_id:
        _push(str(result.path), repo_id, private, None)


def _push(folder: str, repo_id: str, private: bool, gated: str | None) -> None:
    from daad.release.hub_push import push_version
    from daad.release.publish import PublishError

    try:
        res = push_version(folder, repo_id, private=private, gated=gated)
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # HTTP or network errors (their types differ across huggingface_hub versions): one line
        first = (str(exc).splitlines() or [""])[0]
        raise click.ClickException(
            f"push of {folder} to {repo_id} failed: {type(exc).__name__}: {first} (retry with `daad push {folder} {repo_id}`)"
        ) from None
    click.echo(res.summary())


@click.command("push")
@click.argument("folder", type=UserPath(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="The Hub repo is private.")
@click.option("--gated", type=_GATED, default=None, help="Hub access gate (default: what the version's manifest records).")
def push_cmd(folder: str, repo_id: str, private: bool, gated: str | None) -> None:
    """Upload an already published version folder to a Hub dataset repo (e.g. to retry a push).

    \b
    The token comes from HF_TOKEN or `hf auth login` and is never printed;
    HF_ENDPOINT selects another Hub. A version whose tag exists there is refused.
    Example:
      daad push ~/daad-hub/v1.0.0 acme/daad
    """
    from daad.release.publish import PublishError, published_folder

    try:
        path = published_folder(folder)
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
    _push(str(path), repo_id, private, _gate(gated))


def register(group: click.Group) -> None:
    group.add_command(publish_cmd)
    group.add_command(push_cmd)
