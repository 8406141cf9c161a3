"""Spreadsheets in and out: a file becomes pandas rows, and labeled rows become a file again.

Reading (`read_table`, `iter_table_chunks`, `count_rows`) and writing (`TableWriter`,
`write_table`) know the formats in `SUPPORTED_SUFFIXES`. Decisions every caller should know:

* Delimited text (.csv .tsv .tab) and .txt files are read with every column as text (pandas
  "str" dtype) and NaN only for empty cells; "NA", "null" or "None" stay text. CSV carries no
  types: inferring them per chunk would give one column different dtypes in different chunks, and
  inference is lossy (leading zeros, long ids, "1.50"), so a labeled copy would not reproduce
  the input's cells. Excel, Parquet and JSON lines keep their own types.
* Encoding: UTF-8 (with or without BOM) and UTF-16 with a BOM are detected. Anything else is
  refused with a `BertclsError` that shows the offending line as it reads in cp1252 and says to
  pass `encoding="cp1252"` if that looks right. Guessing a legacy code page would silently turn
  some files into mojibake, so the choice is left to the user.
* Delimiter: .tsv/.tab are tab-separated; for .csv the delimiter is sniffed among `, ; TAB |`
  (Excel writes ";" in many European locales).
* Quoting: a file is read with CSV quoting ('"' around cells holding the delimiter) unless that
  reading fails, e.g. a cell starts with a quote that is not a quoting quote, as in the unquoted
  SMS Spam Collection TSV. Then it is read without quoting. A row with more cells than the
  header is refused with its line number instead of being shifted into the wrong columns.
* .txt is plain text, one text per line, read as a single column named "text".
* .json is JSON lines, unless its first character is "[" (then a JSON array of objects, which is
  read whole and not streamed).
* Written CSV/TSV/XLSX cells that a spreadsheet program would run as a formula (text starting
  with = + - @ TAB or CR, unless the text is a plain number such as "-5") get a leading "'".
  Reading CSV/TSV/XLSX removes that "'" again (a spreadsheet program hides it too), so texts
  round-trip exactly: "@united thanks" written to CSV and converted is "@united thanks", not
  "'@united thanks". Text that itself starts with "'" before such a character gets one more.
  Parquet and JSON lines are written unchanged. CSV/TSV are written as UTF-8 with a BOM so that
  Excel opens them as UTF-8.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import math
import numbers
import os
import re
import secrets
import sys
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
) -> pd.DataFrame:
    """Read a whole table file into a DataFrame.

    path: a file with a suffix from `SUPPORTED_SUFFIXES`.
    sheet: the worksheet (name or 0-based index) of an Excel file; needed when it has several.
    encoding: the text encoding of a CSV/TSV/TXT/JSON file; detected when None.
    nrows: read only the first `nrows` rows (e.g. for a preview). For CSV/TSV the quoting check
        then also looks at these rows only.
    RETURNS: all columns, in file order, with a RangeIndex. Empty cells are NaN.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if nrows is not None and nrows < 0:
        raise BertclsError(f"nrows must be 0 or more, not {nrows}.")
    if suffix in DELIMITED_SUFFIXES:
        fmt = _delimited_format(path, encoding, limit=nrows)
        with _translate_read_errors(path, fmt.encoding):
            return remove_formula_guards(pd.read_csv(path, nrows=nrows, **_csv_options(fmt)))
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path, nrows)
    chunks = _iter_chunks(path, suffix, _WHOLE_FILE, sheet, encoding, nrows)
    return _concat(list(chunks))


