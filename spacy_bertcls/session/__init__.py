"""The analyst's session, Qt-free: what the desktop app shows and does, as plain Python.

* ``session.Session``: pipeline, table, predictions, corrections, filters, evaluation; events.
* ``results.Results``: per-row predictions and corrections as arrays, with undo.
* ``rows``: the shown columns (``TableLayout``), ``RowFilter``, sorting (``SortKey``).
* ``columns``: guessing the text and gold columns of a new file.
* ``corrections``: corrected rows written as training data.
"""

from .columns import guess_gold_column, guess_text_column
from .corrections import CORRECTION_SUFFIXES, changed_by_formula_guard, write_corrections
from .results import CORRECTED_LABEL, CORRECTED_LABELS, Results
from .rows import ENTROPY, MARGIN, Column, ColumnKind, RowFilter, SortKey, TableLayout
from .session import (
    Evaluation,
    Event,
    Session,
    SessionEvents,
    ThresholdPreview,
    read_file,
    run_evaluation,
)

__all__ = [
    "CORRECTED_LABEL",
    "CORRECTED_LABELS",
    "CORRECTION_SUFFIXES",
    "ENTROPY",
    "MARGIN",
    "Column",
    "ColumnKind",
    "Evaluation",
    "Event",
    "Results",
    "RowFilter",
    "Session",
    "SessionEvents",
    "SortKey",
    "TableLayout",
    "ThresholdPreview",
    "changed_by_formula_guard",
    "guess_gold_column",
    "guess_text_column",
    "read_file",
    "run_evaluation",
    "write_corrections",
]
