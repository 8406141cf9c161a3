"""Spreadsheets in and out: a file becomes pandas rows, and labeled rows become a file again.

Reading (`read_table`, `iter_table_chunks`, `count_rows`) and writing (`TableWriter`,
`write_table`) know the formats in `SUPPORTED_SUFFIXES`. Decisions every caller should know:

* Delimited text (.csv .tsv .tab) and .txt files are read with every column as text (pandas
  "str" dtype) and NaN only for empty cells; "NA", "null" or "None" stay text. CSV carries no
  types: inferring them per chunk would give one column different dtypes in different chunks, and
  inference is lossy (leading zeros, long ids, "1.50"), so a labeled copy would not reproduce
  the input's cells. Excel, Parquet and JSON lines keep their own types: integers stay integers
  where cells are empty (pandas "Int64"), Parquet structs, lists, decimals and dates keep their
  Arrow types (`pd.ArrowDtype`), so a Parquet file written back has the input's schema.
* Column names are kept as they are, duplicates included ("text", "text" is not renamed
  "text.1"); asking for a duplicated column by name is refused. Parquet and JSON lines cannot
  hold two columns of one name, so writing such a table to them is refused.
* Encoding: UTF-8 (with or without BOM) and UTF-16 with a BOM are detected. UTF-16 without a
  BOM (every second byte 0) is refused with a message naming "utf-16-le"/"utf-16-be". Anything
  else is refused with a `BertclsError` that shows the offending line as it reads in cp1252 and
  says to pass `encoding="cp1252"` if that looks right. Guessing a legacy code page would
  silently turn some files into mojibake, so the choice is left to the user.
* Delimiter: .tsv/.tab are tab-separated; for .csv the delimiter is sniffed among `, ; TAB |`
  (Excel writes ";" in many European locales). Lines may end in CRLF, LF or CR alone (Excel
  for Mac), mixed within one file; a CR inside a quoted cell is part of the text.
* Quoting: a file is read with CSV quoting ('"' around cells holding the delimiter) unless that
  reading fails, e.g. a cell starts with a quote that is not a quoting quote, as in the unquoted
  SMS Spam Collection TSV. Then it is read without quoting. A row with more cells than the
  header is refused with its line number instead of being shifted into the wrong columns.
* A cell longer than `MAX_CELL_CHARS` characters is refused by every reader, naming its row
  and column: in a CSV it is nearly always a quote that is never closed, and a text that long
  is more than spaCy's default `max_length` anyway.
* A file that another program is still writing is refused rather than read with a cut last
  row: a CSV/TSV whose last line has no line end and ends inside a quoted cell or has fewer
  cells than the header; JSON lines whose last line has no line end and is not valid JSON; any
  file whose size changes while it is read. A complete file whose last line merely lacks a
  line end is read as usual (a .txt file gets a warning, since there nothing tells the two
  apart).
* .txt is plain text, one text per line, read as a single column named "text".
* .json is JSON lines, unless its first character is "[" (then a JSON array of objects, which is
  read whole and not streamed).
* Excel formula cells are read as the value Excel saved with them. A formula without a saved
  value (a file written by a program that does not calculate, such as openpyxl) is read as its
  formula text ("=A2*2") and counted in a warning, so the cell is not lost.
* Written CSV/TSV/XLSX cells that a spreadsheet program would run as a formula (text starting
  with = + - @ TAB or CR, unless the text is a plain number such as "-5") get a leading "'";
  text that itself starts with "'" before such a character gets one more. Reading removes
  exactly one such "'" again, but only from files known to be written by this project, so a
  user's own "'=A1" is never changed. An .xlsx file carries the custom document property
  `XLSX_GUARD_PROPERTY` (Excel keeps it when saving, and stores a typed "'=x" as "=x" with a
  hidden prefix, so it does not mix with ours). A CSV/TSV file has no place for such a mark
  that other programs would ignore, so its size and SHA-256 are recorded in the user's cache
  folder (`guard_registry()`) when some cell got a "'", and reading removes guards from a file
  only while it is byte for byte what was written. A copy moved to another computer, or
  edited, keeps its "'" as text: never a user's character lost, at worst one kept. Parquet
  and JSON lines are written unchanged. CSV/TSV are written as UTF-8 with a BOM so that Excel
  opens them as UTF-8.
* Reading reports what it could not read as the file meant it (formulas without values, a .txt
  file without a final line end) as notes: appended to the `notes` list a caller passes, or
  issued as a `TableWarning`.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import errno
import hashlib
import io
import json
import math
import numbers
import os
import re
import secrets
import sys
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import BertclsError

DELIMITED_SUFFIXES = (".csv", ".tsv", ".tab")
TEXT_SUFFIXES = (".txt",)
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet",)
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    DELIMITED_SUFFIXES + TEXT_SUFFIXES + EXCEL_SUFFIXES + PARQUET_SUFFIXES + JSON_SUFFIXES
)
# .xlsm would lose its macros, .txt its other columns and .json would surprise anyone
# expecting an array, so those are read but not written.
WRITABLE_SUFFIXES: tuple[str, ...] = (
    ".csv",
    ".tsv",
    ".tab",
    ".xlsx",
    ".parquet",
    ".jsonl",
    ".ndjson",
)
TXT_COLUMN = "text"
# The longest cell any reader accepts (spaCy's default `Language.max_length`).
MAX_CELL_CHARS = 1_000_000
# The .xlsx custom document property saying that this project wrote the file (see module doc).
XLSX_GUARD_PROPERTY = "spacy_bertcls_formula_guard"
WRITER_NAME = "spacy-bertcls"
# Where the fingerprints of the guarded CSV/TSV files written here are kept (see the module
# doc); by default the user's cache folder.
CACHE_DIR_ENV = "SPACY_BERTCLS_CACHE_DIR"


class TableWarning(UserWarning):
    """Something a reader read differently from what the file meant (see the module doc)."""


_SNIFF_CHARS = 64 * 1024
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_WHOLE_FILE = sys.maxsize
_EXCEL_MAX_CELL_CHARS = 32_767
_EXCEL_MAX_ROWS = 1_048_576
_FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
# What neutralize_formulas writes: one "'" more than the text had before = + - @ TAB CR.
_GUARDED_FORMULA = re.compile(r"^'+[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# ---------------------------------------------------------------------------------------------
# reading


def read_table(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    nrows: int | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Read a whole table file into a DataFrame.

    path: a file with a suffix from `SUPPORTED_SUFFIXES`.
    sheet: the worksheet (name or 0-based index) of an Excel file; needed when it has several.
    encoding: the text encoding of a CSV/TSV/TXT/JSON file; detected when None.
    nrows: read only the first `nrows` rows (e.g. for a preview). For CSV/TSV the quoting check
        then also looks at these rows only.
    notes: a list that gets a sentence for each thing read differently from what the file
        meant (see the module doc); when None, each is issued as a `TableWarning`.
    RETURNS: all columns, in file order, with a RangeIndex. Empty cells are NaN.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if nrows is not None and nrows < 0:
        raise BertclsError(f"nrows must be 0 or more, not {nrows}.")
    before = _file_state(path)
    if suffix in DELIMITED_SUFFIXES:
        fmt = _delimited_format(path, encoding, limit=nrows)
        guarded = _csv_has_guard_marker(path)
        with _translate_read_errors(path, fmt.encoding):
            frame = pd.read_csv(path, nrows=nrows, **_csv_options(fmt))
        frame.columns = fmt.header
        frame = remove_formula_guards(frame) if guarded else frame
    elif suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path, nrows)
    else:
        frame = _concat(
            list(_iter_chunks(path, suffix, _WHOLE_FILE, sheet, encoding, nrows, notes))
        )
    _check_unchanged(path, before)
    return frame


def iter_table_chunks(
    path: str | Path,
    *,
    chunk_size: int = 2048,
    sheet: str | int | None = None,
    encoding: str | None = None,
    notes: list[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a table file in DataFrames of at most `chunk_size` rows.

    Memory does not grow with the file size (except for a .json file holding one JSON array).
    The chunks carry consecutive RangeIndex values, so `pd.concat(chunks)` equals
    `read_table(path)`. A file with a header but no rows yields one empty DataFrame that still
    has the columns, so callers can always check the columns on the first chunk. Every chunk
    has the same columns (JSON lines are read twice for that: first for the keys). `notes` as
    for `read_table`; notes about the whole file arrive when the last chunk has been read. A
    file whose size or modification time changes while it is read raises BertclsError after
    the last chunk.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if chunk_size < 1:
        raise BertclsError(f"chunk_size must be 1 or more, not {chunk_size}.")
    before = _file_state(path)
    chunks = _iter_chunks(path, suffix, chunk_size, sheet, encoding, None, notes)
    return _checked_unchanged(path, before, chunks)


def count_rows(
    path: str | Path, *, sheet: str | int | None = None, encoding: str | None = None
) -> int | None:
    """Count the data rows of a table file (for progress bars), or None where that is costly.

    CSV/TSV: exact (one parsing pass without building rows). TXT, JSON lines, Parquet: exact and
    cheap. Excel: the sheet's recorded size (or its number of row records), which may include
    trailing empty rows. A .json array: None. `sheet` and `encoding` as for `read_table`.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if suffix in DELIMITED_SUFFIXES:
        return _delimited_format(path, encoding).rows
    if suffix in TEXT_SUFFIXES:
        return sum(1 for _ in _iter_lines(path, _resolve_encoding(path, encoding)))
    if suffix in PARQUET_SUFFIXES:
        return _parquet_file(path).metadata.num_rows
    if suffix in EXCEL_SUFFIXES:
        return _excel_row_count(path, sheet)
    encoding = _resolve_encoding(path, encoding)
    if _is_json_array(path, encoding):
        return None
    return sum(1 for line in _iter_lines(path, encoding) if line.strip())


