"""A deadline for HTTP requests that a slow server cannot stretch.

Why this exists: `requests`' `timeout` bounds each socket read, not the request. A
server that sends one byte every few seconds never trips it, and because http.client
fills a whole read buffer (64 KiB) before returning, no check between chunks runs
either. Measured: 20 bytes trickled at one per 0.3 s held `requests.get(url, timeout=1)`
for 5.7 s, and the same request under `deadline(1.0)` failed after 1.0 s; at a byte
every 2 s, a 10 kB answer would take 5.5 hours. So a watchdog thread shuts the
request's socket down when time is up, which makes the blocked read return at once,
in whatever phase it is (headers or body).

`Deadline(seconds)` fires `seconds` after it starts; `touch()` pushes it back, which
turns it into a stall limit (used for multi-gigabyte archive downloads, where a total
deadline would have to be hours: there it means "no 64 KiB arrived in `seconds`").
Requests made inside `with deadline(...)` on a session built by `session()` are covered;
after a fired deadline the caller must treat the answer as failed (`expired`), since a
body without Content-Length ends cleanly when its socket is shut down.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Deadline:
    """Shuts down every socket registered with it once `seconds` pass without a `touch()`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._due = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="daad-deadline", daemon=True)
        self._thread.start()

    def touch(self) -> None:
        """Progress was made: the deadline is `seconds` from now."""
        self._due = time.monotonic() + self.seconds

    def register(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def close(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(max(0.0, self._due - time.monotonic())):
            if time.monotonic() >= self._due:
                with self._lock:
                    self.expired = True
                    for sock in self._sockets:
                        _shutdown(sock)
                return


def _shutdown(sock: socket.socket) -> None:
    """Shut the connection down through a duplicate descriptor (safe for TLS sockets too)."""
    try:
        dup = socket.socket(fileno=socket.dup(sock.fileno()))
    except OSError:
        return  # already closed
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def _register(conn: HTTPConnection) -> None:
    d = getattr(_current, "deadline", None)
    if d is not None:
        d.register(conn.sock)


class _Conn(HTTPConnection):
    def getresponse(self, *args, **kwargs):  # type: ignore[override]
        _register(self)
        return super().getresponse(*args, **kwargs)


class _TLSConn(HTTPSConnection):
    def getresponse(self, *args, **kwargs):  # type: ignore[override]
        _register(self)
        return super().getresponse(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Conn  # type: ignore[assignment]  # a subclass, as urllib3 intends


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConn  # type: ignore[assignment]  # a subclass, as urllib3 intends


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[override]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def session() -> requests.Session:
    """A `requests.Session` whose requests a `deadline()` can cut off."""
    s = requests.Session()
    s.mount("http://", _Adapter())
    s.mount("https://", _Adapter())
    return s


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Requests on a `session()` inside this block are cut off after `seconds` (see module doc)."""
    d = Deadline(seconds)
    prev = getattr(_current, "deadline", None)
    _current.deadline = d
    try:
        yield d
    finally:
        _current.deadline = prev
        d.close()
