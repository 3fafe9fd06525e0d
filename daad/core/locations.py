"""Arguments that may name a local folder or a Hugging Face Hub repo: one rule for all of them.

`daad synthesize --dataset`, `daad cdm train --pretrained`, ... take either. A path that
does not exist used to go to the Hub as if it were a repo id (23 s of retries, then an
error about a repo), so a mistyped folder read as a network problem. Here: what exists
on disk is a folder; otherwise only the Hub's `owner/name` form is a hub id; anything
else is "no such folder" at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from daad.core.errors import DaadError

# The Hub's repo id rules: owner and name of letters, digits, `-`, `_`, `.`; neither starts with `.` or `-`.
_HUB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}")


class NotFoundError(DaadError):
    """Neither an existing folder nor a hub id of the form owner/name."""


def is_hub_id(text: str) -> bool:
    return bool(_HUB_ID.fullmatch(text)) and ".." not in text and not text.endswith(".")


def folder_or_hub_id(text: str | Path) -> Path | str:
    """The existing local path (with `~` expanded) named by `text`, else `text` as a hub id.

    Raises NotFoundError ("<text>: no such folder (and not a hub id of the form owner/name)")
    when it is neither.
    """
    path = Path(text).expanduser()
    if path.exists():
        return path
    if isinstance(text, str) and not text.startswith(("~", ".", "/")) and is_hub_id(text):
        return text
    raise NotFoundError(f"{text}: no such folder (and not a hub id of the form owner/name)")
