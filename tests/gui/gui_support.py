"""Helpers for the desktop app's tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import spacy
from spacy.training import Example

LABELS = ["negative", "neutral", "positive"]
TRAIN = {
    "positive": [
        "great flight thanks", "love the crew", "awesome service today", "best airline ever",
        "thank you so much", "wonderful trip", "friendly staff and great seats",
        "amazing upgrade thanks", "smooth landing love it", "happy with the service",
    ],
    "negative": [
        "delayed again terrible", "lost my bag awful", "worst service ever",
        "cancelled flight angry", "rude staff bad", "no refund horrible",
        "stuck on the tarmac for hours", "broken seat and dirty cabin",
        "missed my connection again", "terrible customer service",
    ],
    "neutral": [
        "what time is boarding", "is the flight on time", "how do i change seats",
        "flight to boston tomorrow", "where is gate five", "need info on baggage",
        "can i bring a pet", "what is the baggage allowance", "which terminal for dallas",
        "do you fly to denver",
    ],
}  # fmt: skip


def make_pipeline(path: Path, labels: list[str] = LABELS) -> Path:
    """Train spaCy's own textcat on 30 made-up texts (the app works with any doc.cats).

    labels: the pipeline's labels, standing for "negative", "neutral", "positive" in that order
        (fewer labels: the texts of the first ones).
    """
    random.seed(0)
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat")
    for label in labels:
        textcat.add_label(label)
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {lab: float(lab == label) for lab in labels}}
        )
        for label, meaning in zip(labels, LABELS)
        for text in TRAIN[meaning]
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(20):
        random.shuffle(examples)
        nlp.update(examples, sgd=optimizer)
    nlp.meta["name"] = "tiny_sentiment"
    nlp.meta["version"] = "0.0.1"
    nlp.meta["performance"] = {"cats_score": 0.91, "cats_macro_f": 0.91}
    nlp.to_disk(path)
    return path


def make_rows(n: int, seed: int = 1) -> pd.DataFrame:
    """Made-up tweets with a gold column, an id column and some empty texts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        text = rng.choice(TRAIN[label]) + rng.choice(["", " today", " @airline", " again", "!"])
        rows.append(
            {"id": i, "airline_sentiment": label, "text": text, "airline": rng.choice(["A", "B"])}
        )
    frame = pd.DataFrame(rows)
    # Some gold labels disagree with the texts, so the confusion matrix has errors to click.
    noisy = frame.index % 11 == 0
    frame.loc[noisy, "airline_sentiment"] = [
        LABELS[(LABELS.index(g) + 1) % 3] for g in frame.loc[noisy, "airline_sentiment"]
    ]
    frame.loc[frame.index % 37 == 5, "text"] = None  # empty cells
    return frame


def wait_idle(qtbot, window, timeout: int = 20000) -> None:
    """Wait until nothing runs in the background and its results reached the window."""
    qtbot.waitUntil(lambda: not window.is_busy(), timeout=timeout)
    qtbot.wait(20)


def load(qtbot, window, pipeline: Path | None = None, table: Path | None = None) -> None:
    if pipeline is not None:
        window.load_pipeline(pipeline)
        wait_idle(qtbot, window)
        assert window.session.nlp is not None, window.dialogs.errors
    if table is not None:
        window.open_file(table)
        wait_idle(qtbot, window)
        assert window.session.file_path == Path(table), window.dialogs.errors


def label(qtbot, window, timeout: int = 30000) -> None:
    window.start_labeling()
    qtbot.waitUntil(lambda: not window.is_labeling(), timeout=timeout)
    wait_idle(qtbot, window)
