"""CSV, TSV and TAB files: how they are parsed, read and written.

* Cells are read as text (pandas "str" dtype) with NaN only for empty cells (see the package
  doc for why no types are inferred).
* Delimiter: .tsv/.tab are tab-separated; for .csv the delimiter is sniffed among `, ; TAB |`
  (Excel writes ";" in many European locales). Lines may end in CRLF, LF or CR alone (Excel
  for Mac), mixed within one file; a CR inside a quoted cell is part of the text.
* Quoting: a file is read with CSV quoting ('"' around cells holding the delimiter) unless that
  reading fails, e.g. a cell starts with a quote that is not a quoting quote, as in the unquoted
  SMS Spam Collection TSV. Then it is read without quoting. A row with more cells than the
  header is refused with its line number instead of being shifted into the wrong columns.
* A file whose last line has no line end and ends inside a quoted cell or has fewer cells than
  the header is refused: another program may still be writing it.
* Written as UTF-8 with a BOM, so that Excel opens them as UTF-8, with formula guards (see
  `guards`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BertclsError
from .cells import MAX_CELL_CHARS, cell_too_long
from .guards import (
    csv_has_guard_marker,
    neutralize_formulas,
    neutralize_frame,
    remove_formula_guards,
)
from .sink import Sink
from .textfiles import Lines, half_written, resolve_encoding, translate_read_errors

_SNIFF_CHARS = 64 * 1024
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class _Delimited:
    """How to parse one delimited text file."""

    encoding: str
    sep: str
    quoting: int
    rows: int
    header: list[str]  # the column names as the file has them, duplicates included


@dataclass(frozen=True)
class _Scan:
    header: list[str]
    rows: int
    too_wide: tuple[int, int] | None  # (line number, cells) of the first overlong row
    too_long: tuple[int, int, int, int] | None  # (row, line, column index, characters)
    last_line: int  # the number of the file's last line
    last_cells: int | None  # the cells of the last row (None: no rows, or not read to the end)
    ends_with_line_end: bool  # False only when read to the end and the last line has none
    open_quote: bool  # the file ends inside a quoted cell


def delimited_format(path: Path, encoding: str | None, limit: int | None = None) -> _Delimited:
    encoding = resolve_encoding(path, encoding)
    if path.suffix.lower() == ".csv":
        sep = _sniff_delimiter(path, encoding)
    else:
        sep = "\t"
    quoted: _Scan | None = None
    try:
        quoted = _scan(path, encoding, sep, csv.QUOTE_MINIMAL, limit)
    except csv.Error:
        # Not valid CSV quoting (e.g. a text that merely starts with a quote): try without.
        pass
    if quoted is not None and quoted.open_quote:
        if not quoted.ends_with_line_end:
            raise half_written(
                path,
                quoted.last_line,
                "ends inside a quoted cell",
                "close the quote that its last row opens",
            )
        quoted = None  # a quote open up to the end is no CSV quoting either
    if quoted is not None and quoted.too_wide is None:
        return _checked_format(path, encoding, sep, csv.QUOTE_MINIMAL, quoted)
    try:
        unquoted = _scan(path, encoding, sep, csv.QUOTE_NONE, limit)
    except csv.Error as error:
        raise BertclsError(f"{path} could not be read as a table: {error}.") from error
    if unquoted.too_wide is None:
        return _checked_format(path, encoding, sep, csv.QUOTE_NONE, unquoted)
    line, cells = (quoted or unquoted).too_wide
    width = len((quoted or unquoted).header)
    raise BertclsError(
        f"{path} line {line} has {cells} cells but the header has {width} (delimiter "
        f"{sep!r}). A cell probably contains the delimiter without being quoted. Put such "
        "cells in double quotes, or save the file as .xlsx (or as .txt with one text per line)."
    )


def _checked_format(path: Path, encoding: str, sep: str, quoting: int, scan: _Scan) -> _Delimited:
    """Refuse what the chosen reading of the file found wrong; otherwise how to read it."""
    width = len(scan.header)
    if scan.too_long is not None:
        row, line, column, size = scan.too_long
        hint = (
            " Such a cell usually means a quote that is never closed, which swallows the lines "
            "after it; check the quotes from that line on."
            if quoting == csv.QUOTE_MINIMAL
            else ""
        )
        where = f"row {row:,} (line {line:,})"
        raise cell_too_long(path, where, scan.header[column], size, hint)
    if not scan.ends_with_line_end and scan.last_cells is not None and scan.last_cells < width:
        raise half_written(
            path,
            scan.last_line,
            f"holds {scan.last_cells} of the header's {width} cells",
            "end its last line with a line break (a short row is then read with empty cells)",
        )
    return _Delimited(encoding, sep, quoting, scan.rows, scan.header)


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with translate_read_errors(path, encoding):
        with open(path, encoding=encoding, newline="") as file:
            sample = file.read(_SNIFF_CHARS)
    truncated = len(sample) == _SNIFF_CHARS
    best, best_score = ",", (0.0, 1)
    for sep in _CANDIDATE_DELIMITERS:
        # newline="": CR, LF and CRLF end lines, as in a file opened for the csv module; a
        # CR inside a quoted cell is text.
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=sep)
        try:
            rows = [row for row in reader if row]
        except csv.Error:
            continue  # e.g. a quoted CR read with another delimiter lands in an unquoted cell
        if truncated and len(rows) > 1:
            rows = rows[:-1]  # the sample may end inside the last row
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(row) == width for row in rows) / len(rows), width)
        if score > best_score:
            best, best_score = sep, score
    return best


def _scan(path: Path, encoding: str, sep: str, quoting: int, limit: int | None) -> _Scan:
    """Parse the file once with the csv module, without keeping rows, to check its shape.

    Raises csv.Error when the file is not valid in this quoting, except for a quote still open
    at the end of the file, which the returned scan reports.
    """
    # The csv module refuses cells over 128 KiB by default; cells are measured here instead.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    rows, too_wide, too_long, last_cells = 0, None, None, None
    at_end, open_quote = True, False
    with translate_read_errors(path, encoding):
        with open(path, encoding=encoding, newline="") as file:
            lines = Lines(file)
            reader = csv.reader(lines, delimiter=sep, quoting=quoting, strict=True)
            header = next((row for row in reader if not _blank(row)), None)
            if header is None:
                raise BertclsError(
                    f"{path} is empty: it has no header line. The first line must hold the "
                    "column names."
                )
            width = len(header)
            line_before = reader.line_num  # the last line of the previous row
            try:
                for row in reader:
                    if limit is not None and rows >= limit:
                        at_end = False
                        break
                    if _blank(row):
                        line_before = reader.line_num
                        continue  # pandas skips blank lines too
                    rows += 1
                    last_cells = len(row)
                    if len(row) > width and too_wide is None:
                        too_wide = (reader.line_num, len(row))
                    if too_long is None and max(map(len, row)) > MAX_CELL_CHARS:
                        j = next(j for j, cell in enumerate(row) if len(cell) > MAX_CELL_CHARS)
                        too_long = (rows, line_before + 1, min(j, width - 1), len(row[j]))
                    line_before = reader.line_num
            except csv.Error as error:
                if str(error) != "unexpected end of data":  # the csv module's words for it
                    raise
                open_quote = True
    return _Scan(
        header=_header_names(header),
        rows=rows,
        too_wide=too_wide,
        too_long=too_long,
        last_line=lines.count,
        # Stopped early (a preview): the end of the file was not looked at.
        last_cells=last_cells if at_end else None,
        ends_with_line_end=not at_end or lines.last.endswith(("\n", "\r")),
        open_quote=open_quote,
    )


def _blank(row: list[str]) -> bool:
    """A row pandas skips: no cells, or one cell of spaces."""
    return not row or (len(row) == 1 and not row[0].strip())


def _header_names(header: list[str]) -> list[str]:
    # An empty name becomes "Unnamed: i", as pandas names it.
    return [name if name else f"Unnamed: {i}" for i, name in enumerate(header)]


def _csv_options(fmt: _Delimited) -> dict[str, Any]:
    return {
        "sep": fmt.sep,
        "encoding": fmt.encoding,
        "quoting": fmt.quoting,
        "dtype": str,
        # Only an empty cell is missing; "NA" or "None" can be a real text.
        "keep_default_na": False,
        "na_values": [""],
        # Never turn a first column into the index when rows are one cell longer.
        "index_col": False,
        # Numbers replace the header's names (then set again) so that pandas does not rename
        # duplicates ("text", "text.1").
        "header": 0,
        "names": list(range(len(fmt.header))),
    }


def read_delimited(path: Path, encoding: str | None, nrows: int | None) -> pd.DataFrame:
    """The whole file, or its first `nrows` rows, as one DataFrame (see `tables.read_table`)."""
    fmt = delimited_format(path, encoding, limit=nrows)
    guarded = csv_has_guard_marker(path)
    with translate_read_errors(path, fmt.encoding):
        frame = pd.read_csv(path, nrows=nrows, **_csv_options(fmt))
    frame.columns = fmt.header
    return remove_formula_guards(frame) if guarded else frame


def iter_delimited(path: Path, encoding: str | None, chunk_size: int) -> Iterator[pd.DataFrame]:
    fmt = delimited_format(path, encoding)
    guarded = csv_has_guard_marker(path)
    with translate_read_errors(path, fmt.encoding):
        with pd.read_csv(path, chunksize=chunk_size, **_csv_options(fmt)) as reader:
            for chunk in reader:
                chunk.columns = fmt.header
                yield remove_formula_guards(chunk) if guarded else chunk


class CsvSink(Sink):
    def __init__(self, tmp: Path, sep: str) -> None:
        # BOM: Excel opens BOM-less CSV in the local code page and garbles non-ASCII text.
        self.file = open(tmp, "w", encoding="utf-8-sig", newline="")
        self.sep = sep

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        safe, guarded = neutralize_frame(df)
        names = list(neutralize_formulas(pd.Series(list(df.columns), dtype=object)))
        self.guarded = self.guarded or guarded or (header and names != list(df.columns))
        safe.to_csv(
            self.file,
            sep=self.sep,
            index=False,
            header=names if header else False,
            # CRLF (RFC 4180) also makes the csv writer quote cells holding a lone "\r".
            lineterminator="\r\n",
        )

    def close(self) -> None:
        self.file.close()
