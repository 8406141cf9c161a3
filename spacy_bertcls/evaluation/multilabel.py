"""Metrics for multi-label predictions: several labels per row, one probability per label.

The multi-label sibling of :mod:`.metrics`. Each label is its own yes/no decision: a row's
predicted set is the labels whose probability reaches that label's threshold. Every metric
comes from scikit-learn, computed on 0/1 indicator matrices (rows x labels); this module only
decides which rows take part and which label decisions were wrong.

Which rows are scored. Each input row is counted exactly once, in the first of these that
applies (the same order as :func:`.metrics.evaluate_predictions`):

1. missing gold: the row's gold is None or NaN (no annotation). An empty list is an annotation
   saying that no label applies, and is scored;
2. unknown gold: a gold label is not one of the pipeline's ``labels``. These rows are EXCLUDED
   from every metric (their gold set can never equal a predicted set, and a typo or a renamed
   label would otherwise count as a wrong decision of the model) and reported per label;
3. no prediction: the row of ``probs`` is all NaN (an empty text was not sent to the model);
4. scored: everything else.

Row numbers follow :mod:`.metrics`: ``row`` is the 0-based position in the inputs,
``row_number`` the number a spreadsheet shows (header = row 1); reports show only the latter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..errors import BertclsError
from ..tables.cells import cell_text, is_missing, label_text
from .metrics import (
    Calibration,
    PRCurve,
    _check_labels,
    _check_probs,
    _check_row_numbers,
    _json_float,
    coverage_notes,
    reliability,
)

_AVERAGES = ("micro", "macro", "weighted")


@dataclass
class MultiLabelResult:
    """Everything :func:`evaluate_multilabel` measured, in the pipeline's label order.

    labels (list[str]): The pipeline's labels; the column order of ``probs``.
    thresholds (dict[str, float]): Per label, the probability from which it is predicted.
    n_rows (int): Rows passed in.
    n_scored (int): Rows that took part in the metrics.
    n_missing_gold (int): Rows without a gold annotation (None or NaN).
    n_unknown_gold (int): Rows excluded because a gold label is not one of ``labels``.
    n_no_prediction (int): Rows whose probabilities were all NaN.
    unknown_gold (dict[str, int]): Gold labels the pipeline does not know, with the number of
        rows holding each (a row with two such labels is counted under both).
    subset_accuracy (float): sklearn accuracy_score on the indicator matrices: the share of
        scored rows whose predicted set equals the gold set exactly.
    hamming_loss (float): sklearn hamming_loss: the share of wrong (row, label) decisions.
    micro (dict[str, float]): Precision, recall and f1 over all (row, label) decisions pooled.
    macro (dict[str, float]): Unweighted mean precision, recall and f1 over ``averaged_labels``.
    weighted (dict[str, float]): Support-weighted mean over ``averaged_labels``.
    averaged_labels (list[str]): Labels in the scored rows' gold or predicted sets; the
        averages use these, as :class:`.metrics.EvaluationResult` does, so a label the data
        does not contain does not pull the macro average down with a meaningless 0.
    per_label (dict[str, dict]): Per label: precision, recall, f1 (0.0 where undefined),
        support (scored rows with the label in their gold set) and predicted (scored rows with
        it in their predicted set).
    pr_curves (dict[str, PRCurve]): PR curve and average precision of each label that has
        gold rows (sklearn precision_recall_curve, average_precision_score).
    roc_auc (dict[str, float | None]): ROC AUC per label; None where undefined (a label in no
        scored row's gold set, or in every one).
    macro_roc_auc (float | None): Mean ROC AUC over the labels where it is defined.
    macro_average_precision (float | None): Mean average precision over the labels with gold
        rows ("mAP").
    calibration (Calibration): Every (row, label) probability of the scored rows pooled
        against its 0/1 gold: ``mean_confidence`` is the mean probability in a bin,
        ``accuracy`` the share of those pairs whose gold includes the label; ``ece`` is the
        usual multi-label expected calibration error.
    most_confident_errors (list[dict]): Scored rows whose predicted set differs from the gold
        set, ordered by their most confident wrong decision: row (0-based position),
        row_number (as a spreadsheet shows it), text (None when no texts were given), gold,
        predicted, missed (gold, not predicted), extra (predicted, not gold), label (the most
        confident wrong decision's label), probability (its probability) and confidence (the
        probability the model gave its wrong decision: ``probability`` for an extra label,
        1 - ``probability`` for a missed one).
    row_numbers (np.ndarray): Per input row, the number a spreadsheet shows for it.
    """

    labels: list[str]
    thresholds: dict[str, float]
    n_rows: int
    n_scored: int
    n_missing_gold: int
    n_unknown_gold: int
    n_no_prediction: int
    unknown_gold: dict[str, int]
    subset_accuracy: float
    hamming_loss: float
    micro: dict[str, float]
    macro: dict[str, float]
    weighted: dict[str, float]
    averaged_labels: list[str]
    per_label: dict[str, dict[str, float | int]]
    pr_curves: dict[str, PRCurve]
    roc_auc: dict[str, float | None]
    macro_roc_auc: float | None
    macro_average_precision: float | None
    calibration: Calibration
    most_confident_errors: list[dict[str, Any]]
    # Per scored row: original row index, and gold / predicted 0/1 per label. Kept so the app
    # can filter its table by a label's false positives or negatives without recomputing.
    row_index: np.ndarray = field(repr=False)
    gold_indicator: np.ndarray = field(repr=False)
    pred_indicator: np.ndarray = field(repr=False)
    missing_gold_rows: np.ndarray = field(repr=False)
    no_prediction_rows: np.ndarray = field(repr=False)
    unknown_gold_rows: dict[str, np.ndarray] = field(repr=False)
    row_numbers: np.ndarray = field(repr=False)
    # What reading the input warned about (e.g. formula cells without a saved value).
    input_notes: list[str] = field(default_factory=list)
    # The pooled calibration before the pipeline's temperature scaling, when it has one.
    calibration_before: Calibration | None = None

    def label_rows(self, label: str, kind: str) -> list[int]:
        """Original row indices of one label's decisions of one kind, ascending.

        label (str): One of ``labels``.
        kind (str): "tp" (gold and predicted), "fp" (predicted, not gold), "fn" (gold, not
            predicted) or "tn" (neither).
        RETURNS (list[int]): 0-based positions in the input.
        """
        if label not in self.labels:
            raise BertclsError(
                f"label={label!r} is not one of the evaluated labels {self.labels}; pick a label "
                "from the per-label table."
            )
        j = self.labels.index(label)
        gold, pred = self.gold_indicator[:, j] == 1, self.pred_indicator[:, j] == 1
        masks = {"tp": gold & pred, "fp": ~gold & pred, "fn": gold & ~pred, "tn": ~gold & ~pred}
        if kind not in masks:
            raise BertclsError(f"kind={kind!r} must be one of {sorted(masks)}.")
        return [int(i) for i in self.row_index[masks[kind]]]

    def notes(self) -> list[str]:
        """Plain-text notes on the input, rows left out and labels absent, for reports and the
        terminal."""
        return coverage_notes(self, "scored", self.per_label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (plain Python types; undefined values are None).

        The per-row arrays are left out; PR curves are thinned to at most 500 points. Errors
        name their row by ``row_number`` only, as :meth:`.EvaluationResult.to_dict` does.
        """
        return {
            "multi_label": True,
            "labels": list(self.labels),
            "thresholds": {label: float(t) for label, t in self.thresholds.items()},
            "n_rows": self.n_rows,
            "n_scored": self.n_scored,
            "n_missing_gold": self.n_missing_gold,
            "n_unknown_gold": self.n_unknown_gold,
            "n_no_prediction": self.n_no_prediction,
            "unknown_gold": {label: int(n) for label, n in self.unknown_gold.items()},
            "subset_accuracy": _json_float(self.subset_accuracy),
            "hamming_loss": _json_float(self.hamming_loss),
            **{
                average: {k: _json_float(v) for k, v in getattr(self, average).items()}
                for average in _AVERAGES
            },
            "averaged_labels": list(self.averaged_labels),
            "per_label": {
                label: {
                    "precision": _json_float(scores["precision"]),
                    "recall": _json_float(scores["recall"]),
                    "f1": _json_float(scores["f1"]),
                    "support": int(scores["support"]),
                    "predicted": int(scores["predicted"]),
                }
                for label, scores in self.per_label.items()
            },
            "pr_curves": {label: curve.to_dict() for label, curve in self.pr_curves.items()},
            "roc_auc": {label: _json_float(v) for label, v in self.roc_auc.items()},
            "macro_roc_auc": _json_float(self.macro_roc_auc),
            "macro_average_precision": _json_float(self.macro_average_precision),
            "calibration": self.calibration.to_dict(),
            "calibration_before": (
                None if self.calibration_before is None else self.calibration_before.to_dict()
            ),
            "most_confident_errors": [
                {key: value for key, value in error.items() if key != "row"}
                for error in self.most_confident_errors
            ],
            "notes": self.notes(),
        }


def evaluate_multilabel(
    gold: Sequence[Sequence[str] | None],
    probs: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float] | np.ndarray | float,
    *,
    texts: Sequence[str] | None = None,
    row_numbers: Sequence[int] | np.ndarray | None = None,
    n_errors: int = 20,
    uncalibrated_probs: np.ndarray | None = None,
) -> MultiLabelResult:
    """Score per-label probabilities against gold label sets.

    gold (Sequence[Sequence[str] | None]): Per row, its gold labels (a list; order and repeats
        do not matter), or None (or NaN) when the row has no gold annotation. An empty list
        says no label applies and is scored. A ``doc.cats``-style dict is read as the labels
        at 1.0, and an empty dict as no gold annotation (what `files.read_gold` gives). Each label is read by `tables.cells.label_text`,
        as single-label gold is; blank entries are ignored. A row given as one string raises:
        split a "a;b" cell into its labels first.
    probs (np.ndarray): Shape (n_rows, len(labels)); column j is the probability of labels[j]
        (independent sigmoids, not a softmax). A row of all NaN means "no prediction".
    labels (Sequence[str]): The pipeline's labels, in the column order of ``probs``.
    thresholds (Sequence[float] | np.ndarray | float): Per label (in ``labels`` order), the
        probability from which it is predicted (``prob >= threshold``); one number applies
        to every label.
    texts (Sequence[str] | None): The rows' texts, shown next to the most confident errors.
    row_numbers (Sequence[int] | np.ndarray | None): Per row, the number a spreadsheet shows
        for it (header = row 1), as for `evaluate_predictions`. None: 2, 3, ...
    n_errors (int): How many of the most confident errors to keep.
    uncalibrated_probs (np.ndarray | None): The same rows' probabilities before temperature
        scaling (`spacy_bertcls.calibration.uncalibrated`), for ``calibration_before``.
    RETURNS (MultiLabelResult): Metrics over the scored rows; see the module docstring for how
        the other rows are counted.
    """
    labels = _check_labels(labels)
    probs = _check_probs(probs, labels)
    n_rows = probs.shape[0]
    if len(gold) != n_rows:
        raise BertclsError(
            f"Got {len(gold)} gold label sets but {n_rows} rows of probabilities; pass one "
            "gold list per predicted row (None where the row has no gold annotation)."
        )
    if texts is not None and len(texts) != n_rows:
        raise BertclsError(
            f"Got {len(texts)} texts but {n_rows} rows of probabilities; pass one text per row "
            "or texts=None."
        )
    if texts is not None:
        texts = list(texts)  # positional access; a filtered pandas Series indexes by label
    if isinstance(n_errors, bool) or not isinstance(n_errors, int) or n_errors < 0:
        raise BertclsError(f"n_errors={n_errors!r} must be a whole number >= 0.")
    cutoffs = _check_thresholds(thresholds, labels)
    numbers = _check_row_numbers(row_numbers, n_rows)

    label_to_index = {label: j for j, label in enumerate(labels)}
    has_prediction = ~np.isnan(probs).all(axis=1)
    gold_sets: list[list[int]] = []
    row_index_list: list[int] = []
    missing_gold: list[int] = []
    unknown_rows: dict[str, list[int]] = {}
    n_unknown = 0
    no_prediction: list[int] = []
    for row, value in enumerate(gold):
        row_labels = _gold_labels(value, row)
        if row_labels is None:
            missing_gold.append(row)
            continue
        unknown = [label for label in row_labels if label not in label_to_index]
        if unknown:
            n_unknown += 1
            for label in unknown:
                unknown_rows.setdefault(label, []).append(row)
        elif not has_prediction[row]:
            no_prediction.append(row)
        else:
            row_index_list.append(row)
            gold_sets.append([label_to_index[label] for label in row_labels])

    row_index = np.asarray(row_index_list, dtype=np.int64)
    if row_index.size == 0:
        raise BertclsError(
            f"No row can be scored: of {n_rows} rows, {len(missing_gold)} have no gold "
            f"annotation, {n_unknown} have gold labels the pipeline does not know "
            f"({sorted(unknown_rows)[:10]}), {len(no_prediction)} have no prediction. The "
            f"pipeline's labels are {labels}; check that the gold column is the right one and "
            "split by the right separator."
        )
    y_true = np.zeros((row_index.size, len(labels)), dtype=np.int64)
    for i, columns in enumerate(gold_sets):
        y_true[i, columns] = 1
    p = probs[row_index]
    y_pred = (p >= cutoffs).astype(np.int64)
    all_columns = list(range(len(labels)))

    # Averages over the labels that occur, as evaluate_predictions does.
    present = [j for j in all_columns if y_true[:, j].any() or y_pred[:, j].any()]
    averages: dict[str, dict[str, float]] = {}
    for average in _AVERAGES:
        if present:
            precision, recall, f1, _ = precision_recall_fscore_support(
                y_true, y_pred, labels=present, average=average, zero_division=0
            )
        else:  # nothing in any gold set and nothing predicted: every row is rightly empty
            precision = recall = f1 = 0.0
        averages[average] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
        }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=all_columns, average=None, zero_division=0
    )
    n_predicted = y_pred.sum(axis=0)
    per_label = {
        label: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
            "predicted": int(n_predicted[j]),
        }
        for j, label in enumerate(labels)
    }

    pr_curves: dict[str, PRCurve] = {}
    roc_auc: dict[str, float | None] = {}
    for j, label in enumerate(labels):
        n_positive = int(y_true[:, j].sum())
        if n_positive > 0:
            curve_precision, curve_recall, _ = precision_recall_curve(y_true[:, j], p[:, j])
            pr_curves[label] = PRCurve(
                label=label,
                precision=curve_precision,
                recall=curve_recall,
                average_precision=float(average_precision_score(y_true[:, j], p[:, j])),
                n_positive=n_positive,
            )
        # ROC AUC needs both positives and negatives for the label.
        defined = 0 < n_positive < row_index.size
        roc_auc[label] = float(roc_auc_score(y_true[:, j], p[:, j])) if defined else None
    macro_roc_auc = _macro(roc_auc_score, y_true, p, [roc_auc[label] for label in labels])
    macro_ap = _macro(
        average_precision_score,
        y_true,
        p,
        [pr_curves[label].average_precision if label in pr_curves else None for label in labels],
    )

    # Pooled (row, label) pairs: the probability against whether the gold set has the label.
    calibration = reliability(y_true.ravel() == 1, p.ravel())
    calibration_before = None
    if uncalibrated_probs is not None:
        before = _check_probs(np.asarray(uncalibrated_probs), labels)[row_index]
        calibration_before = reliability(y_true.ravel() == 1, before.ravel())
    errors = _most_confident_errors(row_index, y_true, y_pred, p, labels, texts, numbers, n_errors)
    return MultiLabelResult(
        labels=labels,
        thresholds={label: float(t) for label, t in zip(labels, cutoffs, strict=True)},
        n_rows=n_rows,
        n_scored=int(row_index.size),
        n_missing_gold=len(missing_gold),
        n_unknown_gold=n_unknown,
        n_no_prediction=len(no_prediction),
        unknown_gold={label: len(rows) for label, rows in unknown_rows.items()},
        subset_accuracy=float(accuracy_score(y_true, y_pred)),
        hamming_loss=float(hamming_loss(y_true, y_pred)),
        micro=averages["micro"],
        macro=averages["macro"],
        weighted=averages["weighted"],
        averaged_labels=[labels[j] for j in present],
        per_label=per_label,
        pr_curves=pr_curves,
        roc_auc=roc_auc,
        macro_roc_auc=macro_roc_auc,
        macro_average_precision=macro_ap,
        calibration=calibration,
        most_confident_errors=errors,
        row_index=row_index,
        gold_indicator=y_true,
        pred_indicator=y_pred,
        missing_gold_rows=np.asarray(missing_gold, dtype=np.int64),
        no_prediction_rows=np.asarray(no_prediction, dtype=np.int64),
        unknown_gold_rows={
            label: np.asarray(rows, dtype=np.int64) for label, rows in unknown_rows.items()
        },
        row_numbers=numbers,
        calibration_before=calibration_before,
    )


