"""Spreadsheets in and out: a file becomes pandas rows, and labeled rows become a file again.

Reading (`read_table`, `iter_table_chunks`, `count_rows`) and writing (`TableWriter`,
`write_table`) know the formats in `SUPPORTED_SUFFIXES`. The path of the data:

    file -> the format's reader -> DataFrames of rows (`read_table`, `iter_table_chunks`)
    rows -> `TableWriter` -> the format's sink -> a temporary file -> renamed onto the output

The functions here check the path and options and hand the file to its format's module:

* `delimited`: .csv .tsv .tab: the delimiter, quoting, reading, writing.
* `text`: .txt, one text per line (read only).
* `excel`: .xlsx .xlsm: sheets, formula cells, writing .xlsx.
* `parquet`: .parquet, read and written with its Arrow types.
* `jsonl`: .jsonl .ndjson .json: JSON lines and JSON arrays, writing JSON lines.

and what several of them share:

* `textfiles`: the encoding of text files, their lines, a cut-off last line.
* `records`: rows of Python values (Excel, JSON) as chunks with stable dtypes.
* `cells`: a cell as text for the model (`text_values`), the cell-size limit.
* `guards`: written cells that a spreadsheet would run as a formula stay text.
* `notes`: `TableWarning`, what a reader read differently from what the file meant.
* `sink`: what each format's writer implements.

Writing never replaces the input and is atomic; the checks and the atomic write for files
other than tables are in `spacy_bertcls.outputs`. Decisions every caller should know (each
format's module says what holds for it alone):

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
* A cell longer than `cells.MAX_CELL_CHARS` characters is refused by every reader, naming its
  row and column: in a CSV it is nearly always a quote that is never closed, and a text that
  long is more than spaCy's default `max_length` anyway.
* A file that another program is still writing is refused rather than read with a cut last
  row: a CSV/TSV whose last line has no line end and ends inside a quoted cell or has fewer
  cells than the header; JSON lines whose last line has no line end and is not valid JSON; any
  file whose size changes while it is read. A complete file whose last line merely lacks a
  line end is read as usual (a .txt file gets a warning, since there nothing tells the two
  apart).
* Written CSV/TSV cells that a spreadsheet would run as a formula get a leading "'", removed
  again when this project reads its own file; in .xlsx they are text cells holding the exact
  text (see `guards`). Parquet and JSON lines are written unchanged. CSV/TSV are written as
  UTF-8 with a BOM so that Excel opens them as UTF-8.
* Row numbers are the ones a spreadsheet shows: the header is row 1, so the first data row of
  a CSV/TSV/Excel/Parquet table is row 2; a .txt or JSON lines file has no header, so its
  first row is row 1 (its line). Frames read here carry that first number in
  `frame.attrs["first_row_number"]`; `first_row_number` and `row_numbers` turn 0-based
  positions into these numbers, for every message, report and view that names a row.
* Reading reports what it could not read as the file meant it (formulas without values, a .txt
  file without a final line end) as notes: appended to the `notes` list a caller passes, or
  issued as a `TableWarning`.
"""

from __future__ import annotations

import codecs
import difflib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BertclsError
from ..outputs import DISK_FULL, create_temp_file, disk_full_errors, write_error
from .delimited import CsvSink, delimited_format, iter_delimited, read_delimited
from .excel import ExcelSink, excel_row_count, iter_excel, open_workbook
from .guards import register_guards
from .jsonl import JsonlSink, is_json_array, iter_json
from .notes import TableWarning
from .parquet import ParquetSink, iter_parquet, parquet_file, read_parquet
from .records import WHOLE_FILE
from .sink import Sink
from .text import iter_txt
from .textfiles import iter_lines, resolve_encoding

__all__ = [
    "DELIMITED_SUFFIXES",
    "EXCEL_SUFFIXES",
    "JSON_SUFFIXES",
    "PARQUET_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "TableWarning",
    "TableWriter",
    "count_rows",
    "first_row_number",
    "iter_table_chunks",
    "list_sheets",
    "read_table",
    "require_columns",
    "row_numbers",
    "write_table",
]

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

