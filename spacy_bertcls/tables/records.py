"""Rows of Python values (Excel cells, JSON objects, text lines) as chunk DataFrames."""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from .cells import is_missing

# A chunk size meaning "the whole file in one chunk" (read_table).
WHOLE_FILE = sys.maxsize


class RecordFrames:
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
        present = [value for value in values if not is_missing(value)]
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


def batches(items: Iterator[Any], size: int, limit: int | None) -> Iterator[list[Any]]:
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
