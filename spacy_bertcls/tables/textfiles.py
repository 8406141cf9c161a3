"""What the text formats (CSV/TSV, TXT, JSON) share: the encoding, the lines, a cut-off end.

* Encoding: UTF-8 (with or without BOM) and UTF-16 with a BOM are detected. UTF-16 without a
  BOM (every second byte 0) is refused with a message naming "utf-16-le"/"utf-16-be". Anything
  else is refused with a `BertclsError` that shows the offending line as it reads in cp1252 and
  says to pass `encoding="cp1252"` if that looks right. Guessing a legacy code page would
  silently turn some files into mojibake, so the choice is left to the user.
* Decoding and parsing errors become a `BertclsError` naming the file
  (`translate_read_errors`).
* A last line without a line end that cannot be a complete row means that another program may
  still be writing the file (`half_written`).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BertclsError


def resolve_encoding(path: Path, encoding: str | None) -> str:
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


@contextmanager
def translate_read_errors(path: Path, encoding: str | None) -> Iterator[None]:
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


class Lines:
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


def iter_lines(path: Path, encoding: str) -> Iterator[str]:
    """The lines of a text file without their line ends."""
    with translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            for line in file:
                yield line.rstrip("\n")


def half_written(path: Path, line: int, what: str, fix: str) -> BertclsError:
    """The error for a file whose last line (`line`) has no line end and `what`."""
    return BertclsError(
        f"{path} ends in the middle of a row: its last line (line {line}) has no line end and "
        f"{what}. The file may still be being written by another program; wait until it has "
        f"finished and try again. If the file is complete, {fix}."
    )
