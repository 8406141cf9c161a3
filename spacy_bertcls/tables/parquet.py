"""Parquet files: read and written with their Arrow types.

Structs, lists, decimals and dates keep their Arrow types (`pd.ArrowDtype`) and integers with
empty cells stay integers, so a Parquet file written back has the input's schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BertclsError
from .cells import MAX_CELL_CHARS, cell_text, cell_too_long, is_missing
from .sink import Sink


def parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise BertclsError(f"{path} could not be read as Parquet ({error}).") from error


def read_parquet(path: Path, nrows: int | None) -> pd.DataFrame:
    import pyarrow as pa

    parquet = parquet_file(path)
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


def iter_parquet(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    parquet = parquet_file(path)
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
            raise cell_too_long(path, f"row {start + row + 1:,}", name, longest)


class ParquetSink(Sink):
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
    values = [None if is_missing(value) else cell_text(value) for value in series.tolist()]
    return pd.Series(values, index=series.index, dtype="str")
