"""Class weights and the class-weighted losses of ``bert_textcat``.

The losses take probabilities (what the component's ``predict`` returns, as spaCy's
``get_loss(examples, scores)`` expects) and return the gradient with respect to the logits (the
model's output), which is exact and stable where a gradient through saturated probabilities
would not be.
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
    not_missing: numpy.ndarray,
    *,
    exclusive_classes: bool,
) -> dict[str, float] | None:
    """The weight of each label, from the setting and the training truths (n x labels, with
    ``not_missing`` marking the known cells).

    "balanced" is scikit-learn's ``compute_class_weight("balanced")``, n / (k * count), for
    exclusive classes; for multi-label, each label's positive examples get n_neg / n_pos (the
    ``pos_weight`` of PyTorch's BCEWithLogitsLoss), counting only the examples that give it.
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
        if exclusive_classes:
            weights = truths.shape[0] / (len(labels) * positives)
        else:
            negatives = ((truths == 0.0) & (not_missing == 1.0)).sum(axis=0)
            weights = numpy.maximum(negatives, 1) / positives
        return {label: float(w) for label, w in zip(labels, weights)}
    unknown = sorted(set(class_weights) - set(labels))
    if unknown:
        raise BertclsError(
            f"class_weights names {', '.join(map(repr, unknown))}, which the component does not "
            f"have (labels: {', '.join(map(repr, labels))}). Fix the label names."
        )
    # Labels not named keep weight 1, so a user can up-weight just the rare class.
    return {label: float(class_weights.get(label, 1.0)) for label in labels}


# Probabilities are clipped here before their log, so a saturated prediction gives a large,
# finite loss; the gradients need no clipping.
TINY = float(numpy.finfo("f").tiny)


def softmax_cross_entropy(
    probs: numpy.ndarray, truths: numpy.ndarray, weights: numpy.ndarray | None, xp=numpy
) -> tuple[float, numpy.ndarray]:
    """Weighted mean cross-entropy over exclusive classes, and its gradient wrt the logits.

    ``probs`` are the softmax outputs (what ``predict`` returns), ``truths`` one-hot rows; a
    row without a 1 (no known gold label) adds no loss and no gradient. Like
    ``torch.nn.CrossEntropyLoss(weight=...)``: each example counts with its gold class's weight
    and the mean divides by the sum of those weights. The gradient wrt the logits,
    ``weight * (p - onehot)``, needs only the probabilities and is exact where a gradient
    through saturated probabilities would not be.
    """
    known = truths.sum(axis=1) > 0
    targets = truths.argmax(axis=1)
    rows = xp.arange(len(targets))
    example_weights = weights[targets] if weights is not None else xp.ones(len(targets), "f")
    example_weights = example_weights * known
    total = float(example_weights.sum())
    if total == 0.0:
        return 0.0, xp.zeros_like(probs, dtype="f")
    gold = xp.maximum(probs[rows, targets], TINY)
    loss = -float((example_weights * xp.log(gold)).sum()) / total
    d_logits = probs.astype("f")
    d_logits[rows, targets] -= 1.0
    d_logits *= (example_weights / total)[:, None]
    return loss, d_logits.astype("f")


def sigmoid_binary_cross_entropy(
    probs: numpy.ndarray,
    truths: numpy.ndarray,
    not_missing: numpy.ndarray,
    pos_weights: numpy.ndarray | None,
    xp=numpy,
) -> tuple[float, numpy.ndarray]:
    """Mean binary cross-entropy over independent labels, and its gradient wrt the logits.

    ``probs`` are the sigmoid outputs. Like ``torch.nn.BCEWithLogitsLoss(pos_weight=...)``,
    averaged over the known (not missing) example-label cells; missing cells add nothing.
    """
    pos = pos_weights[None, :] if pos_weights is not None else 1.0
    log_p = xp.log(xp.maximum(probs, TINY))
    log_not_p = xp.log(xp.maximum(1.0 - probs, TINY))
    cell_loss = -(pos * truths * log_p + (1.0 - truths) * log_not_p)
    count = max(float(not_missing.sum()), 1.0)
    loss = float((cell_loss * not_missing).sum() / count)
    d_logits = (probs * (pos * truths + 1.0 - truths) - pos * truths) * not_missing / count
    return loss, d_logits.astype("f")
