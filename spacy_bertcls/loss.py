"""Class weights and the class-weighted losses of ``bert_textcat``.

The gradients are computed with respect to the logits (softmax or sigmoid included), which is
exact and stable where a gradient through saturated probabilities would not be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy

from .errors import BertclsError

ClassWeightsSetting = str | Mapping[str, float] | None


def check_class_weights(class_weights: ClassWeightsSetting) -> None:
    """Reject a malformed ``class_weights`` setting when the component is created."""
    if class_weights is None or class_weights == "balanced":
        return
    if isinstance(class_weights, str) or not isinstance(class_weights, Mapping):
        raise BertclsError(
            f'class_weights = {class_weights!r} is not valid: use "balanced", null, or a '
            'mapping such as {"spam": 3.0, "ham": 1.0}.'
        )
    for label, weight in class_weights.items():
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight > 0:
            raise BertclsError(
                f"class_weights gives label {label!r} the weight {weight!r}; every weight "
                "must be a positive number."
            )


def resolve_class_weights(
    class_weights: ClassWeightsSetting,
    labels: Sequence[str],
    truths: numpy.ndarray,
    *,
    exclusive_classes: bool,
) -> dict[str, float] | None:
    """The weight of each label, from the setting and the training truths (n x labels).

    "balanced" is scikit-learn's ``compute_class_weight("balanced")``, n / (k * count), for
    exclusive classes; for multi-label, each label's positive examples get n_neg / n_pos (the
    ``pos_weight`` of PyTorch's BCEWithLogitsLoss).
    """
    if class_weights is None:
        return None
    if class_weights == "balanced":
        positives = (truths == 1.0).sum(axis=0)
        empty = [label for label, count in zip(labels, positives) if count == 0]
        if empty:
            raise BertclsError(
                f'class_weights = "balanced" needs training examples of every label, but '
                f"{', '.join(map(repr, empty))} has none. Add examples, remove the label, or "
                "give explicit weights."
            )
        n = truths.shape[0]
        if exclusive_classes:
            weights = n / (len(labels) * positives)
        else:
            weights = (n - positives) / positives
        return {label: float(w) for label, w in zip(labels, weights)}
    unknown = sorted(set(class_weights) - set(labels))
    if unknown:
        raise BertclsError(
            f"class_weights names {', '.join(map(repr, unknown))}, which the component does not "
            f"have (labels: {', '.join(map(repr, labels))}). Fix the label names."
        )
    # Labels not named keep weight 1, so a user can up-weight just the rare class.
    return {label: float(class_weights.get(label, 1.0)) for label in labels}


def softmax_cross_entropy(
    logits: numpy.ndarray, targets: numpy.ndarray, weights: numpy.ndarray | None, xp=numpy
) -> tuple[float, numpy.ndarray]:
    """Weighted mean cross-entropy over exclusive classes and its gradient wrt the logits.

    Like ``torch.nn.CrossEntropyLoss(weight=...)``: each example counts with its gold class's
    weight and the mean divides by the sum of those weights.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(len(targets))
    example_weights = weights[targets] if weights is not None else xp.ones(len(targets), "f")
    total = example_weights.sum()
    loss = -(example_weights * log_probs[rows, targets]).sum() / total
    d_logits = xp.exp(log_probs)
    d_logits[rows, targets] -= 1.0
    d_logits *= (example_weights / total)[:, None]
    return float(loss), d_logits.astype("f")


def sigmoid_binary_cross_entropy(
    logits: numpy.ndarray,
    truths: numpy.ndarray,
    not_missing: numpy.ndarray,
    pos_weights: numpy.ndarray | None,
    xp=numpy,
) -> tuple[float, numpy.ndarray]:
    """Mean binary cross-entropy over independent labels and its gradient wrt the logits.

    Like ``torch.nn.BCEWithLogitsLoss(pos_weight=...)``, averaged over the known (not missing)
    example-label cells.
    """
    pos = pos_weights[None, :] if pos_weights is not None else 1.0
    # log(sigmoid(z)) and log(1 - sigmoid(z)) in a form that does not overflow.
    log_sig = -xp.logaddexp(0.0, -logits)
    log_one_minus = -xp.logaddexp(0.0, logits)
    cell_loss = -(pos * truths * log_sig + (1.0 - truths) * log_one_minus)
    count = max(float(not_missing.sum()), 1.0)
    loss = float((cell_loss * not_missing).sum() / count)
    sig = 1.0 / (1.0 + xp.exp(-logits))
    d_logits = (sig * (pos * truths + 1.0 - truths) - pos * truths) * not_missing / count
    return loss, d_logits.astype("f")