def _macro(
    score: Any, y_true: np.ndarray, p: np.ndarray, per_label: list[float | None]
) -> float | None:
    """sklearn's macro average of ``score`` over the labels where it is defined."""
    columns = [j for j, value in enumerate(per_label) if value is not None]
    if len(columns) == 1:  # sklearn reads a one-column indicator matrix as a binary target
        return per_label[columns[0]]
    if not columns:
        return None
    return float(score(y_true[:, columns], p[:, columns], average="macro"))


def _gold_labels(value: Any, row: int) -> list[str] | None:
    """One row's gold labels, without blanks and repeats; None when the row has no gold."""
    if is_missing(value):
        return None
    if isinstance(value, Mapping):  # doc.cats: the labels at 1.0; {} is a blank gold cell
        if not value:
            return None
        value = [label for label, score in value.items() if score == 1.0]
    if isinstance(value, str | bytes):
        raise BertclsError(
            f"Gold of row {row} is the text {value!r}, not a list of labels; split multi-label "
            "cells into lists first (e.g. cell.split(';')), or pass [label] for one label."
        )
    try:
        values = list(value)
    except TypeError:
        raise BertclsError(
            f"Gold of row {row} is {value!r}, not a list of labels; pass a list of labels per "
            "row, or None where the row has no gold annotation."
        ) from None
    found = (label_text(label) for label in values)
    return list(dict.fromkeys(label for label in found if label is not None))