def list_sheets(path: str | Path) -> list[str]:
    """The worksheet names of an Excel file, in workbook order."""
    path = _existing_file(path)
    if _read_suffix(path) not in EXCEL_SUFFIXES:
        raise BertclsError(f"{path} is not an Excel file ({', '.join(EXCEL_SUFFIXES)}).")
    workbook = _open_workbook(path)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def require_columns(columns: Iterable[str], wanted: Iterable[str], *, source: str) -> None:
    """Raise BertclsError unless every name in `wanted` is exactly one of `columns`.

    The message names the missing column(s), suggests a close match for each and lists the
    columns that exist. A wanted name that several columns share is refused too, since it
    does not say which of them is meant.
    """
    existing = [str(column) for column in columns]
    missing = [name for name in wanted if name not in existing]
    if not missing:
        for name in wanted:
            positions = [i + 1 for i, column in enumerate(existing) if column == name]
            if len(positions) > 1:
                listed = ", ".join(map(str, positions))
                raise BertclsError(
                    f"{source} has {len(positions)} columns named {name!r} (columns {listed}), "
                    "so it is not clear which one is meant. Rename all but one of them."
                )
        return
    hints = [_column_hint(name, existing) for name in missing]
    shown = ", ".join(repr(column) for column in existing[:40])
    if len(existing) > 40:
        shown += f", ... ({len(existing) - 40} more)"
    raise BertclsError(
        f"{source} has no column {' and no column '.join(hints)}. "
        f"Its columns are: {shown or '(none)'}. Pass one of these names exactly."
    )


def text_values(series: pd.Series) -> list[str]:
    """The cells of a column as texts for the model.

    NaN/None become "", integer-valued numbers their integer form ("1", not "1.0"), other
    numbers `str(number)` and everything else `str(value)`.
    """
    return [cell_text(value) for value in series.tolist()]


def cell_text(value: Any) -> str:
    """One cell as text, following the rules of `text_values`."""
    if isinstance(value, str):
        return value
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer():
            return str(int(number))
        return str(number)
    return str(value)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return False


def _column_hint(name: str, existing: list[str]) -> str:
    by_lower = {column.lower(): column for column in existing}
    match = by_lower.get(name.strip().lower())
    if match is None:
        close = difflib.get_close_matches(name, existing, n=1, cutoff=0.6)
        match = close[0] if close else None
    return f"{name!r} (did you mean {match!r}?)" if match else repr(name)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise BertclsError(f"{path} does not exist. Check the path and the file name.")
    if not path.is_file():
        raise BertclsError(f"{path} is a directory, not a table file. Pass the file inside it.")
    return path


def _read_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    hint = " Save it as .xlsx first." if suffix == ".xls" else ""
    raise BertclsError(
        f"{path} has the unsupported suffix {suffix!r}.{hint} "
        f"Supported: {', '.join(SUPPORTED_SUFFIXES)}."
    )


def _check_options(path: Path, suffix: str, *, sheet: Any, encoding: str | None) -> None:
    if sheet is not None and suffix not in EXCEL_SUFFIXES:
        raise BertclsError(
            f"sheet={sheet!r} was given but {path} is not an Excel file; leave the sheet out."
        )
    if encoding is None:
        return
    if suffix in EXCEL_SUFFIXES + PARQUET_SUFFIXES:
        raise BertclsError(
            f"encoding={encoding!r} was given but {path} is a binary format that stores its "
            "own encoding; leave the encoding out."
        )
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BertclsError(
            f"Unknown encoding {encoding!r}. Use a Python codec name such as "
            "'utf-8', 'cp1252' or 'latin-1'."
        ) from None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames)


