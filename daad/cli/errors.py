"""The last line of defence: an error no command caught becomes one `Error: ...` line, never a traceback.

Commands still clean up after themselves (temp files, transactions); this only turns
what reaches the top into words: daad's own errors as they are, a file-system error
(disk full, read-only, permission) with the file it is about, a damaged catalog with its
path. The exit code is 1, as for every other `Error:`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys

import click

from daad.core.errors import DaadError

_HINTS = {
    errno.ENOSPC: "disk full: free space there and run again",
    errno.EDQUOT: "disk quota exceeded: free space there and run again",
    errno.EROFS: "write somewhere else, or to a writable copy",
    errno.EACCES: "check the permissions of that path",
}


def os_error_line(exc: OSError) -> str:
    """`<file>: <what happened> (<what to do>)` for an OSError, whichever library raised it."""
    what = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno or -1)
    text = f"{what} ({hint})" if hint else what
    if exc.filename is None:
        return text
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{where}: {text}"


def sqlite_error_text(exc: sqlite3.Error) -> str:
    """What a SQLite error means for the user: disk full, read-only, busy, or a damaged catalog."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or "disk is full" in str(exc):
        return f"{exc} ({_HINTS[errno.ENOSPC]}; the catalog keeps its last complete state)"
    if name.startswith("SQLITE_READONLY") or "readonly database" in str(exc):
        return f"{exc} (the catalog or its folder is read-only; use a writable DAAD_HOME)"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        from daad.core.catalog import Catalog

        return Catalog.damaged(exc)
    return str(exc)


def catalog_path() -> str:
    from daad.core.settings import daad_home

    return str(daad_home() / "catalog.sqlite")


class DaadGroup(click.Group):
    """click.Group whose invoke() turns uncaught daad, OS and SQLite errors into `Error: ...`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DaadError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"{catalog_path()}: {sqlite_error_text(exc)}") from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `daad ls | head`: the reader left; not an error of ours
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                sys.exit(0)
            raise click.ClickException(os_error_line(exc)) from None
