"""Metrics for a classifier's predictions against gold labels.

Every metric comes from scikit-learn; this module only decides which rows take part.

Which rows are evaluated. Each input row is counted exactly once, in the first of these that
applies:

1. missing gold: the gold value is None, NaN or blank text;
2. unknown gold: the gold label is not one of the pipeline's ``labels``. These rows are
   EXCLUDED from every metric (the model cannot predict such a label, so there is no column for
   it in the confusion matrix) and reported per label, so a typo or a renamed label in the data
   is visible instead of silently lowering the accuracy;
3. no prediction: the row of ``probs`` is all NaN (an empty text was not sent to the model);
4. evaluated: everything else.

Row numbers. Results name rows in two ways: 0-based positions in the inputs (``row`` of an
error, ``confusion_rows``, the ``*_rows`` arrays), for a caller mapping them back to its own
data, and the row numbers a spreadsheet shows (``row_number`` of an error, ``row_numbers``),
for people: the header is row 1, so a CSV's first data row is row 2, and a .txt file's first
line is row 1 (see `spacy_bertcls.tables.row_numbers`). Reports show only the latter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..decisions import DecisionRule
from ..errors import BertclsError
from ..tables import HEADER_FIRST_ROW_NUMBER
from ..tables.cells import cell_text, label_text

# Fifteen equal-width bins, as in Guo et al. 2017 (temperature scaling), so that expected
# calibration errors compare with the literature's; with more, the rows per bin of a test split
# of a few thousand get too few and the observed accuracy too noisy to read.
N_CALIBRATION_BINS = 15
# Probabilities come out of a softmax in float32, so allow rounding just outside [0, 1].
_PROB_TOLERANCE = 1e-4
# A PR curve has one point per distinct score; JSON keeps at most this many so that a report on
# 100,000 rows stays a few hundred kB. The in-memory result keeps every point for plotting.
_MAX_CURVE_POINTS_JSON = 500


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
    them back to its own table rows; ``row_numbers`` turns them into the numbers people see.

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
    calibration (Calibration): Reliability-diagram bins and expected calibration error of the
        most probable label's probability (the top-label ECE, whatever the decision rule).
    calibration_before (Calibration | None): The same for the probabilities before the
        pipeline's temperature scaling, when it has one (``uncalibrated_probs``).
    decision (str): How labels were decided (`DecisionRule.describe`).
    most_confident_errors (list[dict]): Wrong predictions, most confident first: row (0-based
        position), row_number (the row as a spreadsheet shows it, header = row 1), text (None
        when no texts were given), gold, predicted, confidence, gold_probability.
    row_numbers (np.ndarray): Per input row, the number a spreadsheet shows for it (header =
        row 1); reports name rows by these.
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
    row_numbers: np.ndarray = field(repr=False)
    # What reading the input warned about (e.g. formula cells without a saved value).
    input_notes: list[str] = field(default_factory=list)
    calibration_before: Calibration | None = None
    decision: str = "the most probable label"

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
        return coverage_notes(self, "evaluated", self.per_class)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (plain Python types; undefined values are None).

        The per-row index arrays are left out; PR curves are thinned to at most 500 points.
        Errors name their row by ``row_number`` only (as a spreadsheet shows it, header = row
        1): the 0-based position means nothing outside this process.
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
            "calibration_before": (
                None if self.calibration_before is None else self.calibration_before.to_dict()
            ),
            "decision": self.decision,
            "most_confident_errors": [
                {key: value for key, value in error.items() if key != "row"}
                for error in self.most_confident_errors
            ],
            "notes": self.notes(),
        }


def coverage_notes(result: Any, verb: str, scores: dict[str, dict[str, Any]]) -> list[str]:
    """The notes of a single- or multi-label result: its input notes, the rows left out (no
    gold, unknown gold, no prediction) and the labels absent from the rows ``verb`` (evaluated
    or scored); ``scores`` are its per-label scores (with "support")."""
    notes = list(result.input_notes)
    if result.n_missing_gold:
        notes.append(
            f"{result.n_missing_gold:,} of {result.n_rows:,} rows have no gold label "
            f"(empty or missing) and were not {verb}."
        )
    if result.unknown_gold:
        listed = ", ".join(f"{label!r} ({n})" for label, n in result.unknown_gold.items())
        notes.append(
            f"{result.n_unknown_gold:,} rows have gold labels the pipeline does not know and "
            f"were excluded from all metrics: {listed}. The pipeline's labels are "
            f"{result.labels}; fix the gold column or retrain with these labels."
        )
    if result.n_no_prediction:
        notes.append(
            f"{result.n_no_prediction:,} rows have no prediction (empty text) and were not {verb}."
        )
    absent = [label for label in result.labels if label not in result.averaged_labels]
    if absent:
        notes.append(
            f"Labels never seen in the {verb} rows (no gold rows, never predicted): "
            f"{absent}. Their per-label scores are 0 and they are left out of the averages."
        )
    no_gold = [label for label in result.averaged_labels if scores[label]["support"] == 0]
    if no_gold:
        notes.append(
            f"Labels predicted but with no gold rows: {no_gold}. Their recall is undefined "
            "(shown as 0) and they have no PR curve or ROC AUC."
        )
    return notes


def evaluate_predictions(
    gold: Sequence[str | None],
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    n_errors: int = 20,
    row_numbers: Sequence[int] | np.ndarray | None = None,
    rule: DecisionRule | None = None,
    uncalibrated_probs: np.ndarray | None = None,
) -> EvaluationResult:
    """Score predicted class probabilities against gold labels.

    gold (Sequence[str | None]): Gold label per row. None, NaN and blank text count as missing.
        Each value is read by `tables.cells.label_text`: numbers are compared as text,
        whole-number floats as integers (a spreadsheet column of 0/1 with blanks is read as
        1.0), so labels "0"/"1" match; surrounding spaces are dropped.
    probs (np.ndarray): Shape (n_rows, len(labels)); column j is the probability of labels[j].
        A row of all NaN means "no prediction" for that row.
    labels (Sequence[str]): The pipeline's labels, in the column order of ``probs``.
    texts (Sequence[str] | None): The rows' texts, shown next to the most confident errors.
    n_errors (int): How many of the most confident errors to keep.
    row_numbers (Sequence[int] | np.ndarray | None): Per row, the number a spreadsheet shows
        for it (header = row 1), which reports show: for rows of a table read by
        `tables.read_table`, ``tables.row_numbers(frame, positions)``. None: the rows are
        taken as a table's data rows under a header, numbered 2, 3, ...
    rule (DecisionRule | None): How a row's label is decided from its probabilities (the
        pipeline's `spacy_bertcls.decisions.decision_rule`, e.g. a tuned threshold on the
        positive label); None: the most probable label. Exclusive classes only.
    uncalibrated_probs (np.ndarray | None): The same rows' probabilities before temperature
        scaling (`spacy_bertcls.calibration.uncalibrated`), for ``calibration_before``.
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
    numbers = _check_row_numbers(row_numbers, n_rows)

    label_to_index = {label: i for i, label in enumerate(labels)}
    has_prediction = ~np.isnan(probs).all(axis=1)
    gold_index = np.full(n_rows, -1, dtype=np.int64)
    missing_gold: list[int] = []
    unknown_rows: dict[str, list[int]] = {}
    no_prediction: list[int] = []
    for row, value in enumerate(gold):
        label = label_text(value)
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
    if rule is not None and not rule.exclusive:
        raise BertclsError(
            "evaluate_predictions scores one label per row; a multi-label pipeline's "
            "predictions are scored by spacy_bertcls.evaluation.evaluate_multilabel."
        )
    rule = rule or DecisionRule.make(labels, exclusive=True)
    y_pred = rule.predicted_index(p)
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

    calibration = _top_label_reliability(p, y_true)
    calibration_before = None
    if uncalibrated_probs is not None:
        before = _check_probs(np.asarray(uncalibrated_probs), labels)[row_index]
        calibration_before = _top_label_reliability(before, y_true)
    errors = _most_confident_errors(
        row_index, y_true, y_pred, confidence, p, labels, texts, numbers, n_errors
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
        calibration_before=calibration_before,
        decision=rule.describe(),
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
        row_numbers=numbers,
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


def _check_row_numbers(row_numbers: Sequence[int] | np.ndarray | None, n_rows: int) -> np.ndarray:
    if row_numbers is None:
        return np.arange(n_rows, dtype=np.int64) + HEADER_FIRST_ROW_NUMBER
    numbers = np.asarray(row_numbers)
    if numbers.shape != (n_rows,) or not (
        np.issubdtype(numbers.dtype, np.integer) or numbers.size == 0
    ):
        raise BertclsError(
            f"row_numbers must be one whole number per row ({n_rows} rows), not "
            f"{numbers.dtype} of shape {numbers.shape}; pass e.g. "
            "spacy_bertcls.tables.row_numbers(frame, positions)."
        )
    return numbers.astype(np.int64)


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


def _top_label_reliability(p: np.ndarray, y_true: np.ndarray) -> Calibration:
    top = p.argmax(axis=1)
    return reliability(top == y_true, p[np.arange(len(top)), top])


def reliability(correct: np.ndarray, confidence: np.ndarray) -> Calibration:
    """Reliability-diagram bins and ECE of `confidence` against 0/1 `correct` (scikit-learn's
    calibration_curve). For one probability per (row, label), pass the 0/1 gold as `correct`."""
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
    row_numbers: np.ndarray,
    n_errors: int,
) -> list[dict[str, Any]]:
    wrong = np.flatnonzero(y_pred != y_true)
    # Most confident first; ties in input order so the table is stable between runs.
    order = wrong[np.lexsort((row_index[wrong], -confidence[wrong]))][:n_errors]
    errors = []
    for i in order:
        row = int(row_index[i])
        text = None if texts is None else cell_text(texts[row])
        errors.append(
            {
                "row": row,
                "row_number": int(row_numbers[row]),
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
