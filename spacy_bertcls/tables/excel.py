"""Excel workbooks (.xlsx, .xlsm): sheets, formula cells, and writing .xlsx.

* Cells keep their types: integers stay integers where cells are empty (pandas "Int64").
* A workbook with several sheets needs `sheet=` (name or 0-based index).
* Formula cells are read as the value Excel saved with them. A formula without a saved value
  (a file written by a program that does not calculate, such as openpyxl) is read as its
  formula text ("=A2*2") and counted in a note, so the cell is not lost.
* Written .xlsx files hold texts that a spreadsheet would run as a formula (= + - @ ...) as text
  cells with Excel's quote prefix: the exact text, never a formula (see `guards`). Files that
  older versions wrote with a "'" before such texts (`XLSX_GUARD_PROPERTY` = "'") have it
  removed on reading. .xlsm is read but not written (it would lose its macros).
"""

from __future__ import annotations

import difflib
import re
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BertclsError
from .cells import MAX_CELL_CHARS, cell_text, cell_too_long, is_missing
from .guards import looks_like_formula, remove_formula_guards
from .notes import note
from .records import RecordFrames, batches
from .sink import Sink

# The .xlsx custom document property saying that this project wrote the file, and how it kept
# formula-like texts from running (see `guards`): "'" before them (older versions; removed on
# reading), or text cells with a quote prefix (nothing to remove).
XLSX_GUARD_PROPERTY = "spacy_bertcls_formula_guard"
_QUOTE_GUARD = "'"
_TEXT_CELL_GUARD = "text cells"
WRITER_NAME = "spacy-bertcls"

_EXCEL_MAX_CELL_CHARS = 32_767
_EXCEL_MAX_ROWS = 1_048_576


def open_workbook(path: Path, *, data_only: bool = True) -> Any:
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


def excel_row_count(path: Path, sheet: str | int | None) -> int | None:
    workbook = open_workbook(path)
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


def iter_excel(
    path: Path, sheet: str | int | None, chunk_size: int, nrows: int | None, notes: list[str] | None
) -> Iterator[pd.DataFrame]:
    workbook = open_workbook(path)
    formulas_book = None
    try:
        worksheet = _worksheet(workbook, path, sheet)
        guarded = _excel_has_guard_marker(workbook)
        rows: Iterator[tuple[Any, ...]] = worksheet.iter_rows(values_only=True)
        unsaved: list[tuple[int, int]] = []  # (row, column) of formulas without a value
        if _has_formulas(worksheet):
            formulas_book = open_workbook(path, data_only=False)
            formulas = _worksheet(formulas_book, path, sheet).iter_rows(values_only=True)
            rows = _formula_text_for_unsaved(rows, formulas, unsaved)
        header = next(rows, None)
        columns = _excel_columns(header, path, worksheet.title)
        records = _excel_records(rows, len(columns), path, worksheet.title, columns)
        frames = RecordFrames()
        for batch in batches(records, chunk_size, nrows):
            frame = frames.frame(batch, columns)
            yield remove_formula_guards(frame) if guarded else frame
        if unsaved:
            note(notes, _unsaved_formulas_note(path, worksheet.title, unsaved))
    finally:
        workbook.close()
        if formulas_book is not None:
            formulas_book.close()


def _excel_has_guard_marker(workbook: Any) -> bool:
    properties = getattr(workbook, "custom_doc_props", None) or ()
    return any(
        prop.name == XLSX_GUARD_PROPERTY and prop.value == _QUOTE_GUARD for prop in properties
    )


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
    # Duplicate names are kept as they are (see the `tables` package doc).
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
                raise cell_too_long(path, where, columns[j], len(cell))
        for _ in range(empty_run):
            yield (None,) * width
        empty_run = 0
        yield cells


class ExcelSink(Sink):
    def __init__(self, tmp: Path, final: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.packaging.custom import StringProperty

        self.tmp = tmp
        self.final = final
        self.workbook = Workbook(write_only=True)
        self.workbook.properties.creator = WRITER_NAME
        self.workbook.custom_doc_props.append(
            StringProperty(name=XLSX_GUARD_PROPERTY, value=_TEXT_CELL_GUARD)
        )
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

        if is_missing(value):
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
        # XML reads every CR as LF anyway; written so, the text reads back as it was written.
        value = value.replace("\r\n", "\n").replace("\r", "\n")
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
        return self._text_cell(value)

    def _text_cell(self, value: str) -> Any:
        """`value` as a cell that holds exactly this text.

        openpyxl turns a text starting with "=" into a formula and "#N/A" into an error, so
        such texts get a cell typed as text. Texts a spreadsheet would run as a formula when
        edited (= + - @ ...) also get Excel's quote prefix, which Excel gives a typed "'@x":
        the cell shows "@x" and stays text when edited.
        """
        from openpyxl.cell.cell import ERROR_CODES, WriteOnlyCell

        formula_like = looks_like_formula(value)
        if not (formula_like or value.startswith("=") or value in ERROR_CODES):
            return value  # openpyxl writes other texts as text cells anyway
        cell = WriteOnlyCell(self.sheet, value)
        cell.data_type = "s"  # after the value, which set it to "f" or "e"
        if formula_like:
            cell.quotePrefix = True
        return cell

    def close(self) -> None:
        self.workbook.save(self.tmp)

    def abort(self) -> None:
        # Saving is openpyxl's only public way to finish the sheet and delete the temporary
        # files it keeps elsewhere; the saved file is removed anyway. An error here would hide
        # the one that caused the abort, so it is suppressed.
        with suppress(Exception):
            self.workbook.save(self.tmp)
