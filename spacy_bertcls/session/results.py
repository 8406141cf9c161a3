"""What a pipeline said about each row of a table, and what the analyst corrected.

``Results`` holds one entry per file row in numpy arrays (as ``LabeledChunk`` has them), so
100,000 rows cost a few megabytes and every question about them (counts, filters, sort keys,
the export's columns) is one array operation. Corrections keep an undo history.

A multi-label pipeline (``multi_label``) predicts a set of labels per row: ``predicted_sets``
and ``corrected_sets`` hold them as rows x labels booleans, and a correction is a whole set
(possibly empty: no label applies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..convert import split_labels
from ..decisions import least_sure_decision
from ..labeling import MULTI_LABEL_SEP, LabeledChunk, with_predictions
from ..tables.cells import label_text

CORRECTED_LABEL = "corrected_label"
#: A multi-label row's corrected label set, joined by ``MULTI_LABEL_SEP`` as ``predicted_labels``.
CORRECTED_LABELS = "corrected_labels"


@dataclass
class CorrectionStep:
    """One undoable change of corrections: these rows had ``before`` and now have ``after``
    (and, multi-label, the label sets ``before_sets`` and ``after_sets``)."""

    rows: np.ndarray
    before: np.ndarray
    after: np.ndarray
    before_sets: np.ndarray | None = None
    after_sets: np.ndarray | None = None


class Results:
    """Predictions (``labeled``, ``predicted``, ``confidence``, ``probs``) and corrections
    (``corrected``) of ``n_rows`` rows over ``labels``. Label codes index ``labels``; -1 is
    "none" (not labeled, an empty text, not corrected).

    multi_label: the pipeline decides each label on its own. Then ``predicted_sets`` holds the
    labels each row got, ``predicted`` the most probable of them (to colour a row by),
    ``confidence`` how sure the row's least sure label decision is
    (``decisions.least_sure_decision``), and a corrected row has its label set in
    ``corrected_sets`` and its size in ``corrected`` (so ``corrected >= 0`` still says which
    rows are corrected).
    """

    def __init__(
        self, n_rows: int = 0, labels: Sequence[str] = (), *, multi_label: bool = False
    ) -> None:
        self.labels = list(labels)
        self.multi_label = multi_label
        self.codes = {label: code for code, label in enumerate(self.labels)}
        self.labeled = np.zeros(n_rows, dtype=bool)
        self.predicted = np.full(n_rows, -1, dtype=np.int64)
        # float32, as LabeledChunk has them: exported numbers equal those of `bertcls label`.
        self.confidence = np.full(n_rows, np.nan, dtype=np.float32)
        self.probs = np.full((n_rows, len(self.labels)), np.nan, dtype=np.float32)
        self.corrected = np.full(n_rows, -1, dtype=np.int64)
        self.predicted_sets = np.zeros((n_rows, len(self.labels)), dtype=bool)
        self.corrected_sets = np.zeros((n_rows, len(self.labels)), dtype=bool)
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
        if self.multi_label and chunk.label_sets is not None:
            self.predicted_sets[rows] = chunk.label_sets
            self.confidence[rows] = least_sure_decision(chunk.probs, chunk.label_sets)
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

    def sets_of(self, values: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Cells holding label sets joined by ``MULTI_LABEL_SEP`` (as ``bertcls convert
        --multi-label-sep`` reads them): (rows x labels booleans, per cell whether it holds a
        set of known labels). A blank cell, or one with a label the pipeline does not know,
        holds none."""
        sets = np.zeros((len(values), len(self.labels)), dtype=bool)
        known = np.zeros(len(values), dtype=bool)
        for i, value in enumerate(values):
            given = split_labels(value, MULTI_LABEL_SEP)
            codes = [self.codes.get(label, -1) for label in given]
            if given and min(codes) >= 0:
                sets[i, codes] = True
                known[i] = True
        return sets, known

    def predicted_labels(self, row: int) -> list[str]:
        """Multi-label: the labels ``row`` was given (none before it is labeled)."""
        return [self.labels[j] for j in np.flatnonzero(self.predicted_sets[row])]

    def corrected_labels(self, row: int) -> list[str] | None:
        """Multi-label: the corrected label set of ``row``, or None when it has none."""
        if self.corrected[row] < 0:
            return None
        return [self.labels[j] for j in np.flatnonzero(self.corrected_sets[row])]

    def current_sets(self, rows: np.ndarray) -> np.ndarray:
        """Multi-label: each row's label set as it stands, its correction or else its prediction."""
        corrected = (self.corrected[rows] >= 0)[:, None]
        return np.where(corrected, self.corrected_sets[rows], self.predicted_sets[rows])

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

    def set_label_sets(
        self, rows: Sequence[int] | np.ndarray, sets: np.ndarray | None
    ) -> np.ndarray:
        """Multi-label: correct ``rows`` to ``sets`` (rows x labels booleans, one row per row
        or one for all; None clears). Returns the rows that changed; one undo step."""
        rows, first = np.unique(np.asarray(rows, dtype=np.int64), return_index=True)
        n_labels = len(self.labels)
        if sets is None:
            after_sets = np.zeros((len(rows), n_labels), dtype=bool)
            after = np.full(len(rows), -1, dtype=np.int64)
        else:
            sets = np.asarray(sets, dtype=bool).reshape(-1, n_labels)
            after_sets = np.broadcast_to(
                sets if len(sets) == 1 else sets[first], (len(rows), n_labels)
            )
            after = after_sets.sum(axis=1).astype(np.int64)
        differs = (self.corrected[rows] != after) | (
            (after >= 0) & (self.corrected_sets[rows] != after_sets).any(axis=1)
        )
        changed = rows[differs]
        if changed.size:
            step = CorrectionStep(
                changed,
                self.corrected[changed].copy(),
                after[differs].copy(),
                self.corrected_sets[changed].copy(),
                np.array(after_sets[differs]),
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
        if step.after_sets is not None:
            self.corrected_sets[step.rows] = step.after_sets if forward else step.before_sets
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
        if old.labels != self.labels or old.multi_label != self.multi_label:
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
        self.predicted_sets[new_rows] = old.predicted_sets[source]
        self.corrected_sets[new_rows] = old.corrected_sets[source]
        self.version += 1
        return len(new_rows)

    # ----------------------------------------------------------------- columns out

    def with_columns(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
        """``frame`` (the file, one row per result) plus the columns ``bertcls label`` writes
        (``predicted_label``, ``confidence`` and ``prob_<label>``; multi-label:
        ``predicted_labels`` and ``prob_<label>``) and ``corrected_label`` (multi-label:
        ``corrected_labels``, joined by ``MULTI_LABEL_SEP``) when anything was corrected;
        only ``rows`` (file rows, in this order) when given."""
        if rows is None:
            rows = np.arange(len(self))
        chunk = LabeledChunk(
            rows, self.probs[rows], self.predicted[rows], self.confidence[rows], self.labels,
            label_sets=self.predicted_sets[rows] if self.multi_label else None,
        )  # fmt: skip
        out = with_predictions(frame.iloc[rows].reset_index(drop=True), chunk)
        if self.corrected_count() and self.multi_label:
            # An empty corrected set (no label applies) is "", unlike a missing correction.
            names = np.array(self.labels, dtype=object)
            joined = [
                MULTI_LABEL_SEP.join(names[self.corrected_sets[row]])
                if self.corrected[row] >= 0
                else None
                for row in rows
            ]
            out[CORRECTED_LABELS] = pd.array(joined, dtype="str")
        elif self.corrected_count():
            names = np.array([*self.labels, None], dtype=object)
            out[CORRECTED_LABEL] = names[self.corrected[rows]]
        return out
