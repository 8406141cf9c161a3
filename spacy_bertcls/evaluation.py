"""Metrics, plots and reports for a classifier's predictions against gold labels.

The CLI (``bertcls evaluate``), the spaCy project's evaluate step and the desktop app all call
:func:`evaluate_predictions` and show the same :class:`EvaluationResult`, so the numbers agree
wherever a user looks. Every metric comes from scikit-learn; this module only decides which rows
take part and how the results are shown.

Which rows are evaluated. Each input row is counted exactly once, in the first of these that
applies:

1. missing gold: the gold value is None, NaN or blank text;
2. unknown gold: the gold label is not one of the pipeline's ``labels``. These rows are
   EXCLUDED from every metric (the model cannot predict such a label, so there is no column for
   it in the confusion matrix) and reported per label, so a typo or a renamed label in the data
   is visible instead of silently lowering the accuracy;
3. no prediction: the row of ``probs`` is all NaN (an empty text was not sent to the model);
4. evaluated: everything else.

The plot functions build a :class:`matplotlib.figure.Figure` directly and never touch pyplot's
global state, so they are safe to call from a GUI worker thread; a Qt canvas can adopt the
returned figure, and :func:`write_report` saves it with matplotlib's Agg renderer.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from .errors import BertclsError
from .tables import (
    check_output_file,
    check_output_folder,
    make_output_folder,
    write_bytes_atomic,
)

__all__ = [
    "Calibration",
    "EvaluationResult",
    "PRCurve",
    "check_report_paths",
    "evaluate_predictions",
    "format_summary",
    "plot_confusion_matrix",
    "plot_pr_curves",
    "plot_reliability",
    "report_paths",
    "write_report",
]

# Ten equal-width bins is the usual reliability diagram; with fewer rows per bin the observed
# accuracy gets too noisy to read.
N_CALIBRATION_BINS = 10
# Probabilities come out of a softmax in float32, so allow rounding just outside [0, 1].
_PROB_TOLERANCE = 1e-4
# A PR curve has one point per distinct score; JSON keeps at most this many so that a report on
# 100,000 rows stays a few hundred kB. The in-memory result keeps every point for plotting.
_MAX_CURVE_POINTS_JSON = 500
# Longer texts are cut in the HTML error table so one pasted document cannot swamp the page.
_MAX_TEXT_CHARS_HTML = 1000
_PLOT_NAMES = ("confusion_matrix", "pr_curves", "reliability")


@dataclass
class PRCurve:
    """One-vs-rest precision-recall curve of one class.

    precision (np.ndarray): Precision at each threshold, from sklearn's precision_recall_curve.
    recall (np.ndarray): Recall at each threshold, same length as ``precision``.
    average_precision (float): sklearn's average_precision_score for this class.
    n_positive (int): Number of evaluated rows whose gold label is this class.
    """

    label: str
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    average_precision: float
    n_positive: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy; long curves are thinned to at most 500 points (endpoints kept)."""
        keep = _thin_indices(len(self.precision), _MAX_CURVE_POINTS_JSON)
        return {
            "label": self.label,
            "precision": [float(x) for x in self.precision[keep]],
            "recall": [float(x) for x in self.recall[keep]],
            "average_precision": _json_float(self.average_precision),
            "n_positive": int(self.n_positive),
        }


