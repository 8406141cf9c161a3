"""A multi-label pipeline in the app: label chips, filtering by a label, correcting label sets,
per-label thresholds, the multi-label evaluation and the export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from multilabel_support import LABELS, make_multilabel_pipeline, make_table
from PySide6.QtCore import Qt

from spacy_bertcls.evaluation import MultiLabelResult
from spacy_bertcls.labeling import PREDICTED_LABELS, prob_column
from spacy_bertcls.session import CORRECTED_LABELS

from .gui_support import label, load, wait_idle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def multilabel_dir(tiny_encoder, tmp_path_factory):
    return make_multilabel_pipeline(tiny_encoder, tmp_path_factory.mktemp("ml") / "pipeline")


@pytest.fixture
def ml_window(qtbot, window, multilabel_dir, tmp_path):
    load(qtbot, window, multilabel_dir, make_table(tmp_path / "messages.csv"))
    label(qtbot, window)
    return window


def column(window, name: str) -> int:
    index = window.model.column_index(name)
    assert index >= 0, name
    return index


def select_rows(window, view_rows: list[int]) -> None:
    window.table.clearSelection()
    window.table.setCurrentIndex(window.model.index(view_rows[0], 0))
    for row in view_rows:
        window.table.selectionModel().select(
            window.model.index(row, 0),
            window.table.selectionModel().SelectionFlag.Select
            | window.table.selectionModel().SelectionFlag.Rows,
        )


def test_label_sets_are_chips_in_the_table_and_the_details(qtbot, ml_window):
    from spacy_bertcls_gui.label_chips import LabelChips
    from spacy_bertcls_gui.table_model import LABEL_SET_ROLE, LabelSet

    window, session = ml_window, ml_window.session
    results = session.results
    model = window.model
    predicted = column(window, PREDICTED_LABELS)
    assert model.column_index("predicted_label") < 0
    assert model.column_index(CORRECTED_LABELS) >= 0
    for view_row in range(model.rowCount()):
        row = model.source_row(view_row)
        cell = model.index(view_row, predicted)
        chips = cell.data(LABEL_SET_ROLE)
        if results.predicted[row] < 0:  # the empty text
            assert chips is None and cell.data() == "—"
            continue
        assert isinstance(chips, LabelSet)
        codes = np.flatnonzero(results.predicted_sets[row])
        assert sorted(chips.codes) == codes.tolist()  # the most probable first:
        assert (np.diff(results.probs[row, list(chips.codes)]) <= 0).all()
        names = ";".join(results.labels[code] for code in chips.codes) or "(no label)"
        assert cell.data().removeprefix("✗ ") == names
    assert not model.flags(model.index(0, column(window, CORRECTED_LABELS))) & (
        Qt.ItemFlag.ItemIsEditable
    )
    # The delegate paints the chips (no error while drawing every shown cell).
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    assert not window.table.viewport().grab().isNull()

    window.show_row(0)
    panel = window.detail_panel
    assert isinstance(panel.predicted_chips, LabelChips) and panel.predicted_chips.isVisible()
    assert sorted(panel.predicted_chips.labels()) == sorted(results.predicted_labels(0))
    assert panel.correction_set.checked() == results.predicted_labels(0)
    assert not panel.correction_combo.isVisible()
    assert panel.predicted_caption.text() == "predicted_labels:"


def test_the_label_filter_shows_rows_whose_set_has_the_label(qtbot, ml_window):
    window, session = ml_window, ml_window.session
    sets = session.results.predicted_sets
    for j, name in enumerate(LABELS):
        combo = window.filters.label_filter
        combo.setCurrentIndex(combo.findData(name))
        window.apply_filters()
        assert sorted(session.visible_rows) == np.flatnonzero(sets[:, j]).tolist()
        assert window.model.rowCount() == int(sets[:, j].sum())
    assert "include" in window.filters.label_filter.toolTip()
    window.clear_filters()
    assert window.filters.gold_filter.isEnabled()  # the ";"-joined gold column was read
    window.filters.wrong_only.setChecked(True)
    window.apply_filters()
    assert sorted(session.visible_rows) == np.flatnonzero(session.wrong_rows()).tolist()


def test_number_keys_and_the_details_toggle_labels_with_undo(qtbot, ml_window):
    window, session = ml_window, ml_window.session
    results = session.results
    window.clear_filters()
    select_rows(window, [0, 1])
    rows = np.array([window.model.source_row(0), window.model.source_row(1)])
    before = results.current_sets(rows).copy()
    urgent = LABELS.index("urgent")
    qtbot.keyClick(window.table, Qt.Key.Key_2)  # label 2: urgent
    after = results.current_sets(rows)
    assert (after[:, urgent] == (not before[:, urgent].all())).all()
    assert (results.corrected[rows] >= 0).all()
    # A set-correction shows as chips with the ✎ mark in corrected_labels.
    cell = window.model.index(0, column(window, CORRECTED_LABELS))
    assert cell.data().startswith("✎ ")
    window.undo()
    assert (results.corrected[rows] < 0).all()
    window.redo()
    assert (results.corrected[rows] >= 0).all()
    qtbot.keyClick(window.table, Qt.Key.Key_0)
    assert (results.corrected[rows] < 0).all()

    # The Details tab: a toggle button per label switches it for the shown row.
    row = int(rows[0])
    window.show_row(row)
    panel = window.detail_panel
    social = panel.correction_set.buttons["social"]
    had = "social" in results.predicted_labels(row)
    social.click()
    assert ("social" in results.corrected_labels(row)) is not had
    assert social.isChecked() is not had
    assert panel.keep_prediction_button.isEnabled()
    panel.keep_prediction_button.click()
    assert results.corrected_labels(row) is None
    # A accepts the predicted sets of the selected rows as corrections.
    select_rows(window, [2, 3])
    qtbot.keyClick(window.table, Qt.Key.Key_A)
    for view_row in (2, 3):
        shown = window.model.source_row(view_row)
        if results.predicted[shown] >= 0:
            assert results.corrected_labels(shown) == results.predicted_labels(shown)


def test_thresholds_evaluation_and_export_per_label(qtbot, ml_window, tmp_path):
    window, session = ml_window, ml_window.session
    results = session.results
    window.evaluate()
    wait_idle(qtbot, window)
    result = session.evaluation.result
    assert isinstance(result, MultiLabelResult)
    panel = window.evaluation_panel
    assert "subset accuracy" in panel.summary.text() and "Hamming loss" in panel.summary.text()
    assert not panel.confusion.isVisible()
    headers = [panel.metrics.verticalHeaderItem(i).text() for i in range(panel.metrics.rowCount())]
    assert headers == [*LABELS, "micro avg", "macro avg", "weighted avg"]
    assert panel.metrics.item(0, 2).text() == f"{result.per_label['spam']['f1']:.3f}"

    # The threshold dialog works on one label's threshold, the others stay.
    window.threshold_action.trigger()
    dialog = window.threshold_dialog
    dialog.set_label("social")
    assert dialog.threshold == pytest.approx(0.5)
    dialog.set_label("urgent")
    assert dialog.threshold == pytest.approx(0.4)  # its tuned threshold
    dialog.set_label("social")
    j = LABELS.index("social")
    threshold = next(
        t for t in (0.9, 0.7, 0.3, 0.1) if session.threshold_preview("social", t).changed
    )
    dialog.set_threshold(threshold)
    assert dialog.preview_label.text() == session.threshold_preview("social", threshold).format()
    assert dialog.error_label.isHidden()
    others = np.delete(results.predicted_sets, j, axis=1).copy()
    dialog.apply_button.click()
    wait_idle(qtbot, window)
    decided = np.nan_to_num(results.probs[:, j], nan=0.0) >= threshold
    np.testing.assert_array_equal(results.predicted_sets[:, j], decided)
    np.testing.assert_array_equal(np.delete(results.predicted_sets, j, axis=1), others)
    dialog.close()

    session.correct([0], ["spam", "social"])
    out = tmp_path / "labeled.csv"
    window.export_table(out)
    wait_idle(qtbot, window)
    exported = pd.read_csv(out)
    assert PREDICTED_LABELS in exported.columns and "confidence" not in exported.columns
    assert [prob_column(name) for name in LABELS] == [c for c in exported if c.startswith("prob_")]
    assert exported[CORRECTED_LABELS].iloc[0] == "spam;social"
    first = ";".join(results.predicted_labels(0))
    assert (exported[PREDICTED_LABELS].fillna("").iloc[0]) == first