def _iter_chunks(
    path: Path,
    suffix: str,
    chunk_size: int,
    sheet: str | int | None,
    encoding: str | None,
    nrows: int | None,
    notes: list[str] | None,
) -> Iterator[pd.DataFrame]:
    if suffix in DELIMITED_SUFFIXES:
        return _iter_delimited(path, encoding, chunk_size)
    if suffix in TEXT_SUFFIXES:
        return _iter_txt(path, encoding, chunk_size, nrows, notes)
    if suffix in PARQUET_SUFFIXES:
        return _iter_parquet(path, chunk_size)
    if suffix in EXCEL_SUFFIXES:
        return _iter_excel(path, sheet, chunk_size, nrows, notes)
    return _iter_json(path, encoding, chunk_size, nrows)


def _note(notes: list[str] | None, message: str) -> None:
    if notes is None:
        warnings.warn(message, TableWarning, stacklevel=3)
    else:
        notes.append(message)


def _file_state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _check_unchanged(path: Path, before: tuple[int, int]) -> None:
    if _file_state(path) != before:
        raise BertclsError(
            f"{path} changed while it was being read: another program may still be writing "
            "it. Wait until it has finished and try again."
        )


def _checked_unchanged(
    path: Path, before: tuple[int, int], chunks: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    yield from chunks
    _check_unchanged(path, before)


def _cell_too_long(path: Path, where: str, column: Any, size: int, hint: str = "") -> BertclsError:
    return BertclsError(
        f"{path} {where}, column {column!r} holds a cell of {size:,} characters, more than the "
        f"{MAX_CELL_CHARS:,} that bertcls reads (spaCy's default max_length).{hint} If the "
        "text is real, split it into shorter texts or remove it, then read the file again."
    )


def _half_written(path: Path, line: int, what: str, fix: str) -> BertclsError:
    return BertclsError(
        f"{path} ends in the middle of a row: its last line (line {line}) has no line end and "
        f"{what}. The file may still be being written by another program; wait until it has "
        f"finished and try again. If the file is complete, {fix}."
    )


# --- encoding --------------------------------------------------------------------------------


def _resolve_encoding(path: Path, encoding: str | None) -> str:
    """The encoding given, or the detected one; either way UTF-16 without a BOM is named."""
    if encoding is None:
        return _detect_encoding(path)
    if not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        _refuse_bomless_utf16(path, f"encoding={encoding!r} was given, but ")
    return encoding


def _detect_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) or UTF-16 with a BOM; anything else is refused (see module doc)."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    _refuse_bomless_utf16(path)
    _require_utf8(path)
    return "utf-8"


