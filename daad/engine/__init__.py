"""Where per-item work runs: one small interface (`Engine`), two engines behind it.

A command says *what* runs per item (a module-level function `fn(state, item)` and a
`setup()` that builds the heavy state once per worker: a CAI, a diffusion pipeline);
the engine decides *where*: `LocalEngine` (this process, or N spawned processes: what
`--workers N` always did) or `RayEngine` (long-lived Ray actors across a cluster). This
is img2dataset's "distributor" idea; adding an engine is adding one class.

    from daad.engine import get_engine
    with get_engine("ray", address="auto") as engine:
        for index, result in engine.imap(fn, items, setup=Given(cai)):
            ...
"""

from __future__ import annotations

from .base import Engine, EngineError, Given, Resources
from .local import LocalEngine

ENGINES = ("local", "ray")


def get_engine(
    name: str = "local",
    workers: int | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
) -> Engine:
    """The engine called `name` ("local" or "ray").

    `workers`: processes (local; default 1) or Ray actors (default: as many as the
    cluster has room for at `cpus_per_worker`/`gpus_per_worker` each). `address`: the
    Ray cluster (None: RAY_ADDRESS, else the cluster started on this machine, else a
    new one on this machine). Raises EngineError (one line) when Ray is not installed
    or cannot be reached.
    """
    resources = Resources(cpus=cpus_per_worker, gpus=gpus_per_worker)
    if name == "local":
        return LocalEngine(workers or 1, resources=resources)
    if name == "ray":
        from .ray_cluster import RayEngine

        return RayEngine(address=address, workers=workers, resources=resources)
    raise EngineError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "EngineError", "Given", "LocalEngine", "Resources", "get_engine"]
