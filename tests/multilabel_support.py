"""A tiny multi-label bert_textcat pipeline and a table of ";"-joined gold label sets, for the
session's and the app's multi-label tests (imported by them; not a test module)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import spacy
from conftest import HAM, SPAM
from spacy.training import Example

LABELS = ["spam", "urgent", "social"]


def gold_set(text: str) -> list[str]:
    """The made-up gold labels of a text: spam, urgent (a deadline word), social (people)."""
    labels = []
    if text in SPAM:
        labels.append("spam")
    if any(word in text for word in ("now", "urgent", "late", "delayed")):
        labels.append("urgent")
    if any(word in text for word in ("you", "family", "lunch", "dinner")):
        labels.append("social")
    return labels


def make_multilabel_pipeline(encoder: str, path: Path) -> Path:
    """Train a frozen-encoder multi-label ``bert_textcat`` on HAM + SPAM for a few epochs and
    save it to ``path``, with a tuned threshold on "urgent" so thresholds differ by label."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    model = {"encoder": encoder, "max_length": 32, "stride": 16, "hidden_width": 16}
    nlp.add_pipe(
        "bert_textcat", config={"model": model, "exclusive_classes": False, "freeze_encoder": True}
    )
    examples = [
        Example.from_dict(
            nlp.make_doc(text),
            {"cats": {label: float(label in gold_set(text)) for label in LABELS}},
        )
        for text in HAM + SPAM
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(6):
        for start in range(0, len(examples), 4):
            nlp.update(examples[start : start + 4], sgd=optimizer)
    component = nlp.get_pipe("bert_textcat")
    component.set_calibration(
        component.temperature, {"urgent": 0.4}, component.cfg["calibration"],
        bias=component.logit_bias,
    )  # fmt: skip
    nlp.to_disk(path)
    return path


def make_table(path: Path) -> Path:
    """HAM + SPAM with a ``labels`` column of ";"-joined gold sets (blank: no gold), an empty
    text, and an ``id`` column."""
    texts = HAM + SPAM + [""]
    gold = [";".join(gold_set(text)) or None for text in texts]
    frame = pd.DataFrame({"id": range(len(texts)), "text": texts, "labels": gold})
    frame.to_csv(path, index=False)
    return path
