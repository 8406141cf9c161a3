"""Probabilities an analyst can act on: temperature scaling and decision thresholds.

A fine-tuned (or class-weighted) classifier is usually over- or under-confident: its "0.92" is
right less (or more) often than 92 % of the time. Temperature scaling (Guo et al. 2017, "On
Calibration of Modern Neural Networks") divides the logits by one number T fitted on held-out
data by minimising the negative log-likelihood: for exclusive classes one T for the softmax
(which never changes the most probable label). For multi-label, each label's sigmoid gets its
own T and a bias b (Platt scaling, sigmoid(z / T + b)): a class-weighted binary cross-entropy
moves each label's logits by about log(pos_weight), which no temperature can undo (measured on
the multi-label airline tweets: pooled ECE 0.131 -> 0.137 with T alone).
After it, among rows given 0.92, about 92 % are right (on data like the dev split).

Then the decision thresholds (`spacy_bertcls.decisions`) are tuned on the calibrated dev
probabilities: for two exclusive classes one threshold on the positive label, for multi-label
one per label, each at the best F1 on dev (scikit-learn's precision-recall curve).

The path: dev docs with gold `cats` -> the component's logits -> `fit_temperature` ->
calibrated probabilities -> `tune_thresholds` -> stored in the component's cfg (saved with the
pipeline, applied by `predict`) -> `CalibrationFit` (what was fitted and the dev scores before
and after, for `bertcls train`, `bertcls calibrate`, `bertcls info` and the app).
scipy's bounded scalar minimiser fits T; scikit-learn gives the curves and the bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import spacy
from scipy.optimize import minimize, minimize_scalar
from sklearn.metrics import precision_recall_curve

from .decisions import DEFAULT_THRESHOLD, DecisionRule, check_thresholds
from .errors import BertclsError
from .evaluation.metrics import reliability
from .pipelines import find_textcat

# T is searched on a log scale in [e^-3, e^3] (0.05 to 20): a model that needs more than a
# 20-fold change of its logits is broken rather than miscalibrated.
_LOG_T_BOUNDS = (-3.0, 3.0)
_TINY = 1e-12
# A label needs this many positive and negative dev rows for a threshold of its own; with fewer
# the best-F1 point is noise and the default threshold is kept.
MIN_ROWS_PER_SIDE = 5


class TooFewRows(BertclsError):
    """The data has too few rows with a gold label to fit a temperature on."""


@dataclass
class CalibrationFit:
    """What `calibrate` fitted on the dev data, and the dev scores it was chosen by.

    temperature: T (one value for exclusive classes, one per label for multi-label).
    bias: multi-label only, the bias b added to each label's scaled logit; None otherwise.
    thresholds: the tuned (or given) decision thresholds, {label: threshold}.
    n_examples: dev rows with a gold label used.
    ece_before / ece_after: expected calibration error on dev (15 bins) with T = 1 and with T.
    nll_before / nll_after: mean negative log-likelihood on dev with T = 1 and with T.
    f1_default / f1_tuned: on dev, the F1 of the thresholded labels (exclusive binary: the
        positive label; multi-label: micro F1) with the default decision and with the
        thresholds; None where no threshold applies (more than two exclusive classes).
    notes: why a label kept its default threshold, and the like.
    """

    temperature: list[float]
    thresholds: dict[str, float]
    n_examples: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    f1_default: float | None = None
    f1_tuned: float | None = None
    notes: list[str] = field(default_factory=list)
    data: str | None = None
    bias: list[float] | None = None

    def to_cfg(self) -> dict[str, Any]:
        """The summary stored in the component's cfg (``cfg["calibration"]``), JSON-ready."""
        return {
            key: value for key, value in asdict(self).items() if key not in ("thresholds", "bias")
        }

    def format(self) -> str:
        temperature = ", ".join(f"{t:.3f}" for t in self.temperature)
        lines = [
            f"Calibrated on {self.n_examples:,} dev rows{f' ({self.data})' if self.data else ''}:"
            f" temperature {temperature}",
            f"  ECE {self.ece_before:.4f} -> {self.ece_after:.4f}, "
            f"NLL {self.nll_before:.4f} -> {self.nll_after:.4f}",
        ]
        if self.bias is not None:
            lines.insert(1, "  bias " + ", ".join(f"{b:+.3f}" for b in self.bias))
        if self.thresholds:
            tuned = ", ".join(f"{label} {t:.3f}" for label, t in self.thresholds.items())
            lines.append(f"  Decision thresholds: {tuned}")
        if self.f1_default is not None and self.f1_tuned is not None:
            lines.append(f"  Dev F1 {self.f1_default:.4f} (default) -> {self.f1_tuned:.4f}")
        lines.extend(f"  Note: {note}" for note in self.notes)
        return "\n".join(lines)


