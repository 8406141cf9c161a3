"""The app as a daily tool: keyboard correction, undo, bulk labels, save and resume, the
defects of issue 15 (each test names the defect it pins down)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView

from spacy_bertcls.session import CORRECTED_LABEL
from spacy_bertcls_gui.delegates import LabelEditor
from spacy_bertcls_gui.table_model import CORRECTED_MARK, WRONG_MARK, _contrast, row_colours

from .gui_support import LABELS, load, wait_idle

pytestmark = pytest.mark.gui


def select_view_row(window, view_row: int) -> int:
    model = window.model
    window.table.selectionModel().setCurrentIndex(
        model.index(view_row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    return model.source_row(view_row)


def corrected_cell(window, view_row: int):
    return window.model.index(view_row, window.model.column_index(CORRECTED_LABEL))


# ----------------------------------------------------------------- defect 1: the F2 editor


def open_editor(window) -> LabelEditor:
    editors = [e for e in window.table.findChildren(LabelEditor) if e.isVisible()]
    assert len(editors) == 1
    return editors[0]


def test_typing_in_the_correction_editor_chooses_and_enter_commits(qtbot, labeled_window):
    window = labeled_window
    window.show()
    row = select_view_row(window, 0)
    index = corrected_cell(window, 0)
    window.table.setCurrentIndex(index)
    window.table.edit(index)
    qtbot.waitUntil(lambda: window.table.state() == QAbstractItemView.State.EditingState)
    editor = open_editor(window)
    QTest.keyClick(editor, Qt.Key.Key_Down)  # an arrow key only moves the choice...
    QTest.keyClicks(editor, "neu")  # ...and so does typing
    assert window.session.results.corrected_label(row) is None
    assert editor.currentText() == "neutral"
    QTest.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.results.corrected_label(row) == "neutral")
    # Esc leaves the label as it was.
    window.table.edit(index)
    qtbot.waitUntil(lambda: window.table.state() == QAbstractItemView.State.EditingState)
    editor = open_editor(window)
    QTest.keyClicks(editor, "pos")
    QTest.keyClick(editor, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.table.state() != QAbstractItemView.State.EditingState)
    assert window.session.results.corrected_label(row) == "neutral"


# ----------------------------------------------------------------- defect 2: stale details


def test_details_follow_a_correction_made_in_the_table(labeled_window):
    window = labeled_window
    row = select_view_row(window, 2)
    assert window.detail_panel.correction_combo.currentText() == "(keep prediction)"
    window.model.setData(corrected_cell(window, 2), "negative")
    assert window.session.results.corrected_label(row) == "negative"
    assert window.detail_panel.correction_combo.currentText() == "negative"
    window.undo_action.trigger()
    assert window.detail_panel.correction_combo.currentText() == "(keep prediction)"


# ----------------------------------------------------------------- defect 3: row numbers


def test_the_table_the_details_and_the_report_number_a_row_alike(qtbot, labeled_window, tmp_path):
    window = labeled_window
    evaluation = window.session.evaluation
    assert evaluation is not None
    error = evaluation.result.most_confident_errors[0]
    file_row = int(evaluation.rows[error["row"]])
    window.show_row(file_row)
    view_row = window.model.view_row(file_row)
    shown = window.model.headerData(view_row, Qt.Orientation.Vertical)
    assert shown == f"{file_row + 2:,}" == f"{error['row_number']:,}"
    assert window.detail_panel.row_label.text().startswith(f"Row {file_row + 2:,}")
    assert window.evaluation_panel.errors.item(0, 0).text() == shown
    window.export_report(tmp_path / "report.html")
    wait_idle(qtbot, window)
    report = json.loads((tmp_path / "report.json").read_text())
    assert f"{report['most_confident_errors'][0]['row_number']:,}" == shown


# ----------------------------------------------------------------- fast correction


def test_number_keys_accept_and_clear_with_auto_advance(qtbot, labeled_window):
    window = labeled_window
    window.show()
    window.table.setFocus()
    results = window.session.results
    first = select_view_row(window, 0)
    QTest.keyClick(window.table, Qt.Key.Key_2)
    assert results.corrected_label(first) == LABELS[1]
    second = window.model.source_row(window.table.currentIndex().row())
    assert second == window.model.source_row(1)  # moved on to the next row
    QTest.keyClick(window.table, Qt.Key.Key_A)
    assert results.corrected_label(second) == results.predicted_label(second)
    select_view_row(window, 0)
    QTest.keyClick(window.table, Qt.Key.Key_0)
    assert results.corrected_label(first) is None
    # Undo and redo, by the Edit menu's shortcuts.
    window.undo_action.trigger()
    assert results.corrected_label(first) == LABELS[1]
    window.redo_action.trigger()
    assert results.corrected_label(first) is None
    # The keys are shown in the UI.
    assert "1</b> negative" in window.detail_panel.keys_label.text()
    assert not window.table.tabKeyNavigation()  # Tab leaves the table for the next panel
    assert "QTableView:focus" in window.styleSheet()  # and focus is drawn where it lands


def test_bulk_label_the_shown_rows_asks_first(labeled_window):
    window = labeled_window
    window.session.set_filter(window.session.row_filter.copy(predicted_label="neutral"))
    shown = window.session.visible_rows.copy()
    window.dialogs.answers = [False]
    window.label_shown_rows("positive")
    assert window.session.results.corrected_count() == 0
    assert f"{len(shown):,} shown rows" in window.dialogs.questions[-1][1]
    window.label_shown_rows("positive")  # yes
    assert (window.session.results.corrected[shown] == LABELS.index("positive")).all()
    assert window.session.results.corrected_count() == len(shown)
    window.undo()
    assert window.session.results.corrected_count() == 0


# ----------------------------------------------------------------- save and resume


def test_save_session_and_reopen_it_exactly(qtbot, labeled_window, make_window, tmp_path):
    window = labeled_window
    window.correct_rows([3, 7], "positive")
    window.filters.corrected_only.setChecked(True)
    select_view_row(window, 1)
    path = tmp_path / "work.bertcls-session"
    window.save_session(path)
    assert not window.session.has_unexported_corrections()
    again = make_window()
    again.open_session(path)
    wait_idle(qtbot, again)
    assert not again.dialogs.errors
    session = again.session
    assert session.results.corrected_label(3) == "positive"
    assert session.results.labeled_count() == window.session.results.labeled_count()
    np.testing.assert_array_equal(session.results.probs, window.session.results.probs)
    assert again.filters.corrected_only.isChecked()
    assert session.visible_rows.tolist() == [3, 7]
    assert again.table_panel.current_row() == 7


def test_reopening_an_exported_table_keeps_its_predictions(qtbot, labeled_window, make_window,
                                                          pipeline_dir, tmp_path):  # fmt: skip
    window = labeled_window
    window.correct_rows([4], "negative")
    out = tmp_path / "labeled.csv"
    window.export_table(out)
    wait_idle(qtbot, window)
    again = make_window()
    load(qtbot, again, pipeline_dir, out)
    results = again.session.results
    assert results.corrected_label(4) == "negative"
    assert results.labeled_count() == window.session.results.labeled_count() - int(
        window.session.frame["text"].isna().sum()
    )


# ----------------------------------------------------------------- defect 5: no stall


def test_filter_change_keeps_a_large_selection(labeled_window):
    window = labeled_window
    window.table.selectAll()
    window.session.set_filter(window.session.row_filter.copy(predicted_label="negative"))
    kept = window.table_panel.selected_rows()
    assert sorted(kept.tolist()) == sorted(window.session.visible_rows.tolist())


# ----------------------------------------------------------------- defect 6: scrolling


def test_new_file_search_and_confusion_cell_start_at_the_top_left(qtbot, labeled_window):
    window = labeled_window
    window.resize(1280, 800)
    window.show()
    window.table.scrollToBottom()
    window.table.horizontalScrollBar().setValue(window.table.horizontalScrollBar().maximum())
    window.filters.search_edit.setText("bag")
    qtbot.waitUntil(lambda: window.model.rowCount() < 300, timeout=2000)
    assert window.table.verticalScrollBar().value() == 0
    window.clear_filters()
    window.table.scrollToBottom()
    window.table.horizontalScrollBar().setValue(window.table.horizontalScrollBar().maximum())
    window.show_confusion_cell("negative", "negative")
    assert window.table.horizontalScrollBar().value() == 0
    assert window.table.currentIndex().row() == 0
    assert window.table.verticalScrollBar().value() == 0


def test_a_newly_opened_file_starts_at_row_one(qtbot, labeled_window, sample_csv):
    window = labeled_window
    window.show()
    window.table.scrollToBottom()
    window.open_file(sample_csv)  # answered yes by the test dialogs
    wait_idle(qtbot, window)
    assert window.table.verticalScrollBar().value() == 0
    assert not window.table.currentIndex().isValid()


# ----------------------------------------------------------------- defect 7: the matrix


def test_confusion_matrix_headers_are_whole_at_1280x800(qtbot, labeled_window):
    window = labeled_window
    window.resize(1280, 800)
    window.show()
    window.views.setCurrentIndex(1)
    qtbot.wait(50)
    matrix = window.evaluation_panel.confusion
    header = matrix.horizontalHeader()
    metrics = header.fontMetrics()
    for column, label in enumerate(LABELS):
        assert matrix.horizontalHeaderItem(column).text() == label
        assert header.sectionSize(column) >= metrics.horizontalAdvance(label)
    first = matrix.item(0, 0).text()
    window.evaluation_panel.shares_box.setChecked(True)
    assert matrix.item(0, 0).text().endswith("%") and matrix.item(0, 0).text() != first


# ----------------------------------------------------------------- defect 8: window size


def test_first_start_fits_the_screen_and_a_big_geometry_shrinks(make_window, settings):
    window = make_window()
    area = window.screen().availableGeometry()
    assert window.width() <= area.width() and window.height() <= area.height()
    assert window.width() >= area.width() * 0.8
    window.resize(area.width() * 2, area.height() * 2)
    window.save_layout()
    again = make_window(settings)
    assert again.frameGeometry().width() <= area.width()
    assert again.frameGeometry().height() <= area.height()


# ----------------------------------------------------------------- defect 9: dark theme


@pytest.mark.parametrize("dark", [False, True])
def test_row_colours_keep_contrast_in_light_and_dark_themes(dark):
    palette = QPalette()
    base, text = (QColor(30, 30, 30), QColor(230, 230, 230)) if dark else (
        QColor(255, 255, 255), QColor(0, 0, 0))  # fmt: skip
    palette.setColor(QPalette.ColorRole.Base, base)
    palette.setColor(QPalette.ColorRole.Text, text)
    corrected, mismatch = row_colours(palette)
    assert _contrast(text, corrected) >= 4.5
    assert _contrast(mismatch, base) >= 4.5 and _contrast(mismatch, corrected) >= 4.5
    assert (corrected.lightnessF() < 0.5) == dark


def test_corrections_and_wrong_predictions_are_marked_not_only_coloured(labeled_window):
    window = labeled_window
    model, session = window.model, window.session
    wrong = np.flatnonzero(session.wrong_rows())
    assert wrong.size
    view_row = model.view_row(int(wrong[0]))
    shown = model.data(model.index(view_row, model.column_index("predicted_label")))
    assert shown.startswith(WRONG_MARK)
    window.correct_rows([int(wrong[0])], "neutral")
    cell = model.data(corrected_cell(window, view_row))
    assert cell == CORRECTED_MARK + "neutral"
    edit = model.data(corrected_cell(window, view_row), Qt.ItemDataRole.EditRole)
    assert edit == "neutral"


# ----------------------------------------------------------------- defect 11: exports


def test_export_needs_labels_and_can_take_the_shown_rows(qtbot, make_window, labeled_window,
                                                         pipeline_dir, sample_csv, tmp_path):  # fmt: skip
    fresh = make_window()
    load(qtbot, fresh, table=sample_csv)
    assert not fresh.export_table_action.isEnabled()  # no pipeline: nothing to export
    window = labeled_window
    assert window.export_table_action.isEnabled()
    window.session.set_filter(window.session.row_filter.copy(predicted_label="positive"))
    shown = len(window.session.visible_rows)
    asked = []
    window._choose_export_rows = lambda total, count: asked.append((total, count)) or "shown"
    window.export_table(tmp_path / "shown.csv")
    wait_idle(qtbot, window)
    written = pd.read_csv(tmp_path / "shown.csv")
    assert asked == [(300, shown)] and len(written) == shown
    assert set(written["predicted_label"]) == {"positive"}


# ----------------------------------------------------------------- filters and sorting


def test_gold_wrong_only_filters_and_uncertainty_sorts(labeled_window):
    window = labeled_window
    session, filters = window.session, window.filters
    filters.gold_filter.setCurrentIndex(filters.gold_filter.findData("neutral"))
    filters.changed.emit()
    assert (session.frame["airline_sentiment"].iloc[session.visible_rows] == "neutral").all()
    filters.wrong_only.setChecked(True)
    assert session.wrong_rows()[session.visible_rows].all()
    window.clear_filters()
    filters.uncertainty.setCurrentIndex(filters.uncertainty.findText("margin"))
    window.show_least_confident_first()
    probs = np.sort(session.results.probs[session.visible_rows], axis=1)
    margins = probs[:, -1] - probs[:, -2]
    known = margins[~np.isnan(margins)]
    assert (np.diff(known) >= 0).all()
    filters.uncertainty.setCurrentIndex(filters.uncertainty.findText("entropy"))
    window.show_least_confident_first()
    p = session.results.probs[session.visible_rows[:20]]
    entropy = -(p * np.log(p)).sum(axis=1)
    assert (np.diff(entropy) <= 1e-6).all()


def test_numbers_in_the_status_bar_have_thousands_separators(window):
    window._on_progress(1500, 14640, 135.0, 97.0)
    assert window.progress.format() == "1,500 / 14,640 rows"
    assert window.speed_label.text() == "135 rows/s · 1:37 left"
