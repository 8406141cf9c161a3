"""What a pipeline said about each row of a table, and what the analyst corrected.

``Results`` holds one entry per file row in numpy arrays (as ``LabeledChunk`` has them), so
100,000 rows cost a few megabytes and every question about them (counts, filters, sort keys,
the export's columns) is one array operation. Corrections keep an undo history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..labeling import LabeledChunk, with_predictions
from ..tables.cells import label_text

CORRECTED_LABEL = "corrected_label"


@dataclass
class CorrectionStep:
    """One undoable change of corrections: these rows had ``before`` and now have ``after``."""

    rows: np.ndarray
    before: np.ndarray
    after: np.ndarray


class Results:
    """Predictions (``labeled``, ``predicted``, ``confidence``, ``probs``) and corrections
    (``corrected``) of ``n_rows`` rows over ``labels``. Label codes index ``labels``; -1 is
    "none" (not labeled, an empty text, not corrected)."""

    def __init__(self, n_rows: int = 0, labels: Sequence[str] = ()) -> None:
        self.labels = list(labels)
        self.codes = {label: code for code, label in enumerate(self.labels)}
        self.labeled = np.zeros(n_rows, dtype=bool)
        self.predicted = np.full(n_rows, -1, dtype=np.int64)
        # float32, as LabeledChunk has them: exported numbers equal those of `bertcls label`.
        self.confidence = np.full(n_rows, np.nan, dtype=np.float32)
        self.probs = np.full((n_rows, len(self.labels)), np.nan, dtype=np.float32)
        self.corrected = np.full(n_rows, -1, dtype=np.int64)
        self.undo_steps: list[CorrectionStep] = []
        self.redo_steps: list[CorrectionStep] = []
        #: Bumped on every change, so views know their sort keys and order are stale.
        self.version = 0
        #: Bumped on every change of corrections, to tell exported from unsaved ones.
        self.corrections_version = 0

    def __len__(self) -> int:
        return len(self.labeled)

    # ----------------------------------------------------------------- predictions

    def apply_chunk(self, chunk: LabeledChunk) -> None:
        """Store the predictions of ``chunk.rows`` (file rows)."""
        rows = chunk.rows
        self.labeled[rows] = True
        self.predicted[rows] = chunk.predicted
        self.confidence[rows] = chunk.confidence
        self.probs[rows] = chunk.probs
        self.version += 1

    def labeled_count(self) -> int:
        return int(self.labeled.sum())

    def unlabeled_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)

    def label_of(self, code: int) -> str | None:
        return self.labels[code] if code >= 0 else None

    def predicted_label(self, row: int) -> str | None:
        return self.label_of(int(self.predicted[row]))

    def corrected_label(self, row: int) -> str | None:
        return self.label_of(int(self.corrected[row]))

    def codes_of(self, values: Sequence[object]) -> np.ndarray:
        """Label codes of cells read as labels (``label_text``: 1.0 is "1"), -1 for others."""
        return np.array([self.codes.get(label_text(v), -1) for v in values], dtype=np.int64)

    # ----------------------------------------------------------------- corrections

    def set_corrections(self, rows: Sequence[int] | np.ndarray, label: str | None) -> np.ndarray:
        """Correct ``rows`` to ``label`` (None or "" clears). Returns the rows that changed;
        the change is one undo step."""
        code = self.codes[label] if label else -1
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        changed = rows[self.corrected[rows] != code]
        if changed.size:
            step = CorrectionStep(
                changed, self.corrected[changed].copy(), np.full_like(changed, code)
            )
            self._apply(step, forward=True)
            self.undo_steps.append(step)
            self.redo_steps.clear()
        return changed

    def undo(self) -> np.ndarray:
        """Take back the last correction step; returns its rows (empty when none)."""
        if not self.undo_steps:
            return np.empty(0, dtype=np.int64)
        step = self.undo_steps.pop()
        self._apply(step, forward=False)
        self.redo_steps.append(step)
        return step.rows

    def redo(self) -> np.ndarray:
        if not self.redo_steps:
            return np.empty(0, dtype=np.int64)
        step = self.redo_steps.pop()
        self._apply(step, forward=True)
        self.undo_steps.append(step)
        return step.rows

    def _apply(self, step: CorrectionStep, *, forward: bool) -> None:
        self.corrected[step.rows] = step.after if forward else step.before
        self.version += 1
        self.corrections_version += 1

    def corrected_count(self) -> int:
        return int((self.corrected >= 0).sum())

    # ----------------------------------------------------------------- carrying results over

    def take_over(self, old: Results, old_keys: pd.Series, new_keys: pd.Series) -> int:
        """Copy predictions and corrections of ``old`` onto rows whose key (text) matches.

        Matching is by text, not position, so rows inserted or deleted in the file do not shift
        labels onto the wrong rows. Returns how many rows got their results back.
        """
        if old.labels != self.labels:
            return 0
        keep = old.labeled | (old.corrected >= 0)
        old_texts = old_keys[keep]
        old_rows = np.flatnonzero(keep)
        first = ~old_texts.duplicated().to_numpy()
        lookup = pd.Index(old_texts[first].to_numpy())
        hits = lookup.get_indexer(new_keys.to_numpy())
        new_rows = np.flatnonzero(hits >= 0)
        source = old_rows[first][hits[new_rows]]
        self.labeled[new_rows] = old.labeled[source]
        self.predicted[new_rows] = old.predicted[source]
        self.confidence[new_rows] = old.confidence[source]
        self.probs[new_rows] = old.probs[source]
        self.corrected[new_rows] = old.corrected[source]
        self.version += 1
        return len(new_rows)

    # ----------------------------------------------------------------- columns out

    def with_columns(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
        """``frame`` (the file, one row per result) plus ``predicted_label``, ``confidence``,
        ``prob_<label>`` (the columns ``bertcls label`` writes) and ``corrected_label`` when
        anything was corrected; only ``rows`` (file rows, in this order) when given."""
        if rows is None:
            rows = np.arange(len(self))
        chunk = LabeledChunk(
            rows, self.probs[rows], self.predicted[rows], self.confidence[rows], self.labels
        )
        out = with_predictions(frame.iloc[rows].reset_index(drop=True), chunk)
        if self.corrected_count():
            names = np.array([*self.labels, None], dtype=object)
            out[CORRECTED_LABEL] = names[self.corrected[rows]]
        return out
