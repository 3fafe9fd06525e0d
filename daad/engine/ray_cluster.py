"""`RayEngine`: the same work on a Ray cluster (Ray Core actors and tasks).

Why long-lived actors for `imap` and not one task per item: the per-worker state (a
CAI with its memory-mapped DAAD pool, a diffusion pipeline on a GPU) is built once
per actor by `setup()`, not once per item, so one actor per GPU loads the pipeline once.
Each actor is created with `max_restarts=-1, max_task_retries=-1`: when its process
dies (OOM, kill -9, a lost node) Ray starts it again (setup runs again) and re-sends
the items it had not returned; every output file is written whole by rename and
depends only on its item, so a retried item rewrites the same bytes.

The driver keeps `WINDOW_PER_WORKER` items in flight per actor and takes results as
they finish, so one slow item never stalls the rest and the progress bar counts items
done across the cluster. Item results (manifest rows, hashes) travel back to the
driver; only the driver writes manifests and the catalog.

Nodes must see the same paths (inputs and outputs on NFS or similar) and have the
same daad installed: `check_paths` asks every node before any work starts.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from .base import ONE_CPU, Engine, EngineError, Resources, path_problems

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "--engine ray needs Ray, which is not installed: pip install 'daad[ray]'"
WINDOW_PER_WORKER = 2  # one item running, one queued: the actor never waits for the driver's round trip


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EngineError(INSTALL_HINT) from None
    return ray


def node_name() -> str:
    """This Ray node, as an error message names it: ip (hostname, node id)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    address = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), ray.util.get_node_ip_address())
    return f"node {address} ({socket.gethostname()}, id {node_id[:8]})"


class _Worker:
    """One Ray actor: builds its state on its first call (again after a restart), then runs `fn(state, item)` per call.

    Every call carries the setup's object ref (a reference, a few bytes); the state is
    built from it once. Not a constructor argument: Ray warns that an actor restarted
    from arguments held in the object store may fail to restart, and a setup that
    cannot even be unpickled on this node is reported here, naming the node.
    """

    def __init__(self, fn: Callable[[Any, Any], Any]):
        self.fn, self.ready, self.state = fn, False, None

    def call(self, setup_ref: list[Any], item: Any) -> Any:
        if not self.ready:
            import ray

            try:
                setup: Callable[[], Any] | None = ray.get(setup_ref[0])
                self.state = setup() if setup is not None else None
            except Exception as exc:
                raise EngineError(f"worker on {node_name()} could not start: {type(exc).__name__}: {exc}") from None
            self.ready = True
        return self.fn(self.state, item)


def _run_job(fn: Callable[[Any], Any], job: Any) -> Any:
    return fn(job)


def _probe(readable: Sequence[str], writable: Sequence[str]) -> list[str]:
    return path_problems(readable, writable, node_name())


def _cause(ray: Any, exc: Exception) -> BaseException:
    """The exception the work itself raised (as a local run would raise it), not Ray's wrapper with a remote traceback."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    return cause if isinstance(cause, BaseException) else exc


def _lost(exc: Exception, what: str) -> EngineError:
    """One line for work Ray gave up on (a worker killed on every retry, a node gone), not Ray's multi-line report."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return EngineError(f"{what} was lost on Ray after its retries: {type(exc).__name__}: {first}")


class RayEngine(Engine):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, resources: Resources = ONE_CPU):
        ray = self.ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineError(f"cannot reach a Ray cluster at {address or 'the default address'}: {exc}") from None
        self.resources = resources
        self._requested = workers
        self._Worker = ray.remote(_Worker)
        self._probe = ray.remote(_probe)

    @property
    def workers(self) -> int:
        if self._requested:
            return self._requested
        total = self.ray.cluster_resources()
        slots = int(total.get("CPU", 0) // self.resources.cpus) if self.resources.cpus else 1 << 30
        if self.resources.gpus:
            slots = min(slots, int(total.get("GPU", 0) // self.resources.gpus))
        if slots < 1:
            raise EngineError(f"the Ray cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs: "
                              f"no room for one worker of {self.resources.cpus:g} CPUs and {self.resources.gpus:g} GPUs")
        return slots

    def describe(self) -> str:
        nodes = [n for n in self.ray.nodes() if n["Alive"]]
        return f"ray, {self.workers} workers on {len(nodes)} node{'s' if len(nodes) != 1 else ''}"

    def imap(self, fn: Callable[[S, T], R], items: Sequence[T], setup: Callable[[], S] | None = None) -> Iterator[tuple[int, R]]:
        if not items:
            return
        ray = self.ray
        opts = dict(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus, max_restarts=-1, max_task_retries=-1)
        setup_ref = ray.put(setup)  # sent once to the object store, fetched once per actor (and again on a restart)
        actors = [self._Worker.options(**opts).remote(fn) for _ in range(min(self.workers, len(items)))]
        pending: dict[Any, tuple[int, Any]] = {}
        nxt = 0

        def feed(actor: Any) -> None:
            nonlocal nxt
            if nxt < len(items):
                pending[actor.call.remote([setup_ref], items[nxt])] = (nxt, actor)
                nxt += 1

        try:
            for _ in range(WINDOW_PER_WORKER):
                for actor in actors:
                    feed(actor)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i, actor = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        raise _cause(ray, exc) from None
                    except ray.exceptions.RayError as exc:  # the actor died more often than Ray restarts it
                        raise _lost(exc, f"item {i}") from None
                    feed(actor)
                    yield i, result
        finally:
            for actor in actors:
                ray.kill(actor)

    def run_jobs(self, fn: Callable[[T], R], jobs: Sequence[T], resources: Resources = ONE_CPU) -> Iterator[tuple[int, R]]:
        """One Ray task per job with its own CPUs/GPUs (Ray sets CUDA_VISIBLE_DEVICES); a task whose worker dies is retried."""
        ray = self.ray
        task = ray.remote(_run_job).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=3)
        fn_ref = ray.put(fn)  # any picklable callable (a function, a functools.partial), sent once
        pending = {task.remote(fn_ref, job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    yield i, ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise _cause(ray, exc) from None
                except ray.exceptions.RayError as exc:  # its worker died on every retry
                    raise _lost(exc, f"job {jobs[i]!r}") from None

    def check_paths(self, readable: Sequence[str | Path] = (), writable: Sequence[str | Path] = ()) -> None:
        """Run a probe on every alive node that has CPUs (pinned there, using no CPU slot)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        r = [str(Path(p).expanduser().absolute()) for p in readable]
        w = [str(Path(p).expanduser().absolute()) for p in writable]
        nodes = [n for n in self.ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        refs = [self._probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(r, w)
                for n in nodes]
        for problems in self.ray.get(refs):
            if problems:
                raise EngineError(problems[0] + " (every node must see the same paths: put inputs and outputs on a shared file system)")
