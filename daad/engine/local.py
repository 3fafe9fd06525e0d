"""`LocalEngine`: this process, or N processes on this machine (what `--workers N` does)."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from daad.core.processes import process_pool

from .base import ONE_CPU, Engine, EngineError, Resources, path_problems, this_machine

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

_STATE: dict[str, Any] = {}
WINDOW_PER_WORKER = 4  # items queued per process: keeps every process busy without materialising a million futures


def _init(setup: Callable[[], Any] | None) -> None:
    _STATE["state"] = setup() if setup is not None else None


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE["state"], item)


def _windowed(submit: Callable[[Any], Future], items: Sequence[Any], window: int) -> Iterator[tuple[int, Any]]:
    """Keep at most `window` items in flight; yield (index, result) as they finish (ties by index)."""
    pending: dict[Future, int] = {}
    nxt = 0
    while nxt < len(items) and len(pending) < window:
        pending[submit(items[nxt])] = nxt
        nxt += 1
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for f in sorted(done, key=pending.__getitem__):
            i = pending.pop(f)
            yield i, f.result()
            if nxt < len(items):
                pending[submit(items[nxt])] = nxt
                nxt += 1


class LocalEngine(Engine):
    """`workers` = 1 runs in this process; more are `daad.core.processes.process_pool()` processes
    (spawned, safe with the threads tqdm and arrow start in the parent, and they die with it)."""

    name = "local"

    def __init__(self, workers: int = 1, resources: Resources = ONE_CPU):
        if workers < 1:
            raise EngineError(f"workers {workers}: must be at least 1")
        self._workers, self.resources = workers, resources

    @property
    def workers(self) -> int:
        return self._workers

    def describe(self) -> str:
        return f"local, {self._workers} process{'es' if self._workers > 1 else ''}"

    def imap(self, fn: Callable[[S, T], R], items: Sequence[T], setup: Callable[[], S] | None = None) -> Iterator[tuple[int, R]]:
        if self._workers <= 1 or len(items) <= 1:
            state = setup() if setup is not None else None
            for i, item in enumerate(items):
                yield i, fn(state, item)  # type: ignore[arg-type]
            return
        n = min(self._workers, len(items))
        with process_pool(n, initializer=_init, initargs=(setup,)) as ex:
            yield from _windowed(lambda item: ex.submit(_call, fn, item), items, WINDOW_PER_WORKER * n)

    def run_jobs(self, fn: Callable[[T], R], jobs: Sequence[T], resources: Resources = ONE_CPU) -> Iterator[tuple[int, R]]:
        """Jobs one after another here, or `workers` at a time in processes (each job gets the whole machine's GPUs)."""
        if self._workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(job)
            return
        with process_pool(min(self._workers, len(jobs))) as ex:
            yield from _windowed(lambda job: ex.submit(fn, job), jobs, len(jobs))

    def check_paths(self, readable: Sequence[str | Path] = (), writable: Sequence[str | Path] = ()) -> None:
        problems = path_problems(readable, writable, this_machine())
        if problems:
            raise EngineError(problems[0])
