"""Session files: an analyst's work saved to reopen exactly where it was left.

A ``.bertcls-session`` file is a zip with ``session.json`` (paths, columns, filter, sort, view
state, a fingerprint of the file's texts) and ``results.npz`` (the per-row arrays, saved
without pickle, so opening a session file someone sent you runs no code). It refers to the
pipeline folder and the table file by path and does not copy them.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BertclsError
from ..outputs import write_bytes_atomic
from .results import Results
from .rows import RowFilter, SortKey

SESSION_SUFFIX = ".bertcls-session"
FORMAT = "bertcls-session"
VERSION = 1
_ARRAYS = ("labeled", "predicted", "confidence", "probs", "corrected")
#: Multi-label sessions only: the label sets predicted and corrected.
_SET_ARRAYS = ("predicted_sets", "corrected_sets")


@dataclass
class SavedSession:
    """What a session file holds; ``results`` is None when nothing was labeled or corrected."""

    pipeline_path: str | None
    file_path: str
    sheet: str | None
    text_column: str | None
    gold_column: str | None
    labels: list[str]
    n_rows: int
    row_keys: np.ndarray  # uint64 hash of each row's text, to find the rows again
    row_filter: RowFilter = field(default_factory=RowFilter)
    sort: SortKey | None = None
    view: dict[str, Any] = field(default_factory=dict)  # the app's scroll, current row, tab
    results: Results | None = None


def save_session(session: Any, path: str | Path, view: dict[str, Any] | None = None) -> Path:
    """Write ``session`` (a ``Session`` with a file open) to ``path``, atomically."""
    path = Path(path)
    if path.suffix != SESSION_SUFFIX:
        path = path.with_name(path.name + SESSION_SUFFIX)
    if session.file_path is None:
        raise BertclsError("Open a file before saving a session: there is nothing to save yet.")
    f = session.row_filter
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "pipeline_path": str(session.pipeline_path) if session.pipeline_path else None,
        "file_path": str(session.file_path),
        "sheet": session.sheet,
        "text_column": session.text_column,
        "gold_column": session.gold_column,
        "labels": session.labels,
        "multi_label": session.results.multi_label,
        "n_rows": len(session.frame),
        "row_filter": {k: v for k, v in asdict(f).items() if k != "rows"},
        "sort": asdict(session.sort) if session.sort else None,
        "view": view or {},
    }
    names = _ARRAYS + (_SET_ARRAYS if session.results.multi_label else ())
    arrays = {name: getattr(session.results, name) for name in names}
    arrays["row_keys"] = session.row_keys()
    if f.rows is not None:
        arrays["filter_rows"] = np.asarray(f.rows, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", json.dumps(meta, indent=2, ensure_ascii=False))
        zf.writestr("results.npz", buffer.getvalue())
    return write_bytes_atomic(path, archive.getvalue())


def load_session(path: str | Path) -> SavedSession:
    """Read a session file; a clear error for anything else."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("session.json").decode("utf-8"))
            with np.load(io.BytesIO(zf.read("results.npz")), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise BertclsError(f"{path} does not exist.") from None
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as error:
        raise BertclsError(
            f"{path.name} is not a bertcls session file (File > Save Session writes them): {error}"
        ) from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise BertclsError(f"{path.name} is not a bertcls session file.")
    if meta["version"] > VERSION:
        raise BertclsError(
            f"{path.name} was saved by a newer bertcls (session format {meta['version']}); "
            "update bertcls to open it."
        )
    labels = [str(label) for label in meta.get("labels") or []]
    n_rows = int(meta["n_rows"])
    multi_label = bool(meta.get("multi_label", False))
    results = Results(n_rows, labels, multi_label=multi_label)
    for name in _ARRAYS + (_SET_ARRAYS if multi_label else ()):
        value = arrays.get(name)
        expected = getattr(results, name)
        if value is None or value.shape != expected.shape:
            raise BertclsError(f"{path.name} is damaged: {name} has the wrong shape.")
        setattr(results, name, value.astype(expected.dtype, copy=False))
    _check_codes(path, results)
    row_filter = RowFilter(**_known(RowFilter, meta.get("row_filter") or {}))
    if "filter_rows" in arrays:
        rows = arrays["filter_rows"].astype(np.int64)
        row_filter.rows = rows[(rows >= 0) & (rows < n_rows)]
    sort = meta.get("sort")
    return SavedSession(
        pipeline_path=meta.get("pipeline_path"),
        file_path=str(meta["file_path"]),
        sheet=meta.get("sheet"),
        text_column=meta.get("text_column"),
        gold_column=meta.get("gold_column"),
        labels=labels,
        n_rows=n_rows,
        row_keys=_row_keys(path, arrays, n_rows),
        row_filter=row_filter,
        sort=SortKey(**_known(SortKey, sort)) if sort else None,
        view=dict(meta.get("view") or {}),
        results=results,
    )


def _row_keys(path: Path, arrays: dict[str, np.ndarray], n_rows: int) -> np.ndarray:
    keys = arrays.get("row_keys")
    if keys is None or keys.shape != (n_rows,):
        raise BertclsError(f"{path.name} is damaged: row_keys has the wrong shape.")
    return keys.astype(np.uint64, copy=False)


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = set(cls.__dataclass_fields__)
    return {key: value for key, value in values.items() if key in names}


def _check_codes(path: Path, results: Results) -> None:
    n = len(results.labels)
    for name in ("predicted", "corrected"):
        codes = getattr(results, name)
        # A multi-label correction's code is the size of its label set, up to every label.
        largest = n if name == "corrected" and results.multi_label else n - 1
        if codes.size and (codes.min() < -1 or codes.max() > largest):
            raise BertclsError(f"{path.name} is damaged: {name} has codes outside the labels.")