def iter_table_chunks(
    path: str | Path,
    *,
    chunk_size: int = 2048,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a table file in DataFrames of at most `chunk_size` rows.

    Memory does not grow with the file size (except for a .json file holding one JSON array).
    The chunks carry consecutive RangeIndex values, so `pd.concat(chunks)` equals
    `read_table(path)`. A file with a header but no rows yields one empty DataFrame that still
    has the columns, so callers can always check the columns on the first chunk.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if chunk_size < 1:
        raise BertclsError(f"chunk_size must be 1 or more, not {chunk_size}.")
    return _iter_chunks(path, suffix, chunk_size, sheet, encoding, None)


def count_rows(path: str | Path, *, sheet: str | int | None = None) -> int | None:
    """Count the data rows of a table file (for progress bars), or None where that is costly.

    CSV/TSV: exact (one parsing pass without building rows). TXT, JSON lines, Parquet: exact and
    cheap. Excel: the sheet's recorded size (or its number of row records), which may include
    trailing empty rows. A .json array: None.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=None)
    if suffix in DELIMITED_SUFFIXES:
        return _delimited_format(path, None).rows
    if suffix in TEXT_SUFFIXES:
        return sum(1 for _ in _iter_lines(path, _detect_encoding(path)))
    if suffix in PARQUET_SUFFIXES:
        return _parquet_file(path).metadata.num_rows
    if suffix in EXCEL_SUFFIXES:
        return _excel_row_count(path, sheet)
    encoding = _detect_encoding(path)
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
    """Raise BertclsError unless every name in `wanted` is one of `columns`.

    The message names the missing column(s), suggests a close match for each and lists the
    columns that exist.
    """
    existing = [str(column) for column in columns]
    missing = [name for name in wanted if name not in existing]
    if not missing:
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
) -> Iterator[pd.DataFrame]:
    if suffix in DELIMITED_SUFFIXES:
        return _iter_delimited(path, encoding, chunk_size)
    if suffix in TEXT_SUFFIXES:
        return _iter_txt(path, encoding, chunk_size, nrows)
    if suffix in PARQUET_SUFFIXES:
        return _iter_parquet(path, chunk_size)
    if suffix in EXCEL_SUFFIXES:
        return _iter_excel(path, sheet, chunk_size, nrows)
    return _iter_json(path, encoding, chunk_size, nrows)


# --- encoding --------------------------------------------------------------------------------


def _detect_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) or UTF-16 with a BOM; anything else is refused (see module doc)."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    _require_utf8(path)
    return "utf-8"


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


@dataclass(frozen=True)
class _Scan:
    rows: int
    width: int
    too_wide: tuple[int, int] | None  # (line number, cells) of the first overlong row


def _delimited_format(path: Path, encoding: str | None, limit: int | None = None) -> _Delimited:
    encoding = encoding or _detect_encoding(path)
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
    if quoted is not None and quoted.too_wide is None:
        return _Delimited(encoding, sep, csv.QUOTE_MINIMAL, quoted.rows)
    unquoted = _scan(path, encoding, sep, csv.QUOTE_NONE, limit)
    if unquoted.too_wide is None:
        return _Delimited(encoding, sep, csv.QUOTE_NONE, unquoted.rows)
    line, cells = (quoted or unquoted).too_wide
    width = (quoted or unquoted).width
    raise BertclsError(
        f"{path} line {line} has {cells} cells but the header has {width} (delimiter "
        f"{sep!r}). A cell probably contains the delimiter without being quoted. Put such "
        "cells in double quotes, or save the file as .xlsx (or as .txt with one text per line)."
    )


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding, newline="") as file:
            sample = file.read(_SNIFF_CHARS)
    truncated = len(sample) == _SNIFF_CHARS
    best, best_score = ",", (0.0, 1)
    for sep in _CANDIDATE_DELIMITERS:
        rows = [row for row in csv.reader(io.StringIO(sample), delimiter=sep) if row]
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
    """Parse the file once with the csv module, without keeping rows, to check its shape."""
    # The csv module refuses cells over 128 KiB by default; pandas has no such limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    rows, width, too_wide = 0, 0, None
    with _translate_read_errors(path, encoding):
        with open(path, encoding=encoding, newline="") as file:
            reader = csv.reader(file, delimiter=sep, quoting=quoting, strict=True)
            header = next((row for row in reader if row), None)
            if header is None:
                raise BertclsError(
                    f"{path} is empty: it has no header line. The first line must hold the "
                    "column names."
                )
            width = len(header)
            for row in reader:
                if limit is not None and rows >= limit:
                    break
                if not row:
                    continue  # pandas skips blank lines too
                rows += 1
                if len(row) > width and too_wide is None:
                    too_wide = (reader.line_num, len(row))
    return _Scan(rows, width, too_wide)


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
    }


def _iter_delimited(path: Path, encoding: str | None, chunk_size: int) -> Iterator[pd.DataFrame]:
    fmt = _delimited_format(path, encoding)
    with _translate_read_errors(path, fmt.encoding):
        with pd.read_csv(path, chunksize=chunk_size, **_csv_options(fmt)) as reader:
            for chunk in reader:
                yield remove_formula_guards(chunk)


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
    path: Path, encoding: str | None, chunk_size: int, nrows: int | None
) -> Iterator[pd.DataFrame]:
    encoding = encoding or _detect_encoding(path)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one text per line.")
    lines = _iter_lines(path, encoding)
    start = 0
    for batch in _batches(lines, chunk_size, nrows):
        texts = pd.array([line or None for line in batch], dtype="str")
        yield pd.DataFrame({TXT_COLUMN: texts}, index=pd.RangeIndex(start, start + len(batch)))
        start += len(batch)


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
    """Build chunk DataFrames from Python records with stable dtypes across chunks.

    pandas infers each chunk's dtypes from its values. A column that is empty in one chunk has
    no values to infer from, so it takes the dtype the column had in earlier chunks (text if
    none yet) instead of pandas' object dtype, which would turn the concatenation into object.
    """

    def __init__(self) -> None:
        self.start = 0
        self.dtypes: dict[str, Any] = {}

    def frame(self, records: list[Any], columns: list[str]) -> pd.DataFrame:
        index = pd.RangeIndex(self.start, self.start + len(records))
        frame = pd.DataFrame(records, columns=columns)
        frame.index = index
        self.start += len(records)
        for column in columns:
            if len(frame) and frame[column].isna().all():
                frame[column] = pd.Series(np.nan, index=index).astype(self._empty_dtype(column))
            elif len(frame):
                self.dtypes[column] = frame[column].dtype
        if not len(frame):
            frame = frame.astype("str")
        return frame

    def _empty_dtype(self, column: str) -> Any:
        dtype = self.dtypes.get(column)
        if dtype is None:
            return "str"
        if pd.api.types.is_integer_dtype(dtype):
            return "float64"
        if pd.api.types.is_bool_dtype(dtype):
            return "object"
        return dtype


# --- Excel -----------------------------------------------------------------------------------


def _open_workbook(path: Path) -> Any:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # data_only: the values Excel last computed, not the formulas' source text.
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
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
    path: Path, sheet: str | int | None, chunk_size: int, nrows: int | None
) -> Iterator[pd.DataFrame]:
    workbook = _open_workbook(path)
    try:
        worksheet = _worksheet(workbook, path, sheet)
        rows = worksheet.iter_rows(values_only=True)
        header = next(rows, None)
        columns = _excel_columns(header, path, worksheet.title)
        records = _excel_records(rows, len(columns), path, worksheet.title)
        frames = _RecordFrames()
        for batch in _batches(records, chunk_size, nrows):
            yield remove_formula_guards(frames.frame(batch, columns))
    finally:
        workbook.close()


def _excel_columns(header: tuple[Any, ...] | None, path: Path, title: str) -> list[str]:
    cells = list(header or ())
    while cells and cells[-1] is None:
        cells.pop()
    if not cells:
        raise BertclsError(
            f"Sheet {title!r} of {path} is empty or its first row is empty. The first row "
            "must hold the column names."
        )
    names = [f"Unnamed: {i}" if cell is None else cell_text(cell) for i, cell in enumerate(cells)]
    return _dedupe(names)


def _dedupe(names: list[str]) -> list[str]:
    """Make column names unique the way pandas does: a, a.1, a.2."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}.{n}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def _excel_records(
    rows: Iterator[tuple[Any, ...]], width: int, path: Path, title: str
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
    encoding = encoding or _detect_encoding(path)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one JSON object per line.")
    if path.suffix.lower() == ".json" and _is_json_array(path, encoding):
        records: Iterator[dict[str, Any]] = iter(_json_array(path, encoding))
    else:
        records = _json_lines(path, encoding)
    columns: dict[str, None] = {}  # an ordered set: keys in order of first appearance
    frames = _RecordFrames()
    for batch in _batches(records, chunk_size, nrows):
        for record in batch:
            columns.update(dict.fromkeys(record))
        yield frames.frame(batch, list(columns))


def _json_lines(path: Path, encoding: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(_iter_lines(path, encoding), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BertclsError(
                f"{path} line {number} is not valid JSON ({error.msg}). Each line must be one "
                'JSON object, e.g. {"text": "...", "label": "..."}.'
            ) from None
        yield _json_record(record, path, f"line {number}")


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
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(len(frame))
    return frame


def _iter_parquet(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    parquet = _parquet_file(path)
    start = 0
    for batch in parquet.iter_batches(batch_size=chunk_size):
        frame = pa.Table.from_batches([batch]).to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame
    if start == 0:
        yield parquet.schema_arrow.empty_table().to_pandas()


# ---------------------------------------------------------------------------------------------
# writing


def check_not_same_file(input_path: str | Path, output_path: str | Path) -> None:
    """Raise BertclsError if writing `output_path` would overwrite `input_path`."""
    source, target = Path(input_path), Path(output_path)
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        same = os.path.samefile(source, target)
    if same:
        raise BertclsError(
            f"The output {target} is the input file: writing it would destroy the input. "
            f"Choose another output name, e.g. {source.stem}_labeled{source.suffix}."
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
        must have these columns (a missing one is written empty).
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
        self._sink.write(self._align(df), self.rows_written, header=not self._written)
        self.rows_written += len(df)
        self._written = True

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._tmp is not None and self._sink is not None
        sink, tmp = self._sink, self._tmp
        self._sink = None
        try:
            if exc_type is None:
                if not self._written:
                    empty = pd.DataFrame(columns=self.columns or []).astype("str")
                    sink.write(empty, 0, header=True)
                sink.close()
                os.replace(tmp, self.path)
            else:
                sink.abort()
        finally:
            tmp.unlink(missing_ok=True)

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
        raise BertclsError(
            f"Cannot write {path}: {error.strerror}. Choose a folder you can write to."
        ) from error
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
    """Undo `neutralize_formulas` on the text cells and column names of a read table."""
    unguarded = {}
    for name in df.columns:
        series = df[name]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        try:
            guarded = series.str.match(_GUARDED_FORMULA, na=False).astype(bool)
        except AttributeError:  # an object column without any text
            continue
        if guarded.any():
            unguarded[name] = series.mask(guarded, series.str.slice(1))
    names = [_unguard_value(name) for name in df.columns]
    if not unguarded and names == list(df.columns):
        return df
    df = df.copy()
    for name, series in unguarded.items():
        df[name] = series
    df.columns = names
    return df


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
        safe = df.apply(neutralize_formulas) if len(df.columns) else df
        names = list(neutralize_formulas(pd.Series(list(df.columns), dtype=object)))
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
            self.schema = table.schema
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

        self.tmp = tmp
        self.final = final
        self.workbook = Workbook(write_only=True)
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
        value = _neutralize_value(value)
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

    Readers never see half a file, and on any failure (or an interrupt) nothing new exists
    under ``path``: an older file there is left as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise BertclsError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except OSError as error:
        raise BertclsError(
            f"Cannot write {path}: {error.strerror or error}. Choose a folder you can write to."
        ) from error
    finally:
        tmp.unlink(missing_ok=True)
    return path
