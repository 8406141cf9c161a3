"""From probabilities to labels: the one place a row's predicted label (or label set) is decided.

`doc.cats` holds probabilities; what a row *is* takes a rule on top of them, and `bertcls label`,
`bertcls evaluate` and the app all take it from here, so they agree:

* Exclusive classes (one label per row): the most probable label, except for two classes with a
  decision threshold on one of them (the positive label, e.g. spam): that label when its
  probability reaches the threshold, else the other one. A tuned threshold trades precision for
  recall (`spacy_bertcls.calibration.tune_thresholds` picks the best F1 on the dev split).
* Multi-label (independent labels): every label whose probability reaches its own threshold.

The thresholds live in the ``bert_textcat`` component (``cfg["decision_thresholds"]``, saved with
the pipeline); labels without a tuned one use the component's ``threshold`` setting (0.5).
spaCy's own ``textcat`` decides by the most probable label and ``textcat_multilabel`` by its
``threshold``, as in spaCy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import spacy

from .errors import BertclsError
from .pipelines import find_textcat, pipeline_labels

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class DecisionRule:
    """How probabilities (rows x `labels`) become labels.

    labels: the label of each probability column.
    exclusive: one label per row (True) or independent labels (False).
    thresholds: per label, its decision threshold; NaN where the label has none (exclusive
        classes decided by the most probable label). Multi-label rules have one for every label.
    """

    labels: tuple[str, ...]
    exclusive: bool
    thresholds: np.ndarray

    @classmethod
    def make(
        cls,
        labels: Sequence[str],
        *,
        exclusive: bool,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = DEFAULT_THRESHOLD,
    ) -> DecisionRule:
        """The rule for `labels`, with `thresholds` ({label: threshold}) where given.

        Exclusive classes take a threshold only with two labels, on one of them; multi-label
        labels without one get `default_threshold`.
        """
        labels = tuple(labels)
        thresholds = dict(thresholds or {})
        check_thresholds(thresholds, labels, exclusive=exclusive)
        default = np.nan if exclusive else default_threshold
        values = np.array([thresholds.get(label, default) for label in labels], dtype=np.float64)
        return cls(labels=labels, exclusive=exclusive, thresholds=values)

    @property
    def positive_label(self) -> str | None:
        """The label an exclusive binary threshold is on (None: the most probable label)."""
        if not self.exclusive:
            return None
        tuned = np.flatnonzero(~np.isnan(self.thresholds))
        return self.labels[tuned[0]] if len(tuned) else None

    @property
    def tuned(self) -> dict[str, float]:
        """{label: threshold} for the labels that have one."""
        return {
            label: float(t) for label, t in zip(self.labels, self.thresholds) if not np.isnan(t)
        }

    def with_threshold(self, label: str, threshold: float) -> DecisionRule:
        """The same rule with `label`'s threshold set (e.g. from the app's slider). Two
        exclusive classes have one threshold: it moves to `label`."""
        thresholds = {label: threshold} if self.exclusive else {**self.tuned, label: threshold}
        return DecisionRule.make(self.labels, exclusive=self.exclusive, thresholds=thresholds)

    def predicted_index(self, probs: np.ndarray) -> np.ndarray:
        """Exclusive classes: the index of each row's label, -1 for a row of NaN (no text).

        For a multi-label rule: the most probable label over its threshold, else the most
        probable one (a single label to sort and colour a row by; `predicted_sets` has all).
        """
        probs = np.asarray(probs, dtype=np.float64)
        labeled = ~np.isnan(probs).all(axis=1)
        filled = np.nan_to_num(probs, nan=-np.inf)  # a label missing from doc.cats: never best
        best = filled.argmax(axis=1)
        positive = self.positive_label
        if positive is not None:
            k = self.labels.index(positive)
            best = np.where(filled[:, k] >= self.thresholds[k], k, 1 - k)
        elif not self.exclusive:
            over = np.where(filled >= self.thresholds, filled, -np.inf)
            any_over = np.isfinite(over).any(axis=1)
            best = np.where(any_over, over.argmax(axis=1), best)
        return np.where(labeled, best, -1).astype(np.int64)

    def predicted_sets(self, probs: np.ndarray) -> np.ndarray:
        """Per row and label, whether the label applies (bool, rows x labels).

        Exclusive classes: exactly the label of `predicted_index` (none for a row of NaN).
        """
        probs = np.asarray(probs, dtype=np.float64)
        if self.exclusive:
            index = self.predicted_index(probs)
            return (index[:, None] == np.arange(len(self.labels))[None, :]) & (index[:, None] >= 0)
        return np.nan_to_num(probs, nan=-np.inf) >= self.thresholds[None, :]

    def describe(self) -> str:
        """One line for reports and `bertcls info`."""
        if self.exclusive:
            positive = self.positive_label
            if positive is None:
                return "the most probable label"
            t = self.tuned[positive]
            other = next(label for label in self.labels if label != positive)
            return f"{positive} when p({positive}) >= {t:.3f}, else {other}"
        return "labels with p >= " + ", ".join(
            f"{label} {t:.3f}" for label, t in zip(self.labels, self.thresholds)
        )


def least_sure_decision(probs: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """Per row of a multi-label prediction, how sure its least sure label decision is: the
    probability that it is right (p for a label in ``sets``, 1 - p for one left out), lowest
    over the labels; NaN for a row without probabilities (no text).

    This is a multi-label row's ``confidence`` in the app: low when any one label could as
    well have gone the other way, so sorting by it puts the rows to check first.
    """
    probs = np.asarray(probs, dtype=np.float64)
    right = np.where(sets, probs, 1.0 - probs)
    lowest = np.where(np.isnan(right), np.inf, right).min(axis=1)
    return np.where(np.isnan(probs).all(axis=1), np.nan, lowest)


def check_thresholds(
    thresholds: Mapping[str, float], labels: Sequence[str], *, exclusive: bool
) -> None:
    """Refuse thresholds a rule cannot use: unknown labels, values outside (0, 1), or for
    exclusive classes more than one threshold or more than two labels."""
    for label, value in thresholds.items():
        if label not in labels:
            raise BertclsError(
                f"Decision threshold for {label!r}, which is not one of the labels "
                f"({', '.join(map(repr, labels))})."
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise BertclsError(
                f"Decision threshold {value!r} for {label!r} must be a number between 0 and 1."
            )
    if exclusive and thresholds:
        if len(labels) != 2:
            raise BertclsError(
                f"A decision threshold needs two exclusive classes, this classifier has "
                f"{len(labels)}: it takes the most probable label. Thresholds per label are "
                "for multi-label classifiers (exclusive_classes = false)."
            )
        if len(thresholds) > 1:
            raise BertclsError(
                "Two exclusive classes take one decision threshold, on the positive label; got "
                f"{len(thresholds)} ({', '.join(map(repr, thresholds))})."
            )


def decision_rule(nlp: spacy.Language) -> DecisionRule:
    """The rule the pipeline's text classifier decides by (see the module docstring)."""
    name, component = find_textcat(nlp)
    labels = pipeline_labels(nlp)
    factory = nlp.get_pipe_meta(name).factory
    config = nlp.config["components"][name]
    exclusive = bool(config.get("exclusive_classes", factory != "textcat_multilabel"))
    cfg = getattr(component, "cfg", {}) or {}
    threshold = cfg.get("threshold", config.get("threshold", DEFAULT_THRESHOLD))
    return DecisionRule.make(
        labels,
        exclusive=exclusive,
        thresholds=cfg.get("decision_thresholds") or {},
        default_threshold=float(threshold),
    )
