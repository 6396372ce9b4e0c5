"""Report files of the sandbox's `createreport`: a header and rows rendered as CSV or XLSX.

The columns of each report type are documented in `sandbox.fleet` (module docstring), which
computes them; this module only writes files.

- CSV: UTF-8 without a byte-order mark, comma-separated, ``\\r\\n`` line ends, the header first.
  Cells are written with `str`, an empty string or None as an empty field, so reading a file back
  with the `csv` module gives every value as text.
- XLSX: one sheet named ``report``, the header in the first row, then one row per data row with
  numbers kept as numbers. An empty string or None is written as an empty text cell, which
  openpyxl reads back as None; writing the cell keeps every row as wide as the header for readers
  that stop a row at its last cell. Document properties carry a fixed date, but openpyxl stamps
  the zip entries with the current time, so the bytes of two renderings of the same rows can
  differ (their content does not); rewriting the archive with fixed entry dates would make them
  identical if a caller ever needs that.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

from openpyxl import Workbook

_FIXED_DATE = datetime(2024, 1, 1)


def render_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """The header and rows as CSV bytes (see the module docstring for the format)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue().encode("utf-8")


def render_xlsx(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """The header and rows as an XLSX workbook (see the module docstring for the format)."""
    workbook = Workbook(write_only=True)
    workbook.properties.created = _FIXED_DATE
    workbook.properties.modified = _FIXED_DATE
    sheet = workbook.create_sheet("report")
    sheet.append(list(header))
    for row in rows:
        sheet.append(["" if value is None else value for value in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
