"""File names as text, and how reports show them.

Why: on Linux a file name is bytes. Python hands undecodable bytes over as lone
surrogates (PEP 383, `surrogateescape`), which SQLite, JSON and a UTF-8 stdout refuse:
a photo named in Latin-1 (`r\\xe9sistance.jpg`) crashed `collect photos` after its image
was stored. And a name may hold a newline, which would print a second, forged line in
a report (`x.png\\nadded: evil.png`). So:

- `as_text(name)` is what gets stored (records, JSON): valid Unicode, undecodable bytes
  written as `\\xNN`; the file itself is still opened by its original name.
- `shown(name)` is what reports print: the name as is when it is plain printable text,
  else in single quotes with every control character, quote, backslash and undecodable
  byte escaped, so one name is always one unambiguous line.
- `one_line(text)` keeps a reason (which may quote a label or an exception) on one line.
"""

from __future__ import annotations

import os
from typing import Union

Name = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _str(name: Name) -> str:
    s = os.fspath(name)
    return os.fsdecode(s) if isinstance(s, bytes) else s


def as_text(name: Name) -> str:
    """`name` as valid Unicode text: undecodable bytes become `\\xNN`, everything else is kept."""
    return _str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
        return f"\\x{code - 0xDC00:02x}"
    if ch.isprintable():
        return ch
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def shown(name: Name) -> str:
    """How a report prints `name`: plain when it is plain, else quoted and escaped (see module doc)."""
    s = _str(name)
    if s and s.isprintable() and s == s.strip() and "'" not in s and "\\" not in s:
        return s
    return "'" + "".join(_escape(c) for c in s) + "'"


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped: one report line stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)
