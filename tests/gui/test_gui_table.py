"""The table: sorting and filtering on numpy arrays, least confident first, details, 100k rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from spacy_bertcls.labeling import LabeledChunk
from spacy_bertcls.session import RowFilter, Session
from spacy_bertcls_gui.table_model import VALUE_ROLE, WRONG_MARK, LabeledTableModel

from .gui_support import LABELS

pytestmark = pytest.mark.gui


def column_values(model, name):
    column = model.column_index(name)
    return [model.data(model.index(row, column)) for row in range(model.rowCount())]


def test_sort_by_any_column(labeled_window):
    window = labeled_window
    model = window.model
    window.table.sortByColumn(model.column_index("prob_positive"), Qt.SortOrder.DescendingOrder)
    values = [v for v in column_values(model, "prob_positive") if v]
    assert values == sorted(values, reverse=True)
    assert column_values(model, "prob_positive")[-1] == ""  # empty texts last
    window.table.sortByColumn(model.column_index("text"), Qt.SortOrder.AscendingOrder)
    texts = [t for t in column_values(model, "text") if t]
    assert texts == sorted(texts, key=str.lower)
    window.table.sortByColumn(model.column_index("id"), Qt.SortOrder.DescendingOrder)
    assert column_values(model, "id")[:3] == ["299", "298", "297"]
    # Row numbers in the vertical header stay the file's row numbers.
    # ... as a spreadsheet numbers them (header = row 1), as the reports do.
    assert model.headerData(0, Qt.Orientation.Vertical) == "301"


def test_least_confident_first(labeled_window):
    window = labeled_window
    window.filters.least_confident_button.click()
    confidence = window.session.results.confidence[window.session.visible_rows]
    known = confidence[~np.isnan(confidence)]
    assert known[0] == np.nanmin(window.session.results.confidence)
    assert (np.diff(known) >= 0).all()


def test_filters_label_confidence_search(qtbot, labeled_window):
    window = labeled_window
    model = window.model
    window.filters.label_filter.setCurrentIndex(window.filters.label_filter.findData("negative"))
    window.apply_filters()
    assert model.rowCount() == int((window.session.results.predicted == 0).sum())
    shown = {value.removeprefix(WRONG_MARK) for value in column_values(model, "predicted_label")}
    assert shown == {"negative"}
    window.filters.confidence_min.setValue(0.5)
    window.filters.confidence_max.setValue(0.9)
    visible = window.session.visible_rows
    assert (
        (window.session.results.confidence[visible] >= 0.5)
        & (window.session.results.confidence[visible] <= 0.9)
    ).all()
    expected = (
        (window.session.results.predicted == 0)
        & (window.session.results.confidence >= 0.5)
        & (window.session.results.confidence <= 0.9)
    )
    assert model.rowCount() == int(expected.sum())
    window.clear_filters()
    assert model.rowCount() == 300
    window.filters.search_edit.setText("BAG")  # case-insensitive, debounced
    qtbot.waitUntil(lambda: model.rowCount() < 300, timeout=2000)
    texts = column_values(model, "text")
    assert texts and all("bag" in text.lower() for text in texts)
    assert model.rowCount() == int(
        window.session.frame["text"].str.lower().str.contains("bag", na=False).sum()
    )
    assert f"{model.rowCount():,} shown" in window.rows_status.text()
    window.filters.clear_button.click()
    assert model.rowCount() == 300


def test_selecting_a_row_shows_text_and_probabilities(qtbot, labeled_window):
    window = labeled_window
    model = window.model
    window.table.sortByColumn(model.column_index("confidence"), Qt.SortOrder.DescendingOrder)
    window.table.selectionModel().setCurrentIndex(
        model.index(3, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    row = model.source_row(3)
    panel = window.detail_panel
    assert panel.row == row
    assert panel.text_view.toPlainText() == window.session.frame["text"][row]
    np.testing.assert_allclose(panel.chart.probabilities(), window.session.results.probs[row])
    assert window.session.results.predicted_label(row) in panel.predicted_value.text()
    assert panel.gold_value.text() == window.session.frame["airline_sentiment"][row]
    assert window.side_tabs.currentWidget() is panel
    image = panel.chart.grab().toImage()
    assert image.width() > 100  # painted without errors


def test_probability_bars_are_painted(labeled_window):
    window = labeled_window
    window.resize(1400, 800)
    window.show()
    model = window.model
    column = model.column_index("prob_negative")
    assert isinstance(model.data(model.index(0, column), VALUE_ROLE), float)
    image = window.table.viewport().grab().toImage()
    assert not image.isNull()


def make_100k_model() -> tuple[LabeledTableModel, pd.DataFrame, np.ndarray]:
    """A 100,000-row labeled table (also timed by benchmarks/table_model.py)."""
    rng = np.random.default_rng(0)
    n = 100_000
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
    session.set_table(Path("100k.csv"), frame, text_column="text")
    session.set_labels(LABELS)
    model = LabeledTableModel(session)
    probs = rng.dirichlet([1, 1, 1], n)
    session.apply_chunk(LabeledChunk.from_probs(np.arange(n), probs, LABELS))
    return model, frame, probs


def test_model_on_100k_rows_sorts_and_filters(qtbot):
    """Sorting and filtering 100,000 rows give the right rows in the right order. (Their
    speed is measured by benchmarks/table_model.py, not here: a timed test flakes.)"""
    model, frame, probs = make_100k_model()
    session = model.session
    model.sort(model.column_index("confidence"))
    shown = [float(v) for v in column_values(model, "confidence")[::997]]
    assert shown == sorted(shown)
    model.sort(model.column_index("text"), Qt.SortOrder.DescendingOrder)
    texts = column_values(model, "text")[::997]
    assert texts == sorted(texts, reverse=True)
    model.sort(model.column_index("airline"))
    airlines = column_values(model, "airline")[::997]
    assert airlines == sorted(airlines)
    session.set_filter(RowFilter(predicted_label="neutral", confidence_min=0.4, confidence_max=0.8))
    neutral = LABELS.index("neutral")
    confidence = probs.max(1)
    wanted = (probs.argmax(1) == neutral) & (confidence >= 0.4) & (confidence <= 0.8)
    assert model.rowCount() == int(wanted.sum())
    session.set_filter(RowFilter(search="refund"))
    expected = frame["text"].str.contains("refund").to_numpy()
    assert model.rowCount() == int(expected.sum())
    assert all("refund" in t for t in column_values(model, "text"))
    assert model.data(model.index(model.rowCount() - 1, 0)) is not None
