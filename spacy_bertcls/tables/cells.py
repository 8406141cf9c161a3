"""One cell of a table: as text for the model, as a label, missing or not, and the longest
one read.

The reader of every format refuses a text cell longer than `MAX_CELL_CHARS`, with the message
of `cell_too_long`.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BertclsError

# The longest cell any reader accepts (spaCy's default `Language.max_length`).
MAX_CELL_CHARS = 1_000_000


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
    if is_missing(value):
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


def label_text(value: Any) -> str | None:
    """One cell of a label column as a label: its `cell_text` without surrounding spaces, or
    None when that is empty.

    So a 0/1 column read as floats (Excel, Parquet: 0.0, 1.0, NaN) gives the labels "0" and
    "1", the same ones `convert` writes for training; evaluation, the app's gold column and its
    mismatch marks all read labels this way.
    """
    return cell_text(value).strip() or None


def is_missing(value: Any) -> bool:
    """Whether a cell is empty: None, NA, NaT or NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return False


def cell_too_long(path: Path, where: str, column: Any, size: int, hint: str = "") -> BertclsError:
    """The error for a cell of `size` characters, over `MAX_CELL_CHARS`."""
    return BertclsError(
        f"{path} {where}, column {column!r} holds a cell of {size:,} characters, more than the "
        f"{MAX_CELL_CHARS:,} that bertcls reads (spaCy's default max_length).{hint} If the "
        "text is real, split it into shorter texts or remove it, then read the file again."
    )