def probabilities(
    logits: np.ndarray,
    temperature: Sequence[float] | float,
    *,
    exclusive: bool,
    bias: Sequence[float] | float | None = None,
):
    """Softmax (exclusive) or sigmoid of ``logits / temperature (+ bias)``, float64."""
    z = np.asarray(logits, dtype=np.float64) / np.asarray(temperature, dtype=np.float64)
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    if exclusive:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def uncalibrated(
    probs: np.ndarray,
    temperature: Sequence[float] | None,
    *,
    exclusive: bool,
    bias: Sequence[float] | None = None,
):
    """The probabilities a calibrated component would give with T = 1, from its calibrated ones.

    log p = z / T + c, so softmax(T * log p) = softmax(z); for a sigmoid, logit(p) = z / T + b.
    Exact up to float32 rounding of ``probs`` (a probability rounded to 1.0 loses its margin,
    which moves a reliability bin by less than its width). NaN rows stay NaN.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if temperature is None:
        return probs
    t = np.asarray(temperature, dtype=np.float64)
    clipped = np.clip(probs, _TINY, 1 - _TINY)
    if exclusive:
        return probabilities(np.log(clipped) * t, 1.0, exclusive=True)
    logit = np.log(clipped / (1 - clipped))
    if bias is not None:
        logit = logit - np.asarray(bias, dtype=np.float64)
    return probabilities(logit * t, 1.0, exclusive=False)


def negative_log_likelihood(
    probs: np.ndarray, truth: np.ndarray, known: np.ndarray, *, exclusive: bool
) -> float:
    """Mean NLL of the gold labels: per row for exclusive classes, per known (row, label) entry
    for multi-label."""
    p = np.clip(probs, _TINY, 1 - _TINY)
    if exclusive:
        return float(-np.log((p * truth).sum(axis=1)).mean())
    losses = -(truth * np.log(p) + (1 - truth) * np.log(1 - p))
    return float((losses * known).sum() / max(known.sum(), 1))


def fit_temperature(
    logits: np.ndarray, truth: np.ndarray, known: np.ndarray, *, exclusive: bool
) -> tuple[list[float], list[float] | None]:
    """(T, bias) minimising the dev NLL: for exclusive classes one T and no bias; for
    multi-label one T and one bias per label (a label without both positive and negative known
    rows keeps T = 1, b = 0).

    logits: rows x labels; truth: 0/1 gold; known: 1 where the gold value is known (multi-label
    rows can miss some labels). Exclusive rows must have exactly one gold label.
    """
    logits = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    known = np.asarray(known, dtype=np.float64)
    if exclusive:

        def nll(log_t: float) -> float:
            p = probabilities(logits, np.exp(log_t), exclusive=True)
            return negative_log_likelihood(p, truth, known, exclusive=True)

        return [_minimise(nll)], None
    temperatures, biases = [], []
    for j in range(logits.shape[1]):
        rows = known[:, j] > 0
        y, z = truth[rows, j], logits[rows, j]
        if y.size == 0 or y.min() == y.max():
            temperatures.append(1.0)
            biases.append(0.0)
            continue
        t, b = _platt(z, y)
        temperatures.append(t)
        biases.append(b)
    return temperatures, biases


# When the model separates the dev rows without an error (exclusive: every argmax right;
# multi-label: a cut of the label's logits puts every positive above every negative), the NLL
# keeps falling as T shrinks: the fit says only "sharper, without limit" and ends wherever the
# probabilities round to 0 and 1, which turns every test error into a certain one. Measured:
# fine-tuned SMS spam, dev F1 1.00, T 0.053. Such a T is not used.


def unsaturated(
    temperature: list[float],
    bias: list[float] | None,
    logits: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    labels: Sequence[str],
    *,
    notes: list[str],
) -> tuple[list[float], list[float] | None]:
    """``temperature`` and ``bias`` with T = 1 (and b = 0) where the dev rows are separated
    without an error and the fit sharpened, each such case explained in ``notes``."""
    temperature = list(temperature)
    bias = None if bias is None else list(bias)
    logits, truth, known = np.asarray(logits), np.asarray(truth), np.asarray(known)
    for j, t in enumerate(temperature):
        if t >= 1.0:
            continue
        if bias is None:
            separated = bool((logits.argmax(axis=1) == truth.argmax(axis=1)).all())
        else:
            rows = known[:, j] > 0
            z, y = logits[rows, j], truth[rows, j] > 0
            separated = bool(y.any() and (~y).any() and z[y].min() > z[~y].max())
        if not separated:
            continue
        temperature[j] = 1.0
        if bias is not None:
            bias[j] = 0.0
        what = f" of {labels[j]!r}" if bias is not None else ""
        notes.append(
            f"The temperature{what} stays 1: the model decides every dev row right with a "
            f"margin, so the fitted T = {t:.3f} would only sharpen the probabilities without "
            "limit. Calibrate on more, or harder, held-out data."
        )
    return temperature, bias


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(T, b) of sigmoid(z / T + b) with the least binary NLL (scipy L-BFGS-B, analytic
    gradient; log T bounded as for exclusive classes)."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_t, b = params
        scaled = z * np.exp(-log_t) + b
        p = 1.0 / (1.0 + np.exp(-scaled))
        p = np.clip(p, _TINY, 1 - _TINY)
        value = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        d_scaled = (p - y) / len(y)
        return float(value), np.array([-(d_scaled * z * np.exp(-log_t)).sum(), d_scaled.sum()])

    found = minimize(
        loss, np.zeros(2), jac=True, method="L-BFGS-B", bounds=[_LOG_T_BOUNDS, (-20.0, 20.0)]
    )
    return float(np.exp(found.x[0])), float(found.x[1])


def _minimise(nll) -> float:
    found = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The threshold t (decide positive when score >= t) with the best F1, and that F1."""
    precision, recall, thresholds = precision_recall_curve(positive.astype(int), scores)
    # The last point (precision 1, recall 0) has no threshold.
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], _TINY)
    best = int(np.argmax(f1))
    # Thresholds must be inside (0, 1) to be stored; a saturated score of exactly 1.0 or 0.0
    # moves by less than any probability a float32 softmax gives below it.
    return float(np.clip(thresholds[best], 1e-6, 1 - 1e-6)), float(f1[best])


