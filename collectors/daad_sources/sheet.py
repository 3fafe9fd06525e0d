"""Read the authors' spreadsheet: one `Source` per listed row of the eight class sheets.

Layout of `source of real anomalies.xlsx` (HU13-SVG/Cross-domain-Anomaly-Injection): a
sheet `Existing_datasets` (the nine datasets) and one sheet per anomaly class (`crack`,
`scratch`, `hole`, `orifice`, `stain`, `pits`, `impurity`, `abrasion`), each row a serial
number in column A and the source in column B. Column B holds a URL, a `data:` URI or a
page title (1,381 cells; 30 are not a URL); 1,065 cells also carry a hyperlink, which for
7 of the titles is where the title points (the other 23 are unresolvable). Hyperlinks are only visible outside openpyxl's read-only mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from daad.core import taxonomy


@dataclass(frozen=True)
class Source:
    sheet: str  # the class sheet, which is the class
    row: int
    cell: str  # e.g. "B17"
    value: str  # the cell's text (a URL, a data: URI or a title)
    link: str = ""  # the cell's hyperlink target, when it has one

    @property
    def ref(self) -> str:
        """How records and reports name it: `crack!B17`."""
        return f"{self.sheet}!{self.cell}"


def read_sources(xlsx: Union[str, Path], classes: Iterable[str] | None = None) -> list[Source]:
    """Every non-empty source of the class sheets (or of `classes`), in sheet and row order.

    Raises ValueError for a file that is not the authors' workbook (no class sheet) or a
    class it has no sheet for; ImportError naming the extra when openpyxl is missing.
    """
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise ImportError("reading the spreadsheet needs openpyxl: pip install 'daad[sources]'") from None
    path = Path(xlsx).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: spreadsheet not found")
    try:
        wb = openpyxl.load_workbook(path)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a non-xlsx
        raise ValueError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    wanted = [taxonomy.check_class(c) for c in classes] if classes else [c for c in taxonomy.CLASSES if c in wb.sheetnames]
    if not wanted:
        raise ValueError(f"{path}: none of the class sheets ({', '.join(taxonomy.CLASSES)}) is in this workbook; found {', '.join(wb.sheetnames)}")
    missing = [c for c in wanted if c not in wb.sheetnames]
    if missing:
        raise ValueError(f"{path}: no sheet for class {', '.join(missing)}; sheets: {', '.join(wb.sheetnames)}")
    out = []
    for name in sorted(wanted, key=wb.sheetnames.index):
        for row in wb[name].iter_rows(min_col=2, max_col=2):
            cell = row[0]
            value = "" if cell.value is None else str(cell.value).strip()
            link = (cell.hyperlink.target or "").strip() if cell.hyperlink is not None else ""
            if value or link:
                out.append(Source(name, int(cell.row or 0), cell.coordinate, value, link))
    return out
