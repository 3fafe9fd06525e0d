"""The one plain-text table of the project (ingest and collect summaries, `daad status`, `daad ls`).

Columns are separated by two spaces; the first is left-aligned (a label) and the rest
right-aligned (counts) unless `align` says otherwise (`<` or `>` per column); a column
is at least `min_width` characters (the summaries keep their counts' columns steady
from one run to the next). Trailing spaces are stripped.
"""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[object] | None, rows: Sequence[Sequence[object]], align: str = "",
                 min_width: int | Sequence[int] = 0) -> str:
    """The table as lines of text; `header` None prints rows only."""
    cells = [[str(c) for c in r] for r in ([header] if header is not None else []) + list(rows)]
    if not cells:
        return ""
    n = max(len(r) for r in cells)
    aligns = (align or "<" + ">" * (n - 1)).ljust(n, ">")
    mins = [min_width] * n if isinstance(min_width, int) else list(min_width) + [0] * (n - len(min_width))
    widths = [max([mins[i]] + [len(r[i]) for r in cells if i < len(r)]) for i in range(n)]
    lines = []
    for r in cells:
        parts = [c.ljust(widths[i]) if aligns[i] == "<" else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