@dataclass
class Calibration:
    """Reliability-diagram bins of the top predicted probability ("confidence").

    Only non-empty bins are listed; bins are equal-width over [0, 1].

    n_bins (int): Number of bins the range [0, 1] was split into.
    bin_lower (np.ndarray): Lower edge of each listed bin.
    bin_upper (np.ndarray): Upper edge of each listed bin.
    mean_confidence (np.ndarray): Mean confidence of the rows in each bin.
    accuracy (np.ndarray): Share of rows in each bin whose prediction is correct.
    count (np.ndarray): Number of rows in each bin.
    ece (float): Expected calibration error: the count-weighted mean of
        |accuracy - mean_confidence| over the bins.
    """

    n_bins: int
    bin_lower: np.ndarray = field(repr=False)
    bin_upper: np.ndarray = field(repr=False)
    mean_confidence: np.ndarray = field(repr=False)
    accuracy: np.ndarray = field(repr=False)
    count: np.ndarray = field(repr=False)
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy: one dict per non-empty bin, plus n_bins and ece."""
        bins = [
            {
                "lower": float(lo),
                "upper": float(hi),
                "mean_confidence": float(conf),
                "accuracy": float(acc),
                "count": int(n),
            }
            for lo, hi, conf, acc, n in zip(
                self.bin_lower,
                self.bin_upper,
                self.mean_confidence,
                self.accuracy,
                self.count,
                strict=True,
            )
        ]
        return {"n_bins": self.n_bins, "ece": _json_float(self.ece), "bins": bins}


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate_predictions` measured, in the pipeline's label order.

    Row indices are 0-based positions in the ``gold``/``probs`` passed in, so a caller can map
    them back to its own table rows.

    labels (list[str]): The pipeline's labels; order of confusion rows/columns and probs columns.
    n_rows (int): Rows passed in.
    n_evaluated (int): Rows that took part in the metrics.
    n_missing_gold (int): Rows without a gold label (None, NaN, blank).
    n_no_prediction (int): Rows whose probabilities were all NaN.
    unknown_gold (dict[str, int]): Gold labels the pipeline does not know, with row counts.
        These rows are excluded from the metrics.
    accuracy (float): sklearn accuracy_score over the evaluated rows.
    macro (dict[str, float]): Unweighted mean precision, recall and f1 over ``averaged_labels``.
    weighted (dict[str, float]): Support-weighted mean precision, recall and f1.
    averaged_labels (list[str]): Labels that occur in the evaluated rows' gold or predictions;
        the averages use these (as sklearn does by default), so a label absent from the data
        does not pull the macro average down with a meaningless 0.
    per_class (dict[str, dict]): Per label: precision, recall, f1 (0.0 where undefined) and
        support (evaluated rows with that gold label).
    confusion (list[list[int]]): Counts; rows are gold, columns predicted, in ``labels`` order.
    pr_curves (dict[str, PRCurve]): One-vs-rest PR curve per label that has gold rows.
    roc_auc (dict[str, float | None]): One-vs-rest ROC AUC per label; None where undefined
        (a label with no gold rows, or with every row).
    macro_roc_auc (float | None): Mean one-vs-rest ROC AUC over the labels where it is defined.
    calibration (Calibration): Reliability-diagram bins and expected calibration error.
    most_confident_errors (list[dict]): Wrong predictions, most confident first: row, text
        (None when no texts were given), gold, predicted, confidence, gold_probability.
    """

    labels: list[str]
    n_rows: int
    n_evaluated: int
    n_missing_gold: int
    n_no_prediction: int
    unknown_gold: dict[str, int]
    accuracy: float
    macro: dict[str, float]
    weighted: dict[str, float]
    averaged_labels: list[str]
    per_class: dict[str, dict[str, float | int]]
    confusion: list[list[int]]
    pr_curves: dict[str, PRCurve]
    roc_auc: dict[str, float | None]
    macro_roc_auc: float | None
    calibration: Calibration
    most_confident_errors: list[dict[str, Any]]
    # Per evaluated row: original row index, gold and predicted label index, confidence. Kept so
    # the desktop app can filter its table by a confusion-matrix cell without recomputing.
    row_index: np.ndarray = field(repr=False)
    gold_index: np.ndarray = field(repr=False)
    pred_index: np.ndarray = field(repr=False)
    confidence: np.ndarray = field(repr=False)
    missing_gold_rows: np.ndarray = field(repr=False)
    no_prediction_rows: np.ndarray = field(repr=False)
    unknown_gold_rows: dict[str, np.ndarray] = field(repr=False)
    # What reading the input warned about (e.g. formula cells without a saved value).
    input_notes: list[str] = field(default_factory=list)

    @property
    def n_unknown_gold(self) -> int:
        """Rows excluded because their gold label is not one of ``labels``."""
        return sum(self.unknown_gold.values())

    def confusion_rows(self, gold_label: str, predicted_label: str) -> list[int]:
        """Original row indices in one confusion-matrix cell, in ascending order.

        gold_label (str): Row of the cell; must be one of ``labels``.
        predicted_label (str): Column of the cell; must be one of ``labels``.
        RETURNS (list[int]): 0-based positions in the input, as many as the cell's count.
        """
        gold_i = self._label_index(gold_label, "gold_label")
        pred_i = self._label_index(predicted_label, "predicted_label")
        mask = (self.gold_index == gold_i) & (self.pred_index == pred_i)
        return [int(i) for i in self.row_index[mask]]

    def _label_index(self, label: str, argument: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise BertclsError(
                f"{argument}={label!r} is not one of the evaluated labels {self.labels}; "
                "pick a label from the confusion matrix."
            ) from None

    def notes(self) -> list[str]:
        """Plain-text notes on the input, rows left out and labels absent, for reports and the
        terminal."""
        notes = list(self.input_notes)
        if self.n_missing_gold:
            notes.append(
                f"{self.n_missing_gold:,} of {self.n_rows:,} rows have no gold label "
                "(empty or missing) and were not evaluated."
            )
        if self.unknown_gold:
            listed = ", ".join(f"{label!r} ({n})" for label, n in self.unknown_gold.items())
            notes.append(
                f"{self.n_unknown_gold:,} rows have gold labels the pipeline does not know and "
                f"were excluded from all metrics: {listed}. The pipeline's labels are "
                f"{self.labels}; fix the gold column or retrain with these labels."
            )
        if self.n_no_prediction:
            notes.append(
                f"{self.n_no_prediction:,} rows have no prediction (empty text) and were not "
                "evaluated."
            )
        absent = [label for label in self.labels if label not in self.averaged_labels]
        if absent:
            notes.append(
                f"Labels never seen in the evaluated rows (no gold rows, never predicted): "
                f"{absent}. Their per-class scores are 0 and they are left out of the averages."
            )
        no_gold = [label for label in self.averaged_labels if self.per_class[label]["support"] == 0]
        if no_gold:
            notes.append(
                f"Labels predicted but with no gold rows: {no_gold}. Their recall is undefined "
                "(shown as 0) and they have no PR curve or ROC AUC."
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (plain Python types; undefined values are None).

        The per-row index arrays are left out; PR curves are thinned to at most 500 points.
        """
        return {
            "labels": list(self.labels),
            "n_rows": self.n_rows,
            "n_evaluated": self.n_evaluated,
            "n_missing_gold": self.n_missing_gold,
            "n_unknown_gold": self.n_unknown_gold,
            "n_no_prediction": self.n_no_prediction,
            "unknown_gold": {label: int(n) for label, n in self.unknown_gold.items()},
            "accuracy": _json_float(self.accuracy),
            "macro": {k: _json_float(v) for k, v in self.macro.items()},
            "weighted": {k: _json_float(v) for k, v in self.weighted.items()},
            "averaged_labels": list(self.averaged_labels),
            "per_class": {
                label: {
                    "precision": _json_float(scores["precision"]),
                    "recall": _json_float(scores["recall"]),
                    "f1": _json_float(scores["f1"]),
                    "support": int(scores["support"]),
                }
                for label, scores in self.per_class.items()
            },
            "confusion": [[int(n) for n in row] for row in self.confusion],
            "pr_curves": {label: curve.to_dict() for label, curve in self.pr_curves.items()},
            "roc_auc": {label: _json_float(v) for label, v in self.roc_auc.items()},
            "macro_roc_auc": _json_float(self.macro_roc_auc),
            "calibration": self.calibration.to_dict(),
            "most_confident_errors": [dict(error) for error in self.most_confident_errors],
            "notes": self.notes(),
        }


def evaluate_predictions(
    gold: Sequence[str | None],
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    n_errors: int = 20,
) -> EvaluationResult:
    """Score predicted class probabilities against gold labels.

    gold (Sequence[str | None]): Gold label per row. None, NaN and blank text count as missing.
        Numbers are compared as text, whole-number floats as integers (a spreadsheet column of
        0/1 with blanks is read as 1.0), so labels "0"/"1" match.
    probs (np.ndarray): Shape (n_rows, len(labels)); column j is the probability of labels[j].
        A row of all NaN means "no prediction" for that row.
    labels (Sequence[str]): The pipeline's labels, in the column order of ``probs``.
    texts (Sequence[str] | None): The rows' texts, shown next to the most confident errors.
    n_errors (int): How many of the most confident errors to keep.
    RETURNS (EvaluationResult): Metrics over the rows with a known gold label and a prediction;
        see the module docstring for how the other rows are counted.
    """
    labels = _check_labels(labels)
    probs = _check_probs(probs, labels)
    n_rows = probs.shape[0]
    if len(gold) != n_rows:
        raise BertclsError(
            f"Got {len(gold)} gold labels but {n_rows} rows of probabilities; pass one gold "
            "value per predicted row (use None where there is no gold label)."
        )
    if texts is not None and len(texts) != n_rows:
        raise BertclsError(
            f"Got {len(texts)} texts but {n_rows} rows of probabilities; pass one text per row "
            "or texts=None."
        )
    if texts is not None:
        # Positional access below; a filtered pandas Series would otherwise index by label.
        texts = list(texts)
    if isinstance(n_errors, bool) or not isinstance(n_errors, int) or n_errors < 0:
        raise BertclsError(f"n_errors={n_errors!r} must be a whole number >= 0.")

    label_to_index = {label: i for i, label in enumerate(labels)}
    has_prediction = ~np.isnan(probs).all(axis=1)
    gold_index = np.full(n_rows, -1, dtype=np.int64)
    missing_gold: list[int] = []
    unknown_rows: dict[str, list[int]] = {}
    no_prediction: list[int] = []
    for row, value in enumerate(gold):
        label = _normalize_gold(value)
        if label is None:
            missing_gold.append(row)
        elif label not in label_to_index:
            unknown_rows.setdefault(label, []).append(row)
        elif not has_prediction[row]:
            no_prediction.append(row)
        else:
            gold_index[row] = label_to_index[label]

    row_index = np.flatnonzero(gold_index >= 0)
    if row_index.size == 0:
        raise BertclsError(
            f"No row can be evaluated: of {n_rows} rows, {len(missing_gold)} have no gold label, "
            f"{sum(len(r) for r in unknown_rows.values())} have gold labels the pipeline does "
            f"not know ({sorted(unknown_rows)[:10]}), {len(no_prediction)} have no prediction. "
            f"The pipeline's labels are {labels}; check that the gold column is the right one."
        )
    y_true = gold_index[row_index]
    p = probs[row_index]
    y_pred = p.argmax(axis=1)
    confidence = p[np.arange(len(y_pred)), y_pred]
    all_idx = list(range(len(labels)))

    # Averages over the labels that occur (sklearn's default without `labels`), so a label the
    # data simply does not contain is not scored as a 0 that drags the macro mean down.
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    averages = {}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=average, zero_division=0
        )
        averages[average] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
        }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=all_idx, average=None, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    confusion = confusion_matrix(y_true, y_pred, labels=all_idx)

    pr_curves: dict[str, PRCurve] = {}
    roc_auc: dict[str, float | None] = {}
    for i, label in enumerate(labels):
        is_label = y_true == i
        n_positive = int(is_label.sum())
        if n_positive > 0:
            curve_precision, curve_recall, _ = precision_recall_curve(is_label, p[:, i])
            pr_curves[label] = PRCurve(
                label=label,
                precision=curve_precision,
                recall=curve_recall,
                average_precision=float(average_precision_score(is_label, p[:, i])),
                n_positive=n_positive,
            )
        # ROC AUC needs both positives and negatives for the class.
        defined = 0 < n_positive < len(y_true)
        roc_auc[label] = float(roc_auc_score(is_label, p[:, i])) if defined else None
    defined_columns = [i for i, label in enumerate(labels) if roc_auc[label] is not None]
    if len(defined_columns) >= 2:
        one_hot = np.eye(len(labels), dtype=np.int64)[y_true][:, defined_columns]
        macro_roc_auc: float | None = float(
            roc_auc_score(one_hot, p[:, defined_columns], average="macro")
        )
    elif defined_columns:
        macro_roc_auc = roc_auc[labels[defined_columns[0]]]
    else:
        macro_roc_auc = None

    correct = y_pred == y_true
    calibration = _calibration(correct, confidence)
    errors = _most_confident_errors(
        row_index, y_true, y_pred, confidence, p, labels, texts, n_errors
    )
    return EvaluationResult(
        labels=labels,
        n_rows=n_rows,
        n_evaluated=int(row_index.size),
        n_missing_gold=len(missing_gold),
        n_no_prediction=len(no_prediction),
        unknown_gold={label: len(rows) for label, rows in unknown_rows.items()},
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro=averages["macro"],
        weighted=averages["weighted"],
        averaged_labels=[labels[i] for i in present],
        per_class=per_class,
        confusion=confusion.tolist(),
        pr_curves=pr_curves,
        roc_auc=roc_auc,
        macro_roc_auc=macro_roc_auc,
        calibration=calibration,
        most_confident_errors=errors,
        row_index=row_index,
        gold_index=y_true,
        pred_index=y_pred,
        confidence=confidence,
        missing_gold_rows=np.asarray(missing_gold, dtype=np.int64),
        no_prediction_rows=np.asarray(no_prediction, dtype=np.int64),
        unknown_gold_rows={
            label: np.asarray(rows, dtype=np.int64) for label, rows in unknown_rows.items()
        },
    )


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if len(labels) < 2:
        raise BertclsError(
            f"labels={labels!r}: need at least two labels to evaluate a classifier; pass the "
            "pipeline component's labels."
        )
    for label in labels:
        if not isinstance(label, str) or not label:
            raise BertclsError(f"Label {label!r} in labels={labels!r} must be non-empty text.")
    if len(set(labels)) != len(labels):
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        raise BertclsError(f"labels={labels!r} repeats {duplicates}; each label must be unique.")
    return labels


def _check_probs(probs: np.ndarray, labels: list[str]) -> np.ndarray:
    try:
        probs = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BertclsError(f"probs must be a numeric array of probabilities: {err}") from None
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise BertclsError(
            f"probs has shape {probs.shape}, expected (n_rows, {len(labels)}): one column per "
            f"label in {labels}."
        )
    nan = np.isnan(probs)
    partial = np.flatnonzero(nan.any(axis=1) & ~nan.all(axis=1))
    if partial.size:
        raise BertclsError(
            f"Row {int(partial[0])} of probs has NaN in some columns only "
            f"({probs[partial[0]].tolist()}); a row must be all numbers, or all NaN for "
            "'no prediction'."
        )
    finite = probs[~nan]
    if finite.size and (
        not np.isfinite(finite).all()
        or finite.min() < -_PROB_TOLERANCE
        or finite.max() > 1 + _PROB_TOLERANCE
    ):
        bad = np.argwhere(~nan & ((probs < -_PROB_TOLERANCE) | ~(probs <= 1 + _PROB_TOLERANCE)))
        row, col = (int(x) for x in bad[0])
        raise BertclsError(
            f"probs[{row}, {col}] = {probs[row, col]} (label {labels[col]!r}) is not a "
            "probability in [0, 1]; pass the component's scores (softmax outputs), not logits."
        )
    # Values a rounding error outside [0, 1] would make calibration_curve refuse the input.
    return np.where(nan, np.nan, np.clip(probs, 0.0, 1.0))


def _normalize_gold(value: Any) -> str | None:
    """The gold label as text, or None when the value means "no gold label"."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _calibration(correct: np.ndarray, confidence: np.ndarray) -> Calibration:
    edges = np.linspace(0.0, 1.0, N_CALIBRATION_BINS + 1)
    accuracy, mean_confidence = calibration_curve(
        correct.astype(np.int64),
        confidence,
        n_bins=N_CALIBRATION_BINS,
        strategy="uniform",
        pos_label=1,
    )
    # calibration_curve returns only non-empty bins and no counts; bin the same way it does
    # (searchsorted on the inner edges) to get the counts for the same bins.
    bin_ids = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(bin_ids, minlength=N_CALIBRATION_BINS)
    nonempty = np.flatnonzero(counts)
    count = counts[nonempty]
    # scikit-learn has no expected calibration error; it is the count-weighted gap per bin.
    ece = float(np.sum(count / count.sum() * np.abs(accuracy - mean_confidence)))
    return Calibration(
        n_bins=N_CALIBRATION_BINS,
        bin_lower=edges[nonempty],
        bin_upper=edges[nonempty + 1],
        mean_confidence=mean_confidence,
        accuracy=accuracy,
        count=count,
        ece=ece,
    )


def _most_confident_errors(
    row_index: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    p: np.ndarray,
    labels: list[str],
    texts: Sequence[str] | None,
    n_errors: int,
) -> list[dict[str, Any]]:
    wrong = np.flatnonzero(y_pred != y_true)
    # Most confident first; ties in input order so the table is stable between runs.
    order = wrong[np.lexsort((row_index[wrong], -confidence[wrong]))][:n_errors]
    errors = []
    for i in order:
        row = int(row_index[i])
        text = None
        if texts is not None:
            value = texts[row]
            text = (
                ""
                if value is None or (isinstance(value, float) and np.isnan(value))
                else str(value)
            )
        errors.append(
            {
                "row": row,
                "text": text,
                "gold": labels[int(y_true[i])],
                "predicted": labels[int(y_pred[i])],
                "confidence": float(confidence[i]),
                "gold_probability": float(p[i, y_true[i]]),
            }
        )
    return errors


def _thin_indices(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _json_float(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------------------------------------
# Plots


def _short(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def format_share(share: float) -> str:
    """A share of a confusion-matrix row as a percentage that never reads 0 % or 100 % when a
    few rows are off (3 of 725 is "0.4%", not "0%")."""
    whole = f"{share:.0%}"
    if whole in ("0%", "100%") and 0.0 < share < 1.0:
        return f"{share:.1%}" if 0.0005 <= share <= 0.9995 else f"{share:.2%}"
    return whole


def plot_confusion_matrix(result: EvaluationResult) -> Figure:
    """Confusion matrix with counts and row percentages; shading is the share of the gold row.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    counts = np.asarray(result.confusion, dtype=np.int64)
    k = len(result.labels)
    row_totals = counts.sum(axis=1, keepdims=True)
    # Row-normalized so a small class's errors are as visible as a large class's.
    share = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0
    )
    side = max(5.0, 0.8 * k + 3.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    tick_labels = [_short(label) for label in result.labels]
    ax.set_xticks(range(k), tick_labels)
    ax.set_yticks(range(k), tick_labels)
    if k > 4 or max(len(label) for label in tick_labels) > 8:
        ax.tick_params(axis="x", labelrotation=40)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    fontsize = 11 if k <= 4 else 9.5 if k <= 7 else 8.5
    for i in range(k):
        for j in range(k):
            text = f"{counts[i, j]:,}"
            if row_totals[i, 0] > 0:
                text += f"\n{format_share(share[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if share[i, j] > 0.55 else "black",
            )
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("Gold label")
    ax.set_title(f"Confusion matrix ({result.n_evaluated:,} rows)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Share of gold row")
    return fig


def plot_pr_curves(result: EvaluationResult) -> Figure:
    """One-vs-rest precision-recall curve per class, with average precision in the legend.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    # With many classes the curves fill the lower left, so the legend goes beside the axes.
    legend_outside = len(result.pr_curves) > 4
    fig = Figure(figsize=(10.0 if legend_outside else 7.0, 5.5), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(result.labels))
    for color, label in zip(colors, result.labels, strict=True):
        curve = result.pr_curves.get(label)
        if curve is None:
            continue
        ax.plot(
            curve.recall,
            curve.precision,
            drawstyle="steps-post",
            color=color,
            linewidth=1.6,
            label=f"{_short(label)} (AP {curve.average_precision:.3f}, n={curve.n_positive:,})",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title("Precision-recall curves (one class vs rest)")
    ax.grid(True, alpha=0.3)
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    else:
        ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    return fig


def plot_reliability(result: EvaluationResult) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal, rows per bin below.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    cal = result.calibration
    fig = Figure(figsize=(6.5, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = cal.bin_upper - cal.bin_lower
    top.plot(
        [0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="Perfectly calibrated"
    )
    top.bar(
        cal.bin_lower,
        cal.accuracy,
        width=width,
        align="edge",
        color="#4C72B0",
        alpha=0.35,
        edgecolor="#4C72B0",
        label="Accuracy in bin",
    )
    top.plot(
        cal.mean_confidence,
        cal.accuracy,
        marker="o",
        color="#C44E52",
        linewidth=1.5,
        label="Mean confidence vs accuracy",
    )
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.02)
    top.set_ylabel("Accuracy")
    top.set_title(f"Reliability diagram (ECE {cal.ece:.3f})")
    top.legend(loc="upper left", fontsize=9)
    top.grid(True, alpha=0.3)
    bottom.bar(cal.bin_lower, cal.count, width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("Confidence (probability of the predicted label)")
    bottom.set_ylabel("Rows")
    bottom.grid(True, axis="y", alpha=0.3)
    return fig


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # savefig on a bare Figure renders with Agg for PNG; no pyplot, no GUI backend.
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Reports


def format_summary(result: EvaluationResult) -> str:
    """A plain-text table for the terminal: per-class scores, averages, accuracy and row counts.

    result (EvaluationResult): The evaluation to summarize.
    RETURNS (str): Lines joined by newlines, no trailing newline.
    """
    name_width = max(len("weighted avg"), *(len(label) for label in result.labels))
    header = f"{'':>{name_width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
    lines = [
        f"Evaluated {result.n_evaluated:,} of {result.n_rows:,} rows "
        f"(missing gold: {result.n_missing_gold:,}, unknown gold: {result.n_unknown_gold:,}, "
        f"no prediction: {result.n_no_prediction:,})",
        "",
        header,
        "",
    ]
    for label, scores in result.per_class.items():
        lines.append(
            f"{label:>{name_width}}  {scores['precision']:>9.3f}  {scores['recall']:>9.3f}  "
            f"{scores['f1']:>9.3f}  {scores['support']:>9,}"
        )
    lines.append("")
    lines.append(
        f"{'accuracy':>{name_width}}  {'':>9}  {'':>9}  {result.accuracy:>9.3f}  "
        f"{result.n_evaluated:>9,}"
    )
    for name, scores in (("macro avg", result.macro), ("weighted avg", result.weighted)):
        lines.append(
            f"{name:>{name_width}}  {scores['precision']:>9.3f}  {scores['recall']:>9.3f}  "
            f"{scores['f1']:>9.3f}  {result.n_evaluated:>9,}"
        )
    lines.append("")
    auc = "n/a" if result.macro_roc_auc is None else f"{result.macro_roc_auc:.3f}"
    lines.append(f"Macro ROC AUC: {auc}    ECE: {result.calibration.ece:.3f}")
    for note in result.notes():
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def write_report(
    result: EvaluationResult,
    html_path: str | Path,
    *,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    title: str = "Evaluation report",
    details: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a self-contained HTML report, and optionally the JSON and the PNG plots.

    The HTML embeds its plots as base64 PNG and its CSS inline, so it opens offline and can be
    mailed as one file. All plots are rendered before anything is written, and each file is
    written to a temporary file beside it and renamed into place, so a failure never leaves a
    partial file under a final name. The HTML is written last.

    result (EvaluationResult): The evaluation to report.
    html_path (str | Path): Where to write the HTML; parent folders are created. A folder, a
        file under a read-only folder or a full disk raises BertclsError before or instead of
        writing anything under a final name.
    json_path (str | Path | None): Where to write ``result.to_dict()`` plus ``details`` as JSON.
    plots_dir (str | Path | None): Folder for confusion_matrix.png, pr_curves.png and
        reliability.png.
    title (str): Heading and window title of the report.
    details (dict | None): Context shown in the header and stored in the JSON, such as the
        pipeline path, data file and columns. Values are shown as text.
    RETURNS (dict[str, Path]): The files written, keyed "html", "json", "confusion_matrix",
        "pr_curves", "reliability".
    """
    check_report_paths(html_path, json_path, plots_dir)  # first: rendering takes a while
    details = dict(details or {})
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    pngs = {
        "confusion_matrix": _png_bytes(plot_confusion_matrix(result)),
        "pr_curves": _png_bytes(plot_pr_curves(result)),
        "reliability": _png_bytes(plot_reliability(result)),
    }
    page = _render_html(result, pngs, title=title, details=details, generated=generated)
    json_text = None
    if json_path is not None:
        payload = {"title": title, "generated": generated, "details": details, **result.to_dict()}
        # default=str: details commonly hold Paths; allow_nan=False keeps the JSON strict.
        json_text = json.dumps(payload, indent=2, ensure_ascii=False, default=str, allow_nan=False)

    written: dict[str, Path] = {}
    for folder in (plots_dir, json_path and Path(json_path).parent, Path(html_path).parent):
        if folder is not None:
            make_output_folder(folder)
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        for name in _PLOT_NAMES:
            path = plots_dir / f"{name}.png"
            write_bytes_atomic(path, pngs[name])
            written[name] = path
    if json_text is not None:
        json_path = Path(json_path)
        write_bytes_atomic(json_path, (json_text + "\n").encode("utf-8"))
        written["json"] = json_path
    html_path = Path(html_path)
    write_bytes_atomic(html_path, page.encode("utf-8"))
    written["html"] = html_path
    return written


def report_paths(
    html_path: str | Path, json_path: str | Path | None = None, plots_dir: str | Path | None = None
) -> dict[str, Path]:
    """The files that ``write_report`` writes, keyed as in its result."""
    paths = {"html": Path(html_path)}
    if json_path is not None:
        paths["json"] = Path(json_path)
    if plots_dir is not None:
        paths.update({name: Path(plots_dir) / f"{name}.png" for name in _PLOT_NAMES})
    return paths


def check_report_paths(
    html_path: str | Path,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    *,
    options: tuple[str, str, str] = ("The report", "The JSON file", "The plots folder"),
) -> None:
    """Raise BertclsError unless ``write_report`` can write these paths, before any work.

    The report and the JSON file must not be folders, the plots folder not a file, the
    folders must be writable, and no two outputs may have the same name.
    options: how the messages name the report, the JSON file and the plots folder.
    """
    check_output_file(html_path, option=options[0], example="report.html")
    if json_path is not None:
        check_output_file(json_path, option=options[1], example="metrics.json")
    if plots_dir is not None:
        check_output_folder(plots_dir, option=options[2])
    paths = report_paths(html_path, json_path, plots_dir).values()
    if len({path.resolve() for path in paths}) < len(paths):
        raise BertclsError(
            f"{options[0]} ({html_path}), {options[1]} ({json_path}) and the plots need "
            "different file names; one would overwrite another."
        )


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: right;
         vertical-align: top; }
th { background: #f5f5f5; }
td.label, th.label { text-align: left; }
td.text { text-align: left; max-width: 40rem; white-space: pre-wrap; word-break: break-word; }
tr.avg td { font-weight: 600; background: #fafafa; }
table.details td, table.details th { text-align: left; border: none; padding: 0.1rem 0.8rem 0.1rem 0; }
table.details th { background: none; color: #555; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 1rem; min-width: 8rem; }
.card .value { font-size: 1.6rem; font-weight: 600; }
.card .name { color: #666; font-size: 0.9rem; }
.notes { background: #fff8e1; border: 1px solid #f0d58c; border-radius: 6px;
         padding: 0.5rem 1rem; }
img { max-width: 100%; height: auto; }
.muted { color: #777; }
"""


def _render_html(
    result: EvaluationResult,
    pngs: dict[str, bytes],
    *,
    title: str,
    details: dict[str, Any],
    generated: str,
) -> str:
    esc = html.escape

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    def image(name: str, alt: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'

    detail_rows = "".join(
        f"<tr><th>{esc(str(key))}</th><td>{esc(_detail_text(value))}</td></tr>"
        for key, value in {**details, "Generated": generated}.items()
    )
    cards = [
        ("Accuracy", num(result.accuracy)),
        ("Macro F1", num(result.macro["f1"])),
        ("Weighted F1", num(result.weighted["f1"])),
        ("Macro ROC AUC", num(result.macro_roc_auc)),
        ("ECE", num(result.calibration.ece)),
        ("Rows evaluated", f"{result.n_evaluated:,} / {result.n_rows:,}"),
    ]
    cards_html = "".join(
        f'<div class="card"><div class="value">{esc(value)}</div>'
        f'<div class="name">{esc(name)}</div></div>'
        for name, value in cards
    )
    counts = (
        f"Rows: {result.n_rows:,}; evaluated: {result.n_evaluated:,}; missing gold: "
        f"{result.n_missing_gold:,}; unknown gold: {result.n_unknown_gold:,}; no prediction: "
        f"{result.n_no_prediction:,}."
    )
    notes = result.notes()
    notes_html = (
        '<div class="notes"><ul>' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></div>"
        if notes
        else ""
    )
    unknown_html = ""
    if result.unknown_gold:
        unknown_rows = "".join(
            f'<tr><td class="label">{esc(label)}</td><td>{n:,}</td>'
            f'<td class="label">{esc(_row_examples(result.unknown_gold_rows[label]))}</td></tr>'
            for label, n in result.unknown_gold.items()
        )
        unknown_html = (
            "<h3>Gold labels the pipeline does not know (excluded)</h3>"
            '<table><tr><th class="label">Gold label</th><th>Rows</th>'
            f'<th class="label">First rows (0-based)</th></tr>{unknown_rows}</table>'
        )

    class_rows = []
    for label, scores in result.per_class.items():
        curve = result.pr_curves.get(label)
        class_rows.append(
            f'<tr><td class="label">{esc(label)}</td><td>{num(scores["precision"])}</td>'
            f"<td>{num(scores['recall'])}</td><td>{num(scores['f1'])}</td>"
            f"<td>{scores['support']:,}</td>"
            f"<td>{num(curve.average_precision if curve else None)}</td>"
            f"<td>{num(result.roc_auc[label])}</td></tr>"
        )
    for name, scores, auc in (
        ("macro avg", result.macro, num(result.macro_roc_auc)),
        ("weighted avg", result.weighted, ""),
    ):
        class_rows.append(
            f'<tr class="avg"><td class="label">{name}</td><td>{num(scores["precision"])}</td>'
            f"<td>{num(scores['recall'])}</td><td>{num(scores['f1'])}</td>"
            f"<td>{result.n_evaluated:,}</td><td></td><td>{auc}</td></tr>"
        )

    header_cells = "".join(f"<th>{esc(label)}</th>" for label in result.labels)
    confusion_rows = "".join(
        f'<tr><th class="label">{esc(label)}</th>'
        + "".join(f"<td>{n:,}</td>" for n in row)
        + "</tr>"
        for label, row in zip(result.labels, result.confusion, strict=True)
    )

    error_rows = []
    for error in result.most_confident_errors:
        text = error["text"]
        if text is None:
            text_cell = '<span class="muted">(no text given)</span>'
        else:
            if len(text) > _MAX_TEXT_CHARS_HTML:
                text = text[:_MAX_TEXT_CHARS_HTML] + "…"
            text_cell = esc(text)
        error_rows.append(
            f'<tr><td>{error["row"]}</td><td class="label">{esc(error["gold"])}</td>'
            f'<td class="label">{esc(error["predicted"])}</td>'
            f"<td>{num(error['confidence'])}</td><td>{num(error['gold_probability'])}</td>"
            f'<td class="text">{text_cell}</td></tr>'
        )
    errors_html = (
        '<table><tr><th>Row</th><th class="label">Gold</th><th class="label">Predicted</th>'
        '<th>Confidence</th><th>P(gold)</th><th class="label">Text</th></tr>'
        + "".join(error_rows)
        + "</table>"
        if error_rows
        else '<p class="muted">No errors among the evaluated rows.</p>'
    )

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<table class="details">{detail_rows}</table>

<h2>Summary</h2>
<div class="cards">{cards_html}</div>
<p>{esc(counts)}</p>
{notes_html}
{unknown_html}

<h2>Per-class scores</h2>
<table>
<tr><th class="label">Label</th><th>Precision</th><th>Recall</th><th>F1</th><th>Support</th>
<th>Avg. precision</th><th>ROC AUC</th></tr>
{"".join(class_rows)}
</table>
<p class="muted">Averages are over the labels seen in the evaluated rows
({esc(", ".join(result.averaged_labels))}). Precision, recall and F1 are 0 where undefined.</p>

<h2>Confusion matrix</h2>
<p class="muted">Rows: gold label; columns: predicted label.</p>
<table>
<tr><th class="label">gold \\ predicted</th>{header_cells}</tr>
{confusion_rows}
</table>
{image("confusion_matrix", "Confusion matrix")}

<h2>Precision-recall curves</h2>
{image("pr_curves", "Precision-recall curves")}

<h2>Calibration</h2>
<p>Expected calibration error: {num(result.calibration.ece)} over
{result.calibration.n_bins} equal-width confidence bins.</p>
{image("reliability", "Reliability diagram")}

<h2>Most confident errors</h2>
{errors_html}
</body>
</html>
"""


def _detail_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _row_examples(rows: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", …" if len(rows) > limit else "")


def evaluate_file(
    pipeline: str | Path,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    sheet: str | int | None = None,
    encoding: str | None = None,
    batch_size: int = 256,
) -> tuple[EvaluationResult, dict[str, Any]]:
    """Load a pipeline, predict a table's (or a ``.spacy`` file's) texts and score them.

    A ``.spacy`` file (as written by ``convert``) carries its gold labels in ``doc.cats``: the
    label with value 1.0 is the gold one, and the column options are not used.
    RETURNS: the result and the details that a report's header shows.
    """
    # Imported here: this module is also used without any pipeline (e.g. by the desktop app on
    # predictions it already has), and spaCy pipelines are slow to import.
    from .labeling import load_pipeline, pipeline_labels, predict_proba
    from .tables import read_table, require_columns, text_values

    path = Path(path)
    nlp = load_pipeline(pipeline)
    input_notes: list[str] = []
    if path.suffix == ".spacy":
        texts, gold = _texts_and_gold_from_docbin(path, nlp)
        columns = "doc.text / doc.cats"
    else:
        table = read_table(path, sheet=sheet, encoding=encoding, notes=input_notes)
        require_columns(table.columns, [text_column, label_column], source=str(path))
        texts, gold = text_values(table[text_column]), table[label_column].tolist()
        columns = f"text: {text_column}, gold: {label_column}"
    probs = predict_proba(nlp, texts, batch_size=batch_size)
    result = evaluate_predictions(gold, probs, pipeline_labels(nlp), texts=texts)
    result.input_notes = input_notes
    details = {"pipeline": str(pipeline), "data": str(path), "columns": columns}
    return result, details


def _texts_and_gold_from_docbin(path: Path, nlp: Any) -> tuple[list[str], list[str | None]]:
    from spacy.tokens import DocBin

    if not path.exists():
        raise BertclsError(f"{path} does not exist.")
    try:
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except (ValueError, OSError) as error:
        raise BertclsError(f"{path} is not a readable .spacy file: {error}") from error
    gold = [next((k for k, v in doc.cats.items() if v == 1.0), None) for doc in docs]
    return [doc.text for doc in docs], gold
