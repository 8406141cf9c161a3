"""The Suspect labels view and Label > Retrain, on a tiny frozen bert_textcat pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from spacy_bertcls import feature_store
from spacy_bertcls.audit import SUGGESTED_LABEL, SUSPECT_RANK

from .gui_support import load, wait_idle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_retrain import FLIPPED, folder_state, loop_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def bert_pipeline(tmp_path_factory):
    return loop_pipeline(tmp_path_factory.mktemp("gui_loop"), with_id=False)


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(feature_store.CACHE_ENV, str(tmp_path / "features"))


@pytest.fixture
def loop_window(qtbot, window, bert_pipeline):
    pipeline, table = bert_pipeline
    load(qtbot, window, pipeline, table)
    window.set_gold_column("gold")
    window._update_actions()
    return window


def wait_job(qtbot, window, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: window.job is None, timeout=timeout)
    wait_idle(qtbot, window)


def test_suspect_labels_view_ranks_and_corrects(qtbot, loop_window):
    window = loop_window
    assert window.suspect_labels_action.isEnabled()
    assert window.filters.suspects_button.isEnabled()
    qtbot.mouseClick(window.filters.suspects_button, Qt.MouseButton.LeftButton)
    assert window.job is not None and not window.suspect_labels_action.isEnabled()
    wait_job(qtbot, window)
    assert not window.dialogs.errors
    session, model = window.session, window.model
    suspects = session.suspect_rows()
    assert suspects.size and set(FLIPPED) & set(suspects[:8].tolist())
    # Only the suspects, ranked; their suggested label and rank are columns of the table.
    assert model.rowCount() == suspects.size
    assert list(session.visible_rows) == list(suspects)
    assert model.column_index(SUGGESTED_LABEL) >= 0 and model.column_index(SUSPECT_RANK) >= 0
    rank = model.index(0, model.column_index(SUSPECT_RANK)).data()
    assert str(rank) == "1"
    assert "suspect labels" in window.table_panel.row_filter_label.text()
    # The current row is the first suspect; a number key corrects it, as anywhere.
    assert window.table_panel.current_row() == suspects[0]
    qtbot.keyClick(window.table, Qt.Key.Key_2)
    assert session.results.corrected_label(int(suspects[0])) == session.labels[1]
    window.table_panel.accept_suggestions(suspects[1:3])
    suggested = session.frame[SUGGESTED_LABEL].to_numpy(dtype=object)[suspects[1:3]]
    assert [session.results.corrected_label(int(r)) for r in suspects[1:3]] == list(suggested)
    # A second click shows the same audit again, without running it.
    window.clear_filters()
    window.show_suspect_labels()
    assert window.job is None and model.rowCount() == suspects.size


def test_a_cancelled_audit_changes_nothing(qtbot, loop_window):
    window = loop_window
    columns = list(window.session.frame.columns)
    window.start_audit()
    window.cancel_running()
    wait_job(qtbot, window)
    assert list(window.session.frame.columns) == columns and window.session.audit is None
    assert "cancelled" in window.statusBar().currentMessage().lower()


def test_retrain_dialog_writes_a_new_version_and_switches_back(qtbot, loop_window, bert_pipeline):
    window = loop_window
    pipeline, _ = bert_pipeline
    assert not window.retrain_action.isEnabled()  # nothing corrected yet
    window.correct_rows([FLIPPED[0]], "ham")
    window.correct_rows([FLIPPED[2]], "spam")
    assert window.retrain_action.isEnabled()
    before = folder_state(pipeline)
    dialog = window.open_retrain_dialog()
    assert dialog is not None and dialog.train is not None and dialog.dev is not None
    assert dialog.out == pipeline.parent / "model-best-v2"
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert window.is_busy()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60000)
    assert not window.dialogs.errors, window.dialogs.errors
    assert dialog.result is not None and dialog.use_button.isVisible()
    text = dialog.result_label.text()
    assert "model-best-v2" in text and "macro F1 before" in text and "dev split" in text
    assert "file&#x27;s gold column" in text or "file's gold column" in text
    assert folder_state(pipeline) == before
    assert window.last_retrain["seconds"] > 0

    corrected = window.session.results.corrected.copy()
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.session.pipeline_path == dialog.result.pipeline
    np.testing.assert_array_equal(window.session.results.corrected, corrected)
    assert window.switch_back_action.isEnabled()
    assert "model-best" in window.switch_back_action.text()
    window.switch_back()
    wait_idle(qtbot, window)
    assert window.session.pipeline_path == pipeline
    assert not window.switch_back_action.isEnabled()
    assert folder_state(pipeline) == before


def test_label_quality_reads_as_a_probability(qtbot, loop_window):
    window = loop_window
    window.start_audit()
    wait_job(qtbot, window)
    model = window.model
    shown = model.index(0, model.column_index("label_quality")).data()
    value = float(window.session.frame["label_quality"].iat[window.session.visible_rows[0]])
    assert shown == f"{value:.3g}"
