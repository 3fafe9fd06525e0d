"""`--engine local|ray` and `--ray-address`: the options every command that can run on a cluster shares."""

from __future__ import annotations

from typing import Any, Callable

import click

from daad.engine import ENGINES


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--ray-address", default=None, help="Ray cluster to use with --engine ray (e.g. auto, or HEAD:6379; default: RAY_ADDRESS, else the cluster started on this machine, else a new local one).")(f)
    f = click.option("--engine", "engine_name", type=click.Choice(ENGINES), default="local", show_default=True, help="Where items run: local processes, or a Ray cluster (pip install 'daad[ray]').")(f)
    return f


def make_engine(name: str, workers: int | None, address: str | None, gpus_per_worker: float = 0, cpus_per_worker: float = 1):
    """The engine, or a one-line click error (Ray not installed, cluster unreachable)."""
    from daad.engine import EngineError, get_engine

    if address and name != "ray":
        raise click.BadParameter("only with --engine ray", param_hint="--ray-address")
    try:
        return get_engine(name, workers=workers, address=address, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
