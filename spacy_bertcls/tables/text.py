""".txt files: plain text, one text per line, read as a single column named "text".

A last line without a line end is read as usual, with a note, since nothing tells a complete
file from one another program is still writing. .txt files are read but not written (they
would lose the other columns).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..errors import BertclsError
from .cells import MAX_CELL_CHARS, cell_too_long
from .notes import note
from .records import batches
from .textfiles import Lines, resolve_encoding, translate_read_errors

TXT_COLUMN = "text"


def iter_txt(
    path: Path, encoding: str | None, chunk_size: int, nrows: int | None, notes: list[str] | None
) -> Iterator[pd.DataFrame]:
    encoding = resolve_encoding(path, encoding)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one text per line.")
    with translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            lines = Lines(file)
            texts = (_txt_line(path, n, line) for n, line in enumerate(lines, start=1))
            start = 0
            for batch in batches(texts, chunk_size, nrows):
                texts_array = pd.array([line or None for line in batch], dtype="str")
                index = pd.RangeIndex(start, start + len(batch))
                yield pd.DataFrame({TXT_COLUMN: texts_array}, index=index)
                start += len(batch)
    if nrows is None and lines.count and not lines.last.endswith("\n"):
        # Editors often leave out the last line end, so this cannot be refused as in a CSV.
        note(
            notes,
            f"The last line of {path} (line {lines.count:,}) has no line end. If another "
            "program was still writing the file, that text may be cut off: then wait until it "
            "has finished and read the file again.",
        )


def _txt_line(path: Path, number: int, line: str) -> str:
    line = line.rstrip("\n")
    if len(line) > MAX_CELL_CHARS:
        raise cell_too_long(path, f"line {number:,}", TXT_COLUMN, len(line))
    return line