def _check_thresholds(
    thresholds: Sequence[float] | np.ndarray | float, labels: list[str]
) -> np.ndarray:
    try:
        cutoffs = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BertclsError(f"thresholds must be numbers, one per label: {err}") from None
    if cutoffs.ndim == 0:
        cutoffs = np.full(len(labels), float(cutoffs))
    if cutoffs.shape != (len(labels),):
        raise BertclsError(
            f"thresholds has shape {cutoffs.shape}, expected ({len(labels)},): one threshold "
            f"per label in {labels}, or one number for all."
        )
    bad = np.flatnonzero(~((cutoffs >= 0.0) & (cutoffs <= 1.0)))
    if bad.size:
        j = int(bad[0])
        raise BertclsError(
            f"Threshold {cutoffs[j]} of label {labels[j]!r} is not a probability from 0 to 1; "
            "pass e.g. 0.5."
        )
    return cutoffs


def _most_confident_errors(
    row_index: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    p: np.ndarray,
    labels: list[str],
    texts: Sequence[str] | None,
    row_numbers: np.ndarray,
    n_errors: int,
) -> list[dict[str, Any]]:
    wrong = y_true != y_pred
    # How sure the model was of each wrong decision: p for an extra label, 1 - p for a missed.
    decision_confidence = np.where(wrong, np.where(y_pred == 1, p, 1.0 - p), -np.inf)
    worst = decision_confidence.argmax(axis=1)
    confidence = decision_confidence[np.arange(len(worst)), worst]
    rows = np.flatnonzero(wrong.any(axis=1))
    # Most confident first; ties in input order so the table is stable between runs.
    order = rows[np.lexsort((row_index[rows], -confidence[rows]))][:n_errors]
    errors = []
    for i in order:
        row = int(row_index[i])
        gold = [labels[j] for j in np.flatnonzero(y_true[i])]
        predicted = [labels[j] for j in np.flatnonzero(y_pred[i])]
        j = int(worst[i])
        errors.append(
            {
                "row": row,
                "row_number": int(row_numbers[row]),
                "text": None if texts is None else cell_text(texts[row]),
                "gold": gold,
                "predicted": predicted,
                "missed": [label for label in gold if label not in predicted],
                "extra": [label for label in predicted if label not in gold],
                "label": labels[j],
                "probability": float(p[i, j]),
                "confidence": float(confidence[i]),
            }
        )
    return errors