def tune_thresholds(
    probs: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    labels: Sequence[str],
    *,
    exclusive: bool,
    positive_label: str | None = None,
    default: float = DEFAULT_THRESHOLD,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """Decision thresholds at the best dev F1 (see the module docstring).

    Exclusive classes: only for two labels, on ``positive_label`` (default: the rarer label in
    the dev gold, e.g. spam); more than two keep the most probable label ({}). Multi-label: one
    per label with at least MIN_ROWS_PER_SIDE positive and negative dev rows; the others keep
    the default (a note in ``notes`` says which).
    """
    notes = notes if notes is not None else []
    labels = list(labels)
    if exclusive:
        if len(labels) != 2:
            return {}
        if positive_label is None:
            positive_label = labels[int(np.argmin(truth.sum(axis=0)))]
        candidates = [positive_label]
    else:
        candidates = labels
    thresholds: dict[str, float] = {}
    for label in candidates:
        j = labels.index(label)
        rows = known[:, j] > 0
        positives = int(truth[rows, j].sum())
        negatives = int(rows.sum()) - positives
        if min(positives, negatives) < MIN_ROWS_PER_SIDE:
            notes.append(
                f"{label!r} keeps the default threshold: the dev data has {positives} positive "
                f"and {negatives} negative rows for it, too few to tune one "
                f"(at least {MIN_ROWS_PER_SIDE} of each)."
            )
            continue
        scores, gold = probs[rows, j], truth[rows, j] > 0
        threshold, best = best_f1_threshold(scores, gold)
        # A cut no better on dev than the default one is an arbitrary point of a plateau (on
        # dev rows decided without an error, any cut in the gap): keep the default.
        if best <= _f1(scores >= default, gold):
            notes.append(f"{label!r} keeps the default threshold: no cut is better on dev.")
            continue
        thresholds[label] = threshold
    return thresholds


def _f1(decided: np.ndarray, gold: np.ndarray) -> float:
    return 2 * float((decided & gold).sum()) / max(float(decided.sum() + gold.sum()), _TINY)


def thresholded_f1(
    probs: np.ndarray, truth: np.ndarray, known: np.ndarray, rule: DecisionRule
) -> float | None:
    """Exclusive binary: F1 of the positive label (None without one); multi-label: micro F1
    over the known entries; more than two exclusive classes: None."""
    if rule.exclusive:
        positive = rule.positive_label
        if positive is None:
            return None
        j = rule.labels.index(positive)
        decided = rule.predicted_index(probs) == j
        gold = truth[:, j] > 0
    else:
        mask = known > 0
        decided = rule.predicted_sets(probs)[mask]
        gold = truth[mask] > 0
    tp = float((decided & gold).sum())
    return 2 * tp / max(float(decided.sum() + gold.sum()), _TINY)


def expected_calibration_error(
    probs: np.ndarray, truth: np.ndarray, known: np.ndarray, *, exclusive: bool
) -> float:
    """ECE over 15 equal-width bins: of the top label's probability for exclusive classes, of
    every known (row, label) probability for multi-label (the pooled, "classwise" form)."""
    if exclusive:
        top = probs.argmax(axis=1)
        correct = truth[np.arange(len(top)), top] > 0
        return reliability(correct, probs.max(axis=1)).ece
    mask = known > 0
    return reliability(truth[mask] > 0, probs[mask]).ece


def gold_matrix(
    cats: Sequence[Mapping[str, float]], labels: Sequence[str], *, exclusive: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold 0/1 values (rows x labels), which are known, and which rows have a usable gold
    label, from each row's ``doc.cats``-style mapping (spaCy's reading: a label missing from
    an exclusive row is 0, from a multi-label row unknown)."""
    truth = np.zeros((len(cats), len(labels)))
    known = np.ones_like(truth)
    for i, row in enumerate(cats):
        for j, label in enumerate(labels):
            if label in row:
                truth[i, j] = float(row[label])
            elif not exclusive:
                known[i, j] = 0.0
    usable = truth.sum(axis=1) == 1 if exclusive else known.any(axis=1)
    return truth, known, usable


def calibrate(
    nlp: spacy.Language,
    texts: Sequence[str],
    cats: Sequence[Mapping[str, float]],
    *,
    thresholds: Mapping[str, float] | None = None,
    tune: bool = True,
    positive_label: str | None = None,
    batch_size: int = 64,
    data: str | None = None,
) -> CalibrationFit:
    """Fit the temperature (and tune the thresholds) of the pipeline's ``bert_textcat`` on dev
    texts with gold ``cats``, and store them in the component (``nlp`` is changed in memory; save
    it to keep them).

    thresholds: set by the user, {label: threshold}; they replace tuned ones for those labels.
    tune: tune the other thresholds on dev (else only the given ones are set).
    positive_label: the label an exclusive binary threshold is on (default: the component's
        ``positive_label``, else the rarer gold label of the dev data).
    """
    name, component = find_textcat(nlp)
    if not hasattr(component, "set_calibration"):
        raise BertclsError(
            f"The text classifier {name!r} ({nlp.get_pipe_meta(name).factory}) cannot be "
            "calibrated here: temperature scaling needs a bert_textcat component's logits."
        )
    labels = list(component.labels)
    exclusive = bool(component.cfg["exclusive_classes"])
    truth, known, usable = gold_matrix(cats, labels, exclusive=exclusive)
    rows = np.flatnonzero(usable & np.array([bool(t.strip()) for t in texts], dtype=bool))
    if len(rows) < 2 * MIN_ROWS_PER_SIDE:
        raise TooFewRows(
            f"Only {len(rows)} dev rows have a gold label of this pipeline ({', '.join(labels)}) "
            f"and a text; calibration needs at least {2 * MIN_ROWS_PER_SIDE}. Check the dev data "
            "and its label column."
        )
    truth, known = truth[rows], known[rows]
    logits = component.logits((nlp.make_doc(texts[i]) for i in rows), batch_size=batch_size)
    notes: list[str] = []
    temperature, bias = unsaturated(
        *fit_temperature(logits, truth, known, exclusive=exclusive),
        logits, truth, known, labels, notes=notes,
    )  # fmt: skip
    before = probabilities(logits, 1.0, exclusive=exclusive)
    after = probabilities(logits, temperature, exclusive=exclusive, bias=bias)
    given = dict(thresholds or {})
    check_thresholds(given, labels, exclusive=exclusive)
    positive = (
        positive_label
        or component.cfg.get("positive_label")
        or (next(iter(given)) if exclusive and given else None)
    )
    default_threshold = float(component.cfg.get("threshold", DEFAULT_THRESHOLD))
    tuned = (
        tune_thresholds(
            after,
            truth,
            known,
            labels,
            exclusive=exclusive,
            positive_label=positive,
            # Two exclusive classes decide by the most probable one: p(positive) >= 0.5.
            default=DEFAULT_THRESHOLD if exclusive else default_threshold,
            notes=notes,
        )  # fmt: skip
        if tune and not (exclusive and given)
        else {}
    )
    chosen = {**tuned, **given}
    default_rule = DecisionRule.make(
        labels, exclusive=exclusive, default_threshold=default_threshold
    )
    rule = DecisionRule.make(
        labels, exclusive=exclusive, thresholds=chosen, default_threshold=default_threshold
    )
    if exclusive and rule.positive_label is not None:
        # The default decision of two classes is the most probable one: p(positive) >= 0.5.
        default_rule = rule.with_threshold(rule.positive_label, DEFAULT_THRESHOLD)
    fit = CalibrationFit(
        temperature=temperature,
        thresholds=chosen,
        n_examples=len(rows),
        ece_before=expected_calibration_error(before, truth, known, exclusive=exclusive),
        ece_after=expected_calibration_error(after, truth, known, exclusive=exclusive),
        nll_before=negative_log_likelihood(before, truth, known, exclusive=exclusive),
        nll_after=negative_log_likelihood(after, truth, known, exclusive=exclusive),
        f1_default=thresholded_f1(after, truth, known, default_rule),
        f1_tuned=thresholded_f1(after, truth, known, rule),
        notes=notes,
        data=data,
        bias=bias,
    )
    component.set_calibration(temperature, chosen, fit.to_cfg(), bias=bias)
    return fit


def calibrate_from_file(
    nlp: spacy.Language,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    multi_label_sep: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    **options: Any,
) -> CalibrationFit:
    """`calibrate` on a ``.spacy`` file (gold in ``doc.cats``, as `convert` writes the dev
    split) or a table with a text and a label column (several labels per cell split at
    ``multi_label_sep``)."""
    from .evaluation.files import read_gold

    texts, cats, _ = read_gold(
        nlp,
        path,
        text_column=text_column,
        label_column=label_column,
        multi_label_sep=multi_label_sep,
        sheet=sheet,
        encoding=encoding,
    )
    return calibrate(nlp, texts, cats, data=str(path), **options)


def calibrate_saved_pipeline(
    path: str | Path, dev: str | Path, *, out: str | Path | None = None, **options: Any
) -> CalibrationFit:
    """Load the pipeline at ``path``, calibrate it on ``dev`` (`calibrate_from_file`) and save
    it: to ``out`` as a new pipeline folder (`bertcls calibrate`; ``path`` is left as it was),
    or, without ``out``, into ``path`` itself by replacing only the component's small ``cfg``
    file atomically (`bertcls train`, on the pipeline it has just written)."""
    import srsly

    from .outputs import staged_folder, write_bytes_atomic
    from .pipelines import load_pipeline

    path = Path(path)
    nlp = load_pipeline(path)
    fit = calibrate_from_file(nlp, dev, **options)
    name, component = find_textcat(nlp)
    if out is None:
        cfg_file = path / name / "cfg"
        if not cfg_file.is_file():
            raise BertclsError(f"{path} has no {name}/cfg to store the calibration in.")
        write_bytes_atomic(cfg_file, srsly.json_dumps(component.cfg, indent=2).encode("utf8"))
    else:
        with staged_folder(out) as stage:
            nlp.to_disk(stage)
    return fit