# The `DataFrame.attrs` key of the number a spreadsheet shows for a table's first data row.
FIRST_ROW_NUMBER = "first_row_number"
# A table with a header row, the header being row 1: CSV, TSV, Excel, Parquet.
HEADER_FIRST_ROW_NUMBER = 2


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
        `attrs["first_row_number"]` is the number a spreadsheet shows for the first row (see
        `first_row_number`).
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if nrows is not None and nrows < 0:
        raise BertclsError(f"nrows must be 0 or more, not {nrows}.")
    before = _file_state(path)
    if suffix in DELIMITED_SUFFIXES:
        frame = read_delimited(path, encoding, nrows)
    elif suffix in PARQUET_SUFFIXES:
        frame = read_parquet(path, nrows)
    else:
        frame = _concat(list(_iter_chunks(path, suffix, WHOLE_FILE, sheet, encoding, nrows, notes)))
    _check_unchanged(path, before)
    # Set last: not every step above keeps attrs (pd.concat drops differing ones).
    frame.attrs[FIRST_ROW_NUMBER] = _first_row_number(suffix)
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
    the last chunk. Each chunk carries `attrs["first_row_number"]` as `read_table`'s frame does.
    """
    path = _existing_file(path)
    suffix = _read_suffix(path)
    _check_options(path, suffix, sheet=sheet, encoding=encoding)
    if chunk_size < 1:
        raise BertclsError(f"chunk_size must be 1 or more, not {chunk_size}.")
    before = _file_state(path)
    chunks = _iter_chunks(path, suffix, chunk_size, sheet, encoding, None, notes)
    return _checked_unchanged(path, before, _numbered(chunks, _first_row_number(suffix)))


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
        return delimited_format(path, encoding).rows
    if suffix in TEXT_SUFFIXES:
        return sum(1 for _ in iter_lines(path, resolve_encoding(path, encoding)))
    if suffix in PARQUET_SUFFIXES:
        return parquet_file(path).metadata.num_rows
    if suffix in EXCEL_SUFFIXES:
        return excel_row_count(path, sheet)
    encoding = resolve_encoding(path, encoding)
    if is_json_array(path, encoding):
        return None
    return sum(1 for line in iter_lines(path, encoding) if line.strip())


def first_row_number(frame: pd.DataFrame) -> int:
    """The number a spreadsheet (or, for a file without a header, an editor) shows for the
    first data row of a table read by `read_table` or `iter_table_chunks`.

    2 for a file with a header row (the header is row 1): CSV, TSV, Excel, Parquet. 1 for a
    file without one, whose rows are its lines: .txt and JSON lines. A frame without
    `attrs["first_row_number"]` (not read here, or rebuilt since) counts as having a header: 2.
    Blank lines, which the CSV and JSON lines readers skip, are not counted.
    """
    number = frame.attrs.get(FIRST_ROW_NUMBER, HEADER_FIRST_ROW_NUMBER)
    if isinstance(number, bool) or not isinstance(number, int | np.integer):
        raise BertclsError(
            f'frame.attrs["{FIRST_ROW_NUMBER}"] is {number!r}; it must be a whole number, '
            "the row number a spreadsheet shows for the first data row (1 or 2)."
        )
    return int(number)


def row_numbers(table: pd.DataFrame | int, positions: Sequence[int] | np.ndarray) -> np.ndarray:
    """The row numbers a spreadsheet shows for 0-based row positions of a table.

    table: the frame the positions are in (its `first_row_number` is used), or that first row
        number itself.
    positions: 0-based positions of rows as read from the file (the RangeIndex of
        `read_table`'s frame and of the chunks), e.g. `range(len(frame))`.
    RETURNS: int64 numbers, one per position: `first_row_number + position`. For a CSV, the
        first data row is 2, as in Excel; for a .txt file it is 1, its line.
    """
    first = table if isinstance(table, int | np.integer) else first_row_number(table)
    return int(first) + np.asarray(positions, dtype=np.int64)


def list_sheets(path: str | Path) -> list[str]:
    """The worksheet names of an Excel file, in workbook order."""
    path = _existing_file(path)
    if _read_suffix(path) not in EXCEL_SUFFIXES:
        raise BertclsError(f"{path} is not an Excel file ({', '.join(EXCEL_SUFFIXES)}).")
    workbook = open_workbook(path)
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


def _first_row_number(suffix: str) -> int:
    # .txt and JSON lines have no header line: a row is a line, and lines start at 1.
    return 1 if suffix in TEXT_SUFFIXES + JSON_SUFFIXES else HEADER_FIRST_ROW_NUMBER


def _numbered(chunks: Iterator[pd.DataFrame], first: int) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        chunk.attrs[FIRST_ROW_NUMBER] = first
        yield chunk


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
        return iter_delimited(path, encoding, chunk_size)
    if suffix in TEXT_SUFFIXES:
        return iter_txt(path, encoding, chunk_size, nrows, notes)
    if suffix in PARQUET_SUFFIXES:
        return iter_parquet(path, chunk_size)
    if suffix in EXCEL_SUFFIXES:
        return iter_excel(path, sheet, chunk_size, nrows, notes)
    return iter_json(path, encoding, chunk_size, nrows)


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


# ---------------------------------------------------------------------------------------------
# writing


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

    A CSV/TSV file in which some cell got a formula guard is recorded in
    `guards.guard_registry()`, so that reading it removes exactly these guards; .xlsx cells
    need no guard to remove: they are written as text cells (see `guards`).
    """

    def __init__(self, path: str | Path, *, columns: list[str] | None = None) -> None:
        self.path = Path(path)
        self.suffix = _write_suffix(self.path)
        self.columns = list(columns) if columns is not None else None
        self.rows_written = 0
        self._written = False  # a chunk, maybe empty, went out (with the header)
        self._tmp: Path | None = None
        self._sink: Sink | None = None

    def __enter__(self) -> TableWriter:
        self._tmp = create_temp_file(self.path)
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
                        register_guards(tmp, self.path)
                    os.replace(tmp, self.path)
            else:
                sink.abort()
        finally:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
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


def _make_sink(suffix: str, tmp: Path, final: Path) -> Sink:
    if suffix in (".csv", ".tsv", ".tab"):
        return CsvSink(tmp, "," if suffix == ".csv" else "\t")
    if suffix == ".xlsx":
        return ExcelSink(tmp, final)
    if suffix == ".parquet":
        return ParquetSink(tmp, final)
    return JsonlSink(tmp)
