"""UI stalls of the app's table at 100,000 rows: sort, filter, search, a big selection, bulk
corrections, measured on the real panel (``TablePanel``: session, Qt model, view, selection).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/table_model.py [--rows 100000]

Each action is timed from the call until the event loop has handled what it queued (the
repaint included): that is how long the window would not answer. Prints one JSON line with
the median of ``--repeats`` rounds per action. Target: every action under 0.2 s.

``--side-by-side`` also runs the selection actions with the panel's selection handling turned
off (Qt carries a 3,000-row selection index by index through a re-sort, as before the fix),
in the same run, so the ratio shows what the fix is worth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from spacy_bertcls.labeling import LabeledChunk  # noqa: E402
from spacy_bertcls.session import RowFilter, Session  # noqa: E402
from spacy_bertcls_gui.table_panel import TablePanel  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
TARGET_S = 0.2


def make_panel(n: int) -> TablePanel:
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
    session = Session()
    panel = TablePanel(session)
    session.set_table(Path("100k.csv"), frame, text_column="text")
    session.set_labels(LABELS)
    probs = rng.dirichlet([1, 1, 1], n)
    session.apply_chunk(LabeledChunk.from_probs(np.arange(n), probs, LABELS))
    session.refresh()
    panel.resize(1400, 800)
    panel.show()
    return panel


def select_scattered(panel: TablePanel, count: int) -> None:
    """Select ``count`` rows spread over the table (as after sorting a selection away)."""
    model = panel.model
    step = max(model.rowCount() // count, 2)
    selection = QItemSelection()
    last = model.columnCount() - 1
    for row in range(0, step * count, step):
        selection.select(model.index(row, 0), model.index(row, last))
    panel.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)


def timed(app: QApplication, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    app.processEvents()
    return time.perf_counter() - started


def run(panel: TablePanel, app: QApplication, repeats: int) -> dict[str, float]:
    session, model, table = panel.session, panel.model, panel.table

    def narrow_with_selection() -> None:
        panel.clear_filters()
        table.sortByColumn(model.column_index("confidence"), Qt.SortOrder.AscendingOrder)
        select_scattered(panel, 3000)
        app.processEvents()
        runs["narrow filter, 3,000 selected"].append(
            timed(app, lambda: session.set_filter(RowFilter(predicted_label="neutral")))
        )
        select_scattered(panel, 3000)
        app.processEvents()
        runs["clear filters, 3,000 selected"].append(timed(app, panel.clear_filters))

    def bulk_correct() -> None:
        session.set_filter(RowFilter(predicted_label="negative", confidence_max=0.8))
        rows = session.visible_rows.copy()
        runs[f"bulk-correct {len(rows):,} rows"] = runs.get(f"bulk-correct {len(rows):,} rows", [])
        runs[f"bulk-correct {len(rows):,} rows"].append(
            timed(app, lambda: session.correct(rows, "neutral"))
        )
        session.undo()

    actions = {
        "sort confidence": lambda: table.sortByColumn(
            model.column_index("confidence"), Qt.SortOrder.AscendingOrder
        ),
        "sort text": lambda: table.sortByColumn(
            model.column_index("text"), Qt.SortOrder.DescendingOrder
        ),
        "filter label+confidence": lambda: session.set_filter(
            RowFilter(predicted_label="neutral", confidence_min=0.4, confidence_max=0.8)
        ),
        "search": lambda: session.set_filter(RowFilter(search="refund")),
        "clear filter": lambda: session.set_filter(RowFilter()),
    }
    runs: dict[str, list[float]] = {name: [] for name in actions}
    runs["narrow filter, 3,000 selected"] = []
    runs["clear filters, 3,000 selected"] = []
    for _ in range(repeats):
        for name, action in actions.items():
            runs[name].append(timed(app, action))
        narrow_with_selection()
        bulk_correct()
    return {name: round(statistics.median(times), 4) for name, times in runs.items() if times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side-by-side", action="store_true")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    panel = make_panel(args.rows)
    seconds = run(panel, app, args.repeats)
    result = {"rows": args.rows, "seconds": seconds, "target_s": TARGET_S}
    result["met"] = max(seconds.values()) <= TARGET_S
    if args.side_by_side:
        events = panel.session.events
        events.order_about_to_change.disconnect(panel._drop_selection)
        events.order_changed.disconnect(panel._restore_selection)
        before = run(panel, app, 1)
        result["without_selection_handling"] = {
            name: value for name, value in before.items() if "selected" in name
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
