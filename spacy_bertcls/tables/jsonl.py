"""JSON lines (.jsonl, .ndjson, .json) and .json arrays: reading, and writing JSON lines.

* .json is JSON lines, unless its first character is "[" (then a JSON array of objects, which
  is read whole and not streamed). .json is read but not written (it would surprise anyone
  expecting an array).
* Values keep their JSON types; every chunk has every key of the file as a column.
* A last line without a line end that is not valid JSON is refused: another program may still
  be writing the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BertclsError
from .cells import MAX_CELL_CHARS, cell_too_long
from .records import WHOLE_FILE, RecordFrames, batches
from .sink import Sink
from .textfiles import half_written, resolve_encoding, translate_read_errors


def is_json_array(path: Path, encoding: str) -> bool:
    with open(path, encoding=encoding) as file:
        head = file.read(4096).lstrip()
    return head.startswith("[")


def iter_json(
    path: Path, encoding: str | None, chunk_size: int, nrows: int | None
) -> Iterator[pd.DataFrame]:
    encoding = resolve_encoding(path, encoding)
    if path.stat().st_size == 0:
        raise BertclsError(f"{path} is empty. Put one JSON object per line.")
    records: Iterable[dict[str, Any]]
    if path.suffix.lower() == ".json" and is_json_array(path, encoding):
        records = _json_array(path, encoding)[:nrows]
        columns = _json_keys(records)
    elif chunk_size == WHOLE_FILE:
        records = list(islice(_json_lines(path, encoding), nrows))
        columns = _json_keys(records)
    else:
        # A first pass finds every key, so that every chunk has every column: a writer needs
        # them all for its header, and a key that appears late is no reason to refuse a file.
        columns = _json_keys(_json_lines(path, encoding))
        records = _json_lines(path, encoding)
    frames = RecordFrames()
    for batch in batches(iter(records), chunk_size, nrows):
        rows = [tuple(record.get(key) for key in columns) for record in batch]
        yield frames.frame(rows, columns)


def _json_keys(records: Iterable[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}  # an ordered set: keys in order of first appearance
    for record in records:
        keys.update(dict.fromkeys(record))
    return list(keys)


def _json_lines(path: Path, encoding: str) -> Iterator[dict[str, Any]]:
    with translate_read_errors(path, encoding):
        with open(path, encoding=encoding) as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    if not line.endswith("\n"):  # only the last line can lack one
                        raise half_written(
                            path, number, "is not valid JSON", "complete or remove its last line"
                        ) from None
                    raise BertclsError(
                        f"{path} line {number} is not valid JSON ({error.msg}). Each line must "
                        'be one JSON object, e.g. {"text": "...", "label": "..."}.'
                    ) from None
                yield _json_record(record, path, f"line {number:,}")


def _json_array(path: Path, encoding: str) -> list[dict[str, Any]]:
    with translate_read_errors(path, encoding):
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
            raise cell_too_long(path, where, key, len(value))
    return record


class JsonlSink(Sink):
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
