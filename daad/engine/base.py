"""The engine interface: map a function over items with per-worker state, or run N independent jobs."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

from daad.core.errors import DaadError

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class EngineError(DaadError):
    """The engine cannot run the work: Ray missing or unreachable, an input a node cannot read."""


@dataclass(frozen=True)
class Resources:
    """What one worker (or one job) asks the engine for."""

    cpus: float = 1
    gpus: float = 0


ONE_CPU = Resources()


class Given(Generic[S]):
    """A `setup` that hands every worker the same (picklable) value, e.g. a configured CAI."""

    def __init__(self, value: S):
        self.value = value

    def __call__(self) -> S:
        return self.value


def path_problems(readable: Iterable[str | Path], writable: Iterable[str | Path], where: str) -> list[str]:
    """One line per input that cannot be read, or output folder that cannot be created, here (named `where`)."""
    problems = []
    for p in readable:
        path = Path(p).expanduser()
        if not path.exists():
            problems.append(f"{path}: not found on {where}")
        elif not os.access(path, os.R_OK):
            problems.append(f"{path}: not readable on {where}")
    for p in writable:
        path = Path(p).expanduser().absolute()
        parent = next((q for q in (path, *path.parents) if q.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            problems.append(f"{path}: cannot write there on {where}")
    return problems


def this_machine() -> str:
    return f"this machine ({socket.gethostname()})"


class Engine(ABC):
    """Runs per-item work somewhere; the caller never needs to know where.

    Results come back to the caller (the driver) as they finish, with the item's index,
    so the caller can show one progress bar over all workers and put results back in
    input order: outputs never depend on which worker ran what.
    """

    name = "engine"

    @abstractmethod
    def imap(
        self,
        fn: Callable[[S, T], R],
        items: Sequence[T],
        setup: Callable[[], S] | None = None,
    ) -> Iterator[tuple[int, R]]:
        """Yield (index, fn(state, items[index])) for every item, in the order they finish.

        `state = setup()` runs once per worker (None without a setup); `fn` and `setup`
        must be picklable (module-level functions, `Given(value)`, `functools.partial`).
        """

    @abstractmethod
    def run_jobs(self, fn: Callable[[T], R], jobs: Sequence[T], resources: Resources = ONE_CPU) -> Iterator[tuple[int, R]]:
        """Run `fn(job)` for N independent jobs, each with `resources` of its own; yield (index, result) as they finish."""

    @abstractmethod
    def check_paths(self, readable: Sequence[str | Path] = (), writable: Sequence[str | Path] = ()) -> None:
        """Raise EngineError naming the path and the node when a worker could not read an input or write an output."""

    @property
    def workers(self) -> int:
        """How many workers `imap` uses (at most)."""
        return 1

    def describe(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 (optional hook: engines that hold nothing need not override it)
        """Release what the engine holds (processes, actors)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
