"""Which column is which: guessing text_column and the gold column of a freshly opened table.

Both are only suggestions shown in the combo boxes; the analyst can pick any column.
"""

from __future__ import annotations

import pandas as pd

from spacy_bertcls.convert import split_labels
from spacy_bertcls.tables.cells import label_text

# Names that usually hold the text to classify, most telling first.
TEXT_COLUMN_NAMES = ("text", "texts", "sentence", "content", "message", "body", "review",
                     "comment", "tweet", "sms", "document", "description", "utterance")  # fmt: skip
GOLD_COLUMN_HINTS = ("label", "gold", "class", "category", "sentiment", "target", "annotation")


def guess_text_column(frame: pd.DataFrame) -> str | None:
    """The column most likely to hold the texts: a text column with the longest average text,
    strongly preferring names such as ``text`` or ``message``."""
    best, best_score = None, -1.0
    sample = frame.head(2000)
    for name in frame.columns:
        series = sample[name]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        values = series.dropna()
        values = values[values.map(lambda v: isinstance(v, str))]
        if values.empty:
            continue
        average = float(values.str.len().mean())
        key = str(name).strip().casefold()
        if key in TEXT_COLUMN_NAMES:
            average *= 3.0
        elif any(hint in key for hint in TEXT_COLUMN_NAMES):
            average *= 1.5
        if average > best_score:
            best, best_score = str(name), average
    if best is None and len(frame.columns):
        best = str(frame.columns[0])
    return best


def guess_gold_column(
    frame: pd.DataFrame, labels: list[str], exclude: str | None, *, sep: str | None = None
) -> str | None:
    """A column whose filled cells are (almost) all pipeline labels, e.g. ``airline_sentiment``.

    Cells are read as labels by ``label_text``, as evaluation reads them: 0.0/1.0 are "0"/"1".
    sep: for a multi-label pipeline, the separator of several labels in one cell
        (``negative;Late Flight``); a cell counts when all its labels are pipeline labels.
    """
    if not labels:
        return None
    known = set(labels)
    best, best_score = None, 0.0
    sample = frame.head(5000)
    for name in frame.columns:
        if str(name) == exclude:
            continue
        if sep is None:
            cells = [label_text(cell) for cell in sample[name].tolist()]
            values = [[label] for label in cells if label is not None]
        else:
            values = [found for found in (split_labels(c, sep) for c in sample[name]) if found]
        if not values:
            continue
        share = sum(set(value) <= known for value in values) / len(values)
        if share < 0.9:
            continue
        score = len(values) * share
        if any(hint in str(name).casefold() for hint in GOLD_COLUMN_HINTS):
            score *= 1.2
        if score > best_score:
            best, best_score = str(name), score
    return best
