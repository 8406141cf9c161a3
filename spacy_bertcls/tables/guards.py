"""Formula guards: written cells that a spreadsheet would run as a formula are kept text.

A cell is formula-like when it is text starting with = + - @ TAB or CR, unless the text is a
plain number such as "-5" (`looks_like_formula`).

* CSV/TSV cells have no type, so a formula-like cell gets a leading "'"; text that itself
  starts with "'" before such a character gets one more. Reading removes exactly one such "'"
  again, but only from files known to be written by this project, so a user's own "'=A1" is
  never changed. A CSV/TSV file has no place for such a mark that other programs would
  ignore, so its size and SHA-256 are recorded in the user's cache folder (`guard_registry()`)
  when some cell got a "'", and reading removes guards from a file only while it is byte for
  byte what was written. A copy moved to another computer, or edited, keeps its "'" as text:
  never a user's character lost, at worst one kept.
* .xlsx cells are written as text cells with Excel's own quote prefix (what Excel stores for a
  typed "'@x"), so the value is the exact text, never a formula, and stays text when edited in
  Excel; an analyst sees no stray "'". Older versions wrote .xlsx files with a "'" like CSV and
  marked them with the document property `excel.XLSX_GUARD_PROPERTY` = "'"; reading removes
  that "'" from such files only, so old exports still read as the texts they were written from.
* Parquet and JSON lines are written unchanged.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ..outputs import CACHE_DIR_ENV, cache_folder
from .notes import TableWarning

_FORMULA_CHAR = re.compile(r"^[=+\-@\t\r]")
# What gets a "'" in CSV/TSV: also a text's own "'" before such a character, so that reading
# can remove exactly the one added.
_FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
# What neutralize_formulas writes: one "'" more than the text had before = + - @ TAB CR.
_GUARDED_FORMULA = re.compile(r"^'+[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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
        return series.map(neutralize_value)
    return series


def remove_formula_guards(df: pd.DataFrame) -> pd.DataFrame:
    """Undo `neutralize_formulas` on the text cells and column names of a read table.

    Only for a file this project wrote (see the module doc): in any other file a "'" before
    = + - @ is the text's own.
    """
    unguarded = {}
    for j in range(df.shape[1]):
        series = df.iloc[:, j]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        try:
            guarded = series.str.match(_GUARDED_FORMULA, na=False).astype(bool)
        except AttributeError:  # an object column without any text
            continue
        if guarded.any():
            unguarded[j] = series.mask(guarded, series.str.slice(1))
    names = [_unguard_value(name) for name in df.columns]
    if not unguarded and names == list(df.columns):
        return df
    df = df.copy()
    for j, series in unguarded.items():
        df.isetitem(j, series)
    df.columns = names
    return df


def neutralize_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """`neutralize_formulas` on every column (by position); also whether a cell changed."""
    columns = [df.iloc[:, j] for j in range(df.shape[1])]
    safe = [neutralize_formulas(column) for column in columns]
    if all(new is old or new.equals(old) for new, old in zip(safe, columns)):
        return df, False
    frame = pd.concat(safe, axis=1, ignore_index=True)
    frame.columns = df.columns
    return frame, True


def _is_guarded(value: Any) -> bool:
    return isinstance(value, str) and _GUARDED_FORMULA.match(value) is not None


def _unguard_value(value: Any) -> Any:
    return value[1:] if _is_guarded(value) else value


def looks_like_formula(value: Any) -> bool:
    """Whether a spreadsheet program would run this text as a formula if typed into a cell."""
    return (
        isinstance(value, str)
        and _FORMULA_CHAR.match(value) is not None
        and _PLAIN_NUMBER.match(value) is None
    )


def neutralize_value(value: Any) -> Any:
    """One cell as `neutralize_formulas` writes it to CSV/TSV."""
    if isinstance(value, str) and _FORMULA_START.match(value) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def guard_registry() -> Path:
    """The folder holding a fingerprint ("<size>-<sha256>") of each guarded CSV/TSV written."""
    return cache_folder("formula-guards")


def register_guards(written: Path, path: Path) -> None:
    """Record that the bytes of `written` (to become `path`) hold guards this project wrote."""
    registry = guard_registry()
    entry = registry / f"{written.stat().st_size}-{_sha256(written)}"
    try:
        registry.mkdir(parents=True, exist_ok=True)
        entry.touch()
    except OSError as error:
        warnings.warn(
            f"Could not record in {registry} that {path} holds formula guards "
            f'({error.strerror or error}), so reading it will keep their "\'". Set '
            f"{CACHE_DIR_ENV} to a folder you can write to.",
            TableWarning,
            stacklevel=4,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def csv_has_guard_marker(path: Path) -> bool:
    """Whether this project wrote `path`, byte for byte, with formula guards in it."""
    registry = guard_registry()
    size = path.stat().st_size
    # The size is part of each entry's name, so most files are never hashed.
    if not registry.is_dir() or next(registry.glob(f"{size}-*"), None) is None:
        return False
    return (registry / f"{size}-{_sha256(path)}").exists()
