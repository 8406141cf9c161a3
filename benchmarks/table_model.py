"""Speed of the app's table model at 100,000 rows: sort, filter and search (no window).

    .venv/bin/python benchmarks/table_model.py [--rows 100000]

Prints one JSON line of seconds per operation, the median of ``--repeats`` runs. The app's
tests check that these operations give the right rows; how fast they are is measured here,
since a timed test fails on a busy machine. Target: each under 0.25 s at 100,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402

from spacy_bertcls.labeling import LabeledChunk  # noqa: E402
from spacy_bertcls_gui.table_model import LabeledTableModel, RowFilter  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
TARGET_S = 0.25


def make_model(n: int) -> LabeledTableModel:
    rng = np.random.default_rng(0)
    words = np.array(["delayed", "great", "bag", "gate", "crew", "refund", "seat"])
    pieces = pd.DataFrame(rng.choice(words, (n, 6)))
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "text": pieces[0].str.cat([pieces[i] for i in range(1, 6)], sep=" "),
            "airline": rng.choice(["A", "B", "C"], n),
        }
    )
    model = LabeledTableModel()
    model.set_frame(frame, LABELS)
    model.set_text_column("text")
    probs = rng.dirichlet([1, 1, 1], n)
    model.apply_chunk(LabeledChunk.from_probs(np.arange(n), probs, LABELS))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    model = make_model(args.rows)
    actions = {
        "sort confidence": lambda: model.sort(model.column_index("confidence")),
        "sort text": lambda: model.sort(model.column_index("text"), Qt.SortOrder.DescendingOrder),
        "sort airline": lambda: model.sort(model.column_index("airline")),
        "filter label+confidence": lambda: model.set_filter(
            RowFilter(predicted_label="neutral", confidence_min=0.4, confidence_max=0.8)
        ),
        "search": lambda: model.set_filter(RowFilter(search="refund")),
        "clear filter": lambda: model.set_filter(RowFilter()),
    }
    # Each round runs every action once, in turn, so that no action repeats the one before it
    # (the model keeps nothing that would make a repeated sort free).
    runs: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(args.repeats):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            runs[name].append(time.perf_counter() - started)
    seconds = {name: round(statistics.median(times), 4) for name, times in runs.items()}
    slowest = max(seconds.values())
    result = {"rows": args.rows, "seconds": seconds, "target_s": TARGET_S}
    result["met"] = slowest <= TARGET_S
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
