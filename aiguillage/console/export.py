"""Tables as French spreadsheets open them: CSV with ``;`` between cells (the comma is
the decimal separator in French), CRLF lines, and UTF-8 announced by a byte-order mark
(without it, a French spreadsheet reads UTF-8 as Windows-1252 and breaks the accents).
Streamed, a line at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from starlette.responses import StreamingResponse

BOM = "\ufeff"


async def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> AsyncIterator[bytes]:
    yield BOM.encode()
    for values in (header, *rows):
        line = io.StringIO()
        csv.writer(line, delimiter=";", lineterminator="\r\n").writerow(
            # A count of 0 is a figure, not a blank; a missing value is blank.
            ["" if value is None else value for value in values]
        )
        yield line.getvalue().encode()


def csv_download(
    name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingResponse:
    """A CSV file to download under ``name``."""
    return StreamingResponse(
        csv_lines(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