def _refuse_bomless_utf16(path: Path, given: str = "") -> None:
    """Refuse a file whose every second byte is 0: UTF-16 text without a byte-order mark.

    Such a file is valid UTF-8 (NUL is a character) and would be read with a NUL between
    every two letters of the column names, so it is recognized by its NUL bytes in the first
    4 KiB: at a quarter or more of the odd positions and almost none of the even ones
    (little-endian), or the other way round (big-endian). A stray NUL is not enough.
    """
    with open(path, "rb") as file:
        head = file.read(4096)
    head = head[: len(head) // 2 * 2]
    pairs = len(head) // 2
    nul_even, nul_odd = head[0::2].count(0), head[1::2].count(0)
    if pairs < 2:
        return
    for name, many, few in (("utf-16-le", nul_odd, nul_even), ("utf-16-be", nul_even, nul_odd)):
        # A quarter: even text in CJK scripts has ASCII digits, delimiters and line ends.
        if many >= max(2, pairs / 4) and few <= many / 10:
            raise BertclsError(
                f"{given}{path} looks like UTF-16 without a byte-order mark ({many:,} of its "
                f"first {pairs:,} character pairs hold a 0 byte); pass --encoding {name} "
                f"(encoding={name!r} in Python), or save the file as UTF-8."
            )


def _require_utf8(path: Path, block_size: int = 1 << 20) -> None:
    carry = b""  # the start of a character cut by the end of the previous block
    offset = 0  # file position of data[0]
    lines_before = 0  # newlines before data[0]
    with open(path, "rb") as file:
        while True:
            block = file.read(block_size)
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as error:
                if not (block and error.reason == "unexpected end of data"):
                    line_no = lines_before + data.count(b"\n", 0, error.start) + 1
                    raise _not_utf8_error(path, offset + error.start, line_no) from None
                carry, data = data[error.start :], data[: error.start]
            if not block:
                return
            offset += len(data)
            lines_before += data.count(b"\n")


def _not_utf8_error(path: Path, position: int, line_no: int) -> BertclsError:
    with open(path, "rb") as file:
        file.seek(max(position - 200, 0))
        around = file.read(400)
    at = min(position, 200)
    line = around[around.rfind(b"\n", 0, at) + 1 :].split(b"\n", 1)[0][:120]
    as_cp1252 = line.decode("cp1252", errors="replace").rstrip("\r")
    return BertclsError(
        f"{path} is not UTF-8 text: byte 0x{around[at]:02X} on line {line_no} is not valid "
        f"UTF-8. Read as cp1252 (Windows, Western Europe) that line is: {as_cp1252!r}. If that "
        "looks right, pass encoding='cp1252' (or 'latin-1'); otherwise pass the file's real "
        "encoding, or save the file again as 'CSV UTF-8'."
    )


# --- CSV / TSV -------------------------------------------------------------------------------


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


class _Lines:
    """The lines of a text file (line ends kept), remembering the last one and their count."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.last = ""
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.file:
            self.last = line
            self.count += 1
            yield line


def _delimited_format(path: Path, encoding: str | None, limit: int | None = None) -> _Delimited:
    encoding = _resolve_encoding(path, encoding)
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
            raise _half_written(
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
        raise _cell_too_long(path, where, scan.header[column], size, hint)
    if not scan.ends_with_line_end and scan.last_cells is not None and scan.last_cells < width:
        raise _half_written(
            path,
            scan.last_line,
            f"holds {scan.last_cells} of the header's {width} cells",
            "end its last line with a line break (a short row is then read with empty cells)",
        )
    return _Delimited(encoding, sep, quoting, scan.rows, scan.header)


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with _translate_read_errors(path, encoding):
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
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding, newline="") as file:
            lines = _Lines(file)
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


def _iter_delimited(path: Path, encoding: str | None, chunk_size: int) -> Iterator[pd.DataFrame]:
    fmt = _delimited_format(path, encoding)
    guarded = _csv_has_guard_marker(path)
    with _translate_read_errors(path, fmt.encoding):
        with pd.read_csv(path, chunksize=chunk_size, **_csv_options(fmt)) as reader:
            for chunk in reader:
                chunk.columns = fmt.header
                yield remove_formula_guards(chunk) if guarded else chunk


def _csv_has_guard_marker(path: Path) -> bool:
    """Whether this project wrote `path`, byte for byte, with formula guards in it."""
    registry = guard_registry()
    size = path.stat().st_size
    # The size is part of each entry's name, so most files are never hashed.
    if not registry.is_dir() or next(registry.glob(f"{size}-*"), None) is None:
        return False
    return (registry / f"{size}-{_sha256(path)}").exists()


def guard_registry() -> Path:
    """The folder holding a fingerprint ("<size>-<sha256>") of each guarded CSV/TSV written."""
    root = os.environ.get(CACHE_DIR_ENV)
    if root:
        return Path(root) / "formula-guards"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "spacy-bertcls" / "formula-guards"


def _register_guards(written: Path, path: Path) -> None:
    """Record that the bytes of `written` (to become `path`) hold guards this project wrote."""
    registry = guard_registry()
    entry = registry / f"{written.stat().st_size}-{_sha256(written)}"
    try:
        registry.mkdir(parents=True, exist_ok=True)
        entry.touch()
    except OSError as error:
        warnings.warn(
            f"Could not record in {registry} that {path} holds formula guards "
            f'({error.strerror or error}), so reading it will keep their "\'". Set '
            f"{CACHE_DIR_ENV} to a folder you can write to.",
            TableWarning,
            stacklevel=4,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _translate_read_errors(path: Path, encoding: str | None) -> Iterator[None]:
    """Turn decoding and parsing errors into BertclsError naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise BertclsError(
            f"{path} cannot be read as {encoding}: {error.reason} (byte "
            f"0x{error.object[error.start]:02X}). Pass the file's real encoding."
        ) from error
    except pd.errors.EmptyDataError as error:
        raise BertclsError(f"{path} is empty: it has no header line.") from error
    except pd.errors.ParserError as error:
        raise BertclsError(f"{path} could not be parsed as a table: {error}") from error


# --- plain text ------------------------------------------------------------------------------


def _iter_lines(path: Path, encoding: str) -> Iterator[str]:
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            for line in file:
                yield line.rstrip("\n")


def _iter_txt(
    path: Path, encoding: str | None, chunk_size: int, nrows: int | None, notes: list[str] | None
) -> Iterator[pd.DataFrame]:
    encoding = _resolve_encoding(path, encoding)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one text per line.")
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            lines = _Lines(file)
            texts = (_txt_line(path, n, line) for n, line in enumerate(lines, start=1))
            start = 0
            for batch in _batches(texts, chunk_size, nrows):
                texts_array = pd.array([line or None for line in batch], dtype="str")
                index = pd.RangeIndex(start, start + len(batch))
                yield pd.DataFrame({TXT_COLUMN: texts_array}, index=index)
                start += len(batch)
    if nrows is None and lines.count and not lines.last.endswith("\n"):
        # Editors often leave out the last line end, so this cannot be refused as in a CSV.
        _note(
            notes,
            f"The last line of {path} (line {lines.count:,}) has no line end. If another "
            "program was still writing the file, that text may be cut off: then wait until it "
            "has finished and read the file again.",
        )


def _txt_line(path: Path, number: int, line: str) -> str:
    line = line.rstrip("\n")
    if len(line) > MAX_CELL_CHARS:
        raise _cell_too_long(path, f"line {number:,}", TXT_COLUMN, len(line))
    return line


def _batches(items: Iterator[Any], size: int, limit: int | None) -> Iterator[list[Any]]:
    """Lists of at most `size` items, `limit` items in all; always at least one list."""
    batch: list[Any] = []
    taken = 0
    yielded = False
    for item in items:
        if limit is not None and taken >= limit:
            break
        batch.append(item)
        taken += 1
        if len(batch) == size:
            yield batch
            yielded, batch = True, []
    if batch or not yielded:
        yield batch


# --- records (Excel, JSON): per-chunk dtypes -------------------------------------------------


class _RecordFrames:
    """Build chunk DataFrames from rows of Python values with stable dtypes across chunks.

    pandas infers each column's dtype from its values, with two losses mended here: integers
    with empty cells would become floats (1 -> 1.0, and large ids lose digits), so they become
    pandas' nullable "Int64"; and a column that is empty in one chunk has no values to infer
    from, so it takes the dtype the column had in earlier chunks (text if none yet) instead of
    pandas' object dtype, which would turn the concatenation into object. Columns are handled
    by position, so duplicate names are kept.
    """

    def __init__(self) -> None:
        self.start = 0
        self.dtypes: dict[int, Any] = {}

    def frame(self, rows: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
        index = pd.RangeIndex(self.start, self.start + len(rows))
        self.start += len(rows)
        if not rows:
            frame = pd.DataFrame({j: pd.Series(dtype="str") for j in range(len(columns))})
        else:
            frame = pd.DataFrame(
                {j: self._column(j, [row[j] for row in rows], index) for j in range(len(columns))},
                index=index,
            )
        frame.columns = columns
        return frame

    def _column(self, j: int, values: list[Any], index: pd.RangeIndex) -> pd.Series:
        present = [value for value in values if not _is_missing(value)]
        if not present:
            return pd.Series(np.nan, index=index).astype(self._empty_dtype(j))
        before = self.dtypes.get(j)
        if (
            len(present) < len(values)
            and (before is None or pd.api.types.is_integer_dtype(before))
            and all(_is_int(value) for value in present)
        ):
            try:
                series = pd.Series(values, index=index, dtype="Int64")
            except (OverflowError, TypeError, ValueError):  # beyond 64 bits: keep the ints
                series = pd.Series(values, index=index, dtype=object)
        else:
            series = pd.Series(values, index=index)
        if pd.api.types.is_object_dtype(series) and len(present) < len(values):
            series = series.where(series.notna(), np.nan)  # one kind of missing, as pandas has
        self.dtypes[j] = series.dtype
        return series

    def _empty_dtype(self, j: int) -> Any:
        dtype = self.dtypes.get(j)
        if dtype is None:
            return "str"
        if pd.api.types.is_integer_dtype(dtype):
            return "Int64"
        if pd.api.types.is_bool_dtype(dtype):
            return "object"
        return dtype


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


# --- Excel -----------------------------------------------------------------------------------


def _open_workbook(path: Path, *, data_only: bool = True) -> Any:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # data_only: the values Excel last computed, not the formulas' source text.
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        raise BertclsError(
            f"{path} could not be opened as an Excel workbook ({error}). Check that it is a "
            ".xlsx/.xlsm file saved by Excel (or LibreOffice) and not a renamed CSV."
        ) from error


def _worksheet(workbook: Any, path: Path, sheet: str | int | None) -> Any:
    names = list(workbook.sheetnames)
    listed = ", ".join(repr(name) for name in names)
    if sheet is None:
        if len(names) > 1:
            raise BertclsError(
                f"{path} has {len(names)} sheets: {listed}. Choose one with sheet= "
                "(CLI: --sheet NAME)."
            )
        return workbook[names[0]]
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise BertclsError(
                f"{path} has no sheet number {sheet}; it has {len(names)} sheets "
                f"(0 to {len(names) - 1}): {listed}."
            )
        return workbook[names[sheet]]
    if sheet not in names:
        close = difflib.get_close_matches(sheet, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BertclsError(f"{path} has no sheet {sheet!r}.{hint} Its sheets are: {listed}.")
    return workbook[sheet]


def _excel_row_count(path: Path, sheet: str | int | None) -> int | None:
    workbook = _open_workbook(path)
    try:
        worksheet = _worksheet(workbook, path, sheet)
        max_row = worksheet.max_row
        if max_row is None:
            # No recorded size (openpyxl's write-only mode leaves it out): count the <row>
            # tags of the sheet's XML, which is much cheaper than parsing the cells.
            max_row = _count_xml_rows(worksheet)
    finally:
        workbook.close()
    return None if max_row is None else max(max_row - 1, 0)


_XML_ROW = re.compile(rb"<(?:\w+:)?row[\s/>]")


def _count_xml_rows(worksheet: Any) -> int | None:
    open_source = getattr(worksheet, "_get_source", None)  # openpyxl's read-only internals
    if open_source is None:
        return None
    rows, tail = 0, b""
    with open_source() as source:
        while block := source.read(1 << 20):
            data = tail + block
            # A tag starting in the last bytes may be cut; it is counted with the next block.
            cut = max(len(data) - 32, 0)
            rows += sum(1 for match in _XML_ROW.finditer(data) if match.start() < cut)
            tail = data[cut:]
    rows += len(_XML_ROW.findall(tail))
    return rows


def _iter_excel(
    path: Path, sheet: str | int | None, chunk_size: int, nrows: int | None, notes: list[str] | None
) -> Iterator[pd.DataFrame]:
    workbook = _open_workbook(path)
    formulas_book = None
    try:
        worksheet = _worksheet(workbook, path, sheet)
        guarded = _excel_has_guard_marker(workbook)
        rows: Iterator[tuple[Any, ...]] = worksheet.iter_rows(values_only=True)
        unsaved: list[tuple[int, int]] = []  # (row, column) of formulas without a value
        if _has_formulas(worksheet):
            formulas_book = _open_workbook(path, data_only=False)
            formulas = _worksheet(formulas_book, path, sheet).iter_rows(values_only=True)
            rows = _formula_text_for_unsaved(rows, formulas, unsaved)
        header = next(rows, None)
        columns = _excel_columns(header, path, worksheet.title)
        records = _excel_records(rows, len(columns), path, worksheet.title, columns)
        frames = _RecordFrames()
        for batch in _batches(records, chunk_size, nrows):
            frame = frames.frame(batch, columns)
            yield remove_formula_guards(frame) if guarded else frame
        if unsaved:
            _note(notes, _unsaved_formulas_note(path, worksheet.title, unsaved))
    finally:
        workbook.close()
        if formulas_book is not None:
            formulas_book.close()


def _excel_has_guard_marker(workbook: Any) -> bool:
    properties = getattr(workbook, "custom_doc_props", None) or ()
    return any(prop.name == XLSX_GUARD_PROPERTY and prop.value == "'" for prop in properties)


_XML_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _has_formulas(worksheet: Any) -> bool:
    """Whether the sheet's XML holds a formula (cheaper than parsing its cells twice)."""
    open_source = getattr(worksheet, "_get_source", None)  # openpyxl's read-only internals
    if open_source is None:
        return True
    tail = b""
    with open_source() as source:
        while block := source.read(1 << 20):
            if _XML_FORMULA.search(tail + block):
                return True
            tail = block[-16:]
    return False


def _formula_text_for_unsaved(
    values: Iterator[tuple[Any, ...]],
    formulas: Iterator[tuple[Any, ...]],
    unsaved: list[tuple[int, int]],
) -> Iterator[tuple[Any, ...]]:
    """The saved values, with a formula's text where the formula has no saved value."""
    for number, (row, formula_row) in enumerate(zip(values, formulas), start=1):
        cells = list(row)
        for j, (value, formula) in enumerate(zip(row, formula_row)):
            if value is None and formula is not None:
                text = getattr(formula, "text", formula)  # array formulas are objects
                if isinstance(text, str) and text.startswith("="):
                    cells[j] = text
                    unsaved.append((number, j))
        yield tuple(cells)


def _unsaved_formulas_note(path: Path, title: str, unsaved: list[tuple[int, int]]) -> str:
    from openpyxl.utils import get_column_letter

    row, column = unsaved[0]
    return (
        f"{len(unsaved):,} formula cells of sheet {title!r} in {path} have no saved value "
        f"(first: {get_column_letter(column + 1)}{row}), as in files written by programs that "
        "do not calculate formulas. Their formula text is read instead (and kept in a labeled "
        "copy). To read their values, open the file in Excel or LibreOffice and save it."
    )


def _excel_columns(header: tuple[Any, ...] | None, path: Path, title: str) -> list[str]:
    cells = list(header or ())
    while cells and cells[-1] is None:
        cells.pop()
    if not cells:
        raise BertclsError(
            f"Sheet {title!r} of {path} is empty or its first row is empty. The first row "
            "must hold the column names."
        )
    # Duplicate names are kept as they are (see the module doc).
    return [f"Unnamed: {i}" if cell is None else cell_text(cell) for i, cell in enumerate(cells)]


def _excel_records(
    rows: Iterator[tuple[Any, ...]], width: int, path: Path, title: str, columns: list[str]
) -> Iterator[tuple[Any, ...]]:
    # Empty rows inside the data are kept (they are rows of the sheet); trailing ones are
    # formatting leftovers and dropped, as pandas does.
    empty_run = 0
    for number, row in enumerate(rows, start=2):
        cells = tuple(row)
        if any(cell is not None for cell in cells[width:]):
            raise BertclsError(
                f"Row {number} of sheet {title!r} in {path} has a value beyond the last "
                f"column with a name (column {width}). Give that column a header."
            )
        cells = cells[:width] + (None,) * (width - len(cells))
        if all(cell is None for cell in cells):
            empty_run += 1
            continue
        for j, cell in enumerate(cells):
            if isinstance(cell, str) and len(cell) > MAX_CELL_CHARS:
                where = f"sheet {title!r} row {number:,}"
                raise _cell_too_long(path, where, columns[j], len(cell))
        for _ in range(empty_run):
            yield (None,) * width
        empty_run = 0
        yield cells


# --- JSON lines ------------------------------------------------------------------------------


def _is_json_array(path: Path, encoding: str) -> bool:
    with open(path, encoding=encoding) as file:
        head = file.read(4096).lstrip()
    return head.startswith("[")


def _iter_json(
    path: Path, encoding: str | None, chunk_size: int, nrows: int | None
) -> Iterator[pd.DataFrame]:
    encoding = _resolve_encoding(path, encoding)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one JSON object per line.")
    records: Iterable[dict[str, Any]]
    if path.suffix.lower() == ".json" and _is_json_array(path, encoding):
        records = _json_array(path, encoding)[:nrows]
        columns = _json_keys(records)
    elif chunk_size == _WHOLE_FILE:
        records = list(islice(_json_lines(path, encoding), nrows))
        columns = _json_keys(records)
    else:
        # A first pass finds every key, so that every chunk has every column: a writer needs
        # them all for its header, and a key that appears late is no reason to refuse a file.
        columns = _json_keys(_json_lines(path, encoding))
        records = _json_lines(path, encoding)
    frames = _RecordFrames()
    for batch in _batches(iter(records), chunk_size, nrows):
        rows = [tuple(record.get(key) for key in columns) for record in batch]
        yield frames.frame(rows, columns)


def _json_keys(records: Iterable[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}  # an ordered set: keys in order of first appearance
    for record in records:
        keys.update(dict.fromkeys(record))
    return list(keys)


def _json_lines(path: Path, encoding: str) -> Iterator[dict[str, Any]]:
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    if not line.endswith("\n"):  # only the last line can lack one
                        raise _half_written(
                            path, number, "is not valid JSON", "complete or remove its last line"
                        ) from None
                    raise BertclsError(
                        f"{path} line {number} is not valid JSON ({error.msg}). Each line must "
                        'be one JSON object, e.g. {"text": "...", "label": "..."}.'
                    ) from None
                yield _json_record(record, path, f"line {number:,}")


def _json_array(path: Path, encoding: str) -> list[dict[str, Any]]:
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise BertclsError(f"{path} is not valid JSON ({error}).") from None
    return [_json_record(item, path, f"item {i}") for i, item in enumerate(data)]


def _json_record(record: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BertclsError(
            f"{path} {where} is a JSON {type(record).__name__}, not an object. Each row must "
            'be an object such as {"text": "...", "label": "..."}.'
        )
    for key, value in record.items():
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise _cell_too_long(path, where, key, len(value))
    return record


# --- Parquet ---------------------------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise BertclsError(f"{path} could not be read as Parquet ({error}).") from error


def _read_parquet(path: Path, nrows: int | None) -> pd.DataFrame:
    import pyarrow as pa

    parquet = _parquet_file(path)
    if nrows is None:
        table = parquet.read()
    else:
        # Read only the batches a preview needs.
        batches, taken = [], 0
        for batch in parquet.iter_batches(batch_size=max(1, min(nrows, 65_536))):
            if taken >= nrows:
                break
            batches.append(batch.slice(0, nrows - taken))
            taken += len(batches[-1])
        table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
    _check_parquet_cells(path, table, 0)
    frame = _arrow_to_pandas(table)
    frame.index = pd.RangeIndex(len(frame))
    return frame


def _iter_parquet(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    parquet = _parquet_file(path)
    start = 0
    for batch in parquet.iter_batches(batch_size=chunk_size):
        table = pa.Table.from_batches([batch])
        _check_parquet_cells(path, table, start)
        frame = _arrow_to_pandas(table)
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame
    if start == 0:
        yield _arrow_to_pandas(parquet.schema_arrow.empty_table())


def _arrow_to_pandas(table: Any) -> pd.DataFrame:
    """The table as pandas, keeping the Arrow types that numpy dtypes would change.

    Integers and booleans become pandas' nullable dtypes (an empty cell would otherwise turn
    them into floats or objects); structs, lists, maps, decimals, dates, times and binaries
    stay Arrow-backed (`pd.ArrowDtype`), so that writing the rows to Parquet again gives the
    input's types. Timestamps, floats, strings and dictionaries convert without loss.
    """
    return table.to_pandas(types_mapper=_pandas_dtype)


_NULLABLE_INTS = {
    f"{sign}int{bits}": f"{sign.upper()}Int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)
}


def _pandas_dtype(arrow_type: Any) -> Any:
    import pyarrow as pa

    types = pa.types
    if types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if types.is_integer(arrow_type):
        return pd.api.types.pandas_dtype(_NULLABLE_INTS[str(arrow_type)])
    if (
        types.is_nested(arrow_type)
        or types.is_decimal(arrow_type)
        or types.is_date(arrow_type)
        or types.is_time(arrow_type)
        or types.is_binary(arrow_type)
        or types.is_large_binary(arrow_type)
        or types.is_fixed_size_binary(arrow_type)
    ):
        return pd.ArrowDtype(arrow_type)
    return None


def _check_parquet_cells(path: Path, table: Any, start: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, column in zip(table.column_names, table.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        lengths = pc.utf8_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > MAX_CELL_CHARS:
            row = pc.index(pc.greater(lengths, MAX_CELL_CHARS), True).as_py()
            raise _cell_too_long(path, f"row {start + row + 1:,}", name, longest)


# ---------------------------------------------------------------------------------------------
# writing


def check_not_same_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    option: str | None = None,
    example: str | None = None,
) -> None:
    """Raise BertclsError if writing `output_path` would overwrite `input_path`.

    The same path, a symbolic link to it and a hard link to it all count as the input.
    option: the command line option naming the output, shown in the message ("--report").
    example: a better output name for the message (default: the input's name + "_labeled").
    """
    source, target = Path(input_path), Path(output_path)
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        same = os.path.samefile(source, target)
    if same:
        name = f"{option} {target}" if option else f"The output {target}"
        example = example or f"{source.stem}_labeled{source.suffix}"
        raise BertclsError(
            f"{name} is the input file {source}: writing it would destroy the input. "
            f"Choose another output name, e.g. {example}."
        )


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a whole DataFrame to `path` (format from the suffix), atomically."""
    with TableWriter(path, columns=[str(column) for column in df.columns]) as writer:
        writer.write(df)


class TableWriter:
    """Write a table in chunks, atomically, in the format given by the file's suffix.

    with TableWriter("labeled.xlsx") as writer:
        for chunk in chunks:
            writer.write(chunk)

    Rows go to a hidden temporary file next to `path`, which replaces `path` only when the
    `with` block ends without an exception. On any exception (KeyboardInterrupt included) the
    temporary file is deleted and an older file under `path` is left as it was.

    path: the output file; its suffix must be one of `WRITABLE_SUFFIXES`.
    columns: the output's columns in order; by default those of the first chunk. Every chunk
        must have these columns (a missing one is written empty). Duplicate names are written
        as they are to CSV/TSV/XLSX and refused for Parquet and JSON lines.

    A CSV/TSV file in which some cell got a formula guard is recorded in `guard_registry()`,
    and an .xlsx file gets the property `XLSX_GUARD_PROPERTY`, so that reading it removes
    exactly these guards (see the module doc).
    """

    def __init__(self, path: str | Path, *, columns: list[str] | None = None) -> None:
        self.path = Path(path)
        self.suffix = _write_suffix(self.path)
        self.columns = list(columns) if columns is not None else None
        self.rows_written = 0
        self._written = False  # a chunk, maybe empty, went out (with the header)
        self._tmp: Path | None = None
        self._sink: _Sink | None = None

    def __enter__(self) -> TableWriter:
        self._tmp = _create_temp_file(self.path)
        try:
            self._sink = _make_sink(self.suffix, self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self

    def write(self, df: pd.DataFrame) -> None:
        """Append the rows of `df` (its index is not written)."""
        if self._sink is None:
            raise RuntimeError("TableWriter.write() must be called inside its `with` block.")
        if self.columns is None:
            self.columns = [str(column) for column in df.columns]
        if not self._written:
            self.check_columns(self.columns)
        self._sink.write(self._align(df), self.rows_written, header=not self._written)
        self.rows_written += len(df)
        self._written = True

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._tmp is not None and self._sink is not None
        sink, tmp = self._sink, self._tmp
        self._sink = None
        try:
            if exc_type is None:
                with disk_full_errors(self.path):
                    if not self._written:
                        empty = pd.DataFrame(columns=self.columns or []).astype("str")
                        sink.write(empty, 0, header=True)
                    sink.close()
                    # On disk before the rename, so a crash cannot leave an empty file under
                    # the final name.
                    with open(tmp, "rb") as written:
                        os.fsync(written.fileno())
                    if sink.guarded and self.suffix in DELIMITED_SUFFIXES:
                        _register_guards(tmp, self.path)
                    os.replace(tmp, self.path)
            else:
                sink.abort()
        finally:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            # A full disk met by write(): the temporary file is gone, say what happened.
            raise write_error(self.path, exc) from exc

    def check_columns(self, columns: Iterable[Any]) -> None:
        """Raise BertclsError if this format cannot hold columns of these names."""
        names = [str(column) for column in columns]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated and self.suffix in (".parquet", ".jsonl", ".ndjson"):
            listed = ", ".join(f"{name!r} ({names.count(name)} times)" for name in repeated)
            raise BertclsError(
                f"Cannot write {self.path}: the table has several columns named {listed}, and "
                f"{self.suffix} cannot hold two columns of one name. Write .csv or .xlsx, which "
                "keep them, or rename the columns in the input."
            )

    def _align(self, df: pd.DataFrame) -> pd.DataFrame:
        assert self.columns is not None
        names = [str(column) for column in df.columns]
        extra = [name for name in names if name not in self.columns]
        if extra:
            raise BertclsError(
                f"Rows for {self.path} have columns {extra} that the first rows did not have "
                f"({self.columns}); every chunk must have the same columns."
            )
        df = df.set_axis(names, axis=1)
        if names == self.columns:
            return df
        return df.reindex(columns=self.columns)


def _write_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise BertclsError(
            f"Cannot write {path}: unsupported output suffix {suffix!r}. "
            f"Use one of: {', '.join(WRITABLE_SUFFIXES)}."
        )
    return suffix


def _create_temp_file(path: Path) -> Path:
    directory = path.parent
    if path.is_dir():
        raise BertclsError(f"Cannot write {path}: it is a directory. Give a file name.")
    if not directory.is_dir():
        raise BertclsError(
            f"Cannot write {path}: the directory {directory} does not exist. Create it first."
        )
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with a mode (not mkstemp's 0600) so the final file gets the usual umask.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise write_error(path, error) from error
    return tmp


def neutralize_formulas(series: pd.Series) -> pd.Series:
    """Prefix "'" to text cells that a spreadsheet program would run as a formula.

    Text starting with = + - @ TAB or CR is prefixed, except plain numbers such as "-5" or
    "+1.5", which a spreadsheet reads as numbers anyway. Non-text cells are unchanged.
    """
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        risky = series.str.match(_FORMULA_START, na=False) & ~series.str.match(
            _PLAIN_NUMBER, na=False
        )
        return series.mask(risky, "'" + series) if risky.any() else series
    if pd.api.types.is_object_dtype(series):
        return series.map(_neutralize_value)
    return series


def remove_formula_guards(df: pd.DataFrame) -> pd.DataFrame:
    """Undo `neutralize_formulas` on the text cells and column names of a read table.

    Only for a file this project wrote (see the module doc): in any other file a "'" before
    = + - @ is the text's own.
    """
    unguarded = {}
    for j in range(df.shape[1]):
        series = df.iloc[:, j]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        try:
            guarded = series.str.match(_GUARDED_FORMULA, na=False).astype(bool)
        except AttributeError:  # an object column without any text
            continue
        if guarded.any():
            unguarded[j] = series.mask(guarded, series.str.slice(1))
    names = [_unguard_value(name) for name in df.columns]
    if not unguarded and names == list(df.columns):
        return df
    df = df.copy()
    for j, series in unguarded.items():
        df.isetitem(j, series)
    df.columns = names
    return df


def _neutralize_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """`neutralize_formulas` on every column (by position); also whether a cell changed."""
    columns = [df.iloc[:, j] for j in range(df.shape[1])]
    safe = [neutralize_formulas(column) for column in columns]
    if all(new is old or new.equals(old) for new, old in zip(safe, columns)):
        return df, False
    frame = pd.concat(safe, axis=1, ignore_index=True)
    frame.columns = df.columns
    return frame, True


def _is_guarded(value: Any) -> bool:
    return isinstance(value, str) and _GUARDED_FORMULA.match(value) is not None


def _unguard_value(value: Any) -> Any:
    return value[1:] if _is_guarded(value) else value


def _neutralize_value(value: Any) -> Any:
    if isinstance(value, str) and _FORMULA_START.match(value) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


class _Sink:
    """One output format: write chunks to the temporary file, then close or abort."""

    guarded = False  # some cell or name got a formula guard

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        """Append `df`, preceded by the column names if `header` (formats that have one)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.close()


def _make_sink(suffix: str, tmp: Path, final: Path) -> _Sink:
    if suffix in (".csv", ".tsv", ".tab"):
        return _CsvSink(tmp, "," if suffix == ".csv" else "\t")
    if suffix == ".xlsx":
        return _ExcelSink(tmp, final)
    if suffix == ".parquet":
        return _ParquetSink(tmp, final)
    return _JsonlSink(tmp)


class _CsvSink(_Sink):
    def __init__(self, tmp: Path, sep: str) -> None:
        # BOM: Excel opens BOM-less CSV in the local code page and garbles non-ASCII text.
        self.file = open(tmp, "w", encoding="utf-8-sig", newline="")
        self.sep = sep

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        safe, guarded = _neutralize_frame(df)
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


class _JsonlSink(_Sink):
    def __init__(self, tmp: Path) -> None:
        self.file = open(tmp, "w", encoding="utf-8")

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        if not len(df):
            return
        text = df.to_json(
            orient="records", lines=True, force_ascii=False, date_format="iso", double_precision=15
        )
        self.file.write(text if text.endswith("\n") else text + "\n")

    def close(self) -> None:
        self.file.close()


class _ParquetSink(_Sink):
    def __init__(self, tmp: Path, final: Path) -> None:
        self.tmp = tmp
        self.final = final
        self.schema: Any = None
        self.writer: Any = None

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = self._prepare(df)
        try:
            table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise BertclsError(
                f"Cannot write rows {rows_before + 1}- of {self.final}: a column's type differs "
                f"from the earlier rows ({error}). Write .csv or .jsonl instead."
            ) from error
        if self.writer is None:
            # pandas holds text as large_string; string is what Parquet inputs usually have, and
            # it keeps a Parquet input's schema unchanged.
            fields = [
                field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
                for field in table.schema
            ]
            self.schema = pa.schema(fields, metadata=table.schema.metadata)
            table = table.cast(self.schema)
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.writer.write_table(table)

    def _prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        """Turn mixed-type columns (and values meant for text columns) into text."""
        import pyarrow as pa

        df = df.copy()
        for column in df.columns:
            series = df[column]
            target = None if self.schema is None else self.schema.field(column).type
            wants_text = target is not None and (
                pa.types.is_string(target) or pa.types.is_large_string(target)
            )
            if pd.api.types.is_object_dtype(series) or (
                wants_text and not pd.api.types.is_string_dtype(series)
            ):
                df[column] = _text_keep_missing(series)
        return df

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _text_keep_missing(series: pd.Series) -> pd.Series:
    values = [None if _is_missing(value) else cell_text(value) for value in series.tolist()]
    return pd.Series(values, index=series.index, dtype="str")


class _ExcelSink(_Sink):
    def __init__(self, tmp: Path, final: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.packaging.custom import StringProperty

        self.tmp = tmp
        self.final = final
        self.workbook = Workbook(write_only=True)
        self.workbook.properties.creator = WRITER_NAME
        self.workbook.custom_doc_props.append(StringProperty(name=XLSX_GUARD_PROPERTY, value="'"))
        self.sheet = self.workbook.create_sheet("Sheet1")

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        columns = [str(column) for column in df.columns]
        if header:
            self.sheet.append([self._cell(name, 1, name) for name in columns])
        if rows_before + len(df) >= _EXCEL_MAX_ROWS:
            raise BertclsError(
                f"Cannot write {self.final}: more than {_EXCEL_MAX_ROWS - 1:,} rows, the most "
                "an Excel sheet holds. Write .csv or .parquet instead."
            )
        for offset, row in enumerate(df.itertuples(index=False, name=None)):
            row_number = rows_before + offset + 2
            self.sheet.append(
                [self._cell(value, row_number, name) for value, name in zip(row, columns)]
            )

    def _cell(self, value: Any, row_number: int, column: str) -> Any:
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        if _is_missing(value):
            return None
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, pd.Timestamp):
            value = value.tz_localize(None) if value.tzinfo else value
            return value.to_pydatetime()
        if isinstance(value, bool | int | float):
            return value
        if not isinstance(value, str):
            value = str(value)
        # XML reads every CR as LF anyway; doing it here keeps "\r=x" from getting a guard
        # that reading could no longer recognize ("'\n=x").
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        safe = _neutralize_value(value)
        self.guarded = self.guarded or safe is not value
        value = safe
        if len(value) > _EXCEL_MAX_CELL_CHARS:
            raise BertclsError(
                f"Cannot write {self.final}: row {row_number}, column {column!r} has "
                f"{len(value):,} characters, more than the {_EXCEL_MAX_CELL_CHARS:,} an Excel "
                "cell holds. Write .csv, .parquet or .jsonl instead."
            )
        if ILLEGAL_CHARACTERS_RE.search(value):
            raise BertclsError(
                f"Cannot write {self.final}: row {row_number}, column {column!r} contains "
                "control characters that .xlsx cannot store. Write .csv or .parquet instead."
            )
        return value

    def close(self) -> None:
        self.workbook.save(self.tmp)

    def abort(self) -> None:
        # Saving is openpyxl's only public way to finish the sheet and delete the temporary
        # files it keeps elsewhere; the saved file is removed anyway. An error here would hide
        # the one that caused the abort, so it is suppressed.
        with suppress(Exception):
            self.workbook.save(self.tmp)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it onto ``path``.

    Readers never see half a file, and on any failure (a full disk, an interrupt) the
    temporary file is removed and nothing new exists under ``path``: an older file there is
    left as it was. The data is flushed to the disk before the rename, so that a crash right
    after it cannot leave an empty file under ``path`` either.
    """
    path = Path(path)
    tmp = _create_temp_file(path)
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        tmp.unlink(missing_ok=True)
    return path


_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def write_error(path: str | Path, error: OSError) -> BertclsError:
    """The BertclsError for an OSError met while writing ``path``; a full disk says so."""
    path = Path(path)
    if error.errno in _DISK_FULL:
        return BertclsError(
            f"Cannot write {path}: the disk holding the folder {path.absolute().parent} is full "
            f"({error.strerror or error}). Free some space there or choose a folder on another "
            "disk."
        )
    return BertclsError(
        f"Cannot write {path}: {error.strerror or error}. Choose a folder you can write to."
    )


@contextmanager
def disk_full_errors(path: str | Path) -> Iterator[None]:
    """Turn a full disk met while writing ``path`` (the temporary file is gone by then) into
    a BertclsError that names the folder. Other OSErrors pass, since reading the input can
    raise them too."""
    try:
        yield
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise write_error(path, error) from error
        raise


def check_output_file(path: str | Path, *, option: str, example: str = "out.csv") -> None:
    """Raise BertclsError unless ``path`` can become an output file (checked before any work).

    It must not be a folder (a folder is never deleted to make room), and the folder it goes
    into, or the nearest existing one above it (missing ones are created), must be writable.
    example: a file name for the message, suggested inside a folder given by mistake.
    """
    path = Path(path)
    if path.is_dir():
        raise BertclsError(
            f"{option} {path} is a folder; it needs a file name, e.g. {path / example}."
        )
    _check_writable_folder(path.parent, option=option, output=path)


def check_output_folder(path: str | Path, *, option: str) -> None:
    """Raise BertclsError unless ``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BertclsError(f"{option} {path} is a file; it needs a folder (created if missing).")
    _check_writable_folder(path, option=option, output=path)


def make_output_folder(path: str | Path, *, option: str = "The output folder") -> Path:
    """Create the folder ``path`` (and its parents) for outputs, or raise BertclsError."""
    path = Path(path)
    check_output_folder(path, option=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BertclsError(
            f"Cannot create the folder {path}: {error.strerror or error}. Choose a folder you "
            "can write to."
        ) from error
    return path


def check_outside_folder(folder: str | Path, output: str | Path, *, option: str) -> None:
    """Raise BertclsError if ``output`` is ``folder`` or inside it (a folder being read)."""
    folder, output = Path(folder), Path(output)
    inside = folder.resolve()
    target = output.resolve()
    if target == inside or inside in target.parents:
        raise BertclsError(
            f"{option} {output} is inside {folder}, which this command reads: writing there "
            f"could damage it. Choose a place outside {folder}."
        )


def _check_writable_folder(folder: Path, *, option: str, output: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise BertclsError(f"Cannot write {option} {output}: {existing} is a file, not a folder.")
    # os.access: fail before hours of work rather than at the end (root passes it anyway).
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BertclsError(
            f"Cannot write {option} {output}: the folder {existing} is read-only for you. "
            "Choose a folder you can write to."
        )
