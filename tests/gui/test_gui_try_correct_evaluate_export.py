"""Try a text, corrections and their export, evaluation with the confusion matrix, exports."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spacy
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QComboBox
from spacy.tokens import DocBin

from spacy_bertcls.convert import convert_table
from spacy_bertcls.labeling import predict_proba
from spacy_bertcls.pipelines import load_pipeline

from .gui_support import LABELS, load, wait_idle

pytestmark = pytest.mark.gui


# ----------------------------------------------------------------------------- try a text


def test_try_a_text_shows_probabilities_after_typing(qtbot, window, pipeline_dir):
    load(qtbot, window, pipeline_dir)
    panel = window.try_panel
    shown = []
    panel.result_shown.connect(lambda text, probs: shown.append((text, probs)))
    started = time.perf_counter()
    panel.editor.setPlainText("lost my bag awful")
    assert panel.timer.isActive()  # debounced, not run on every keystroke
    qtbot.waitUntil(lambda: bool(shown), timeout=3000)
    waited = time.perf_counter() - started
    text, probs = shown[-1]
    expected = predict_proba(load_pipeline(pipeline_dir), [text])[0]
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    assert LABELS[int(np.argmax(probs))] == "negative"
    assert "negative" in panel.result_label.text()
    assert 0.2 <= waited < 2.0  # debounced ~250 ms (a coarse timer may fire 5 % early)
    assert panel.last_seconds < 0.5  # one text: fast; it still runs off the UI thread
    # Typing on quickly shows only the latest text's answer.
    shown.clear()
    for text in ("great", "great flight", "great flight thanks"):
        panel.editor.setPlainText(text)
        qtbot.wait(30)
    qtbot.waitUntil(lambda: bool(shown), timeout=3000)
    qtbot.wait(300)
    assert [t for t, _ in shown] == ["great flight thanks"]


# ----------------------------------------------------------------------------- corrections


def test_correct_rows_and_export_training_data(qtbot, labeled_window, tmp_path):
    window = labeled_window
    model = window.model
    column = model.column_index("corrected_label")
    # 1. In the table, with the combo-box delegate.
    index = model.index(0, column)
    window.table.setCurrentIndex(index)
    window.table.edit(index)
    editor = window.table.findChild(QComboBox)
    assert editor is not None and editor.count() == 1 + len(LABELS)
    editor.setCurrentIndex(editor.findData("neutral"))
    editor.activated.emit(editor.currentIndex())
    assert window.session.results.corrected_label(model.source_row(0)) == "neutral"
    assert (
        model.data(model.index(0, 1), Qt.ItemDataRole.BackgroundRole) == model.corrected_background
    )
    # 2. In the details panel.
    window.table.selectionModel().setCurrentIndex(
        model.index(1, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    combo = window.detail_panel.correction_combo
    combo.setCurrentIndex(combo.findData("positive"))
    combo.activated.emit(combo.currentIndex())
    assert window.session.results.corrected_label(model.source_row(1)) == "positive"
    # 3. Several selected rows at once.
    window.correct_rows([10, 11, 12], "negative")
    assert window.session.results.corrected_count() == 5
    assert "5 corrected" in window.rows_status.text()
    window.filters.corrected_only.setChecked(True)
    assert model.rowCount() == 5
    window.correct_rows([12], None)  # cleared again
    assert window.session.results.corrected_count() == 4

    expected = {
        window.session.text(r): window.session.results.corrected_label(r)
        for r in np.flatnonzero(window.session.results.corrected >= 0)
    }
    csv_path = tmp_path / "corrections.csv"
    window.export_corrections(csv_path)
    wait_idle(qtbot, window)
    written = pd.read_csv(csv_path)
    assert list(written.columns) == ["row", "text", "label"]
    # Each correction says which row it came from, numbered as the table and a spreadsheet.
    corrected_rows = np.flatnonzero(window.session.results.corrected >= 0)
    assert written["row"].tolist() == (corrected_rows + 2).tolist()
    assert dict(zip(written["text"], written["label"])) == expected
    spacy_path = tmp_path / "corrections.spacy"
    window.export_corrections(spacy_path)
    wait_idle(qtbot, window)
    docs = list(DocBin().from_disk(spacy_path).get_docs(spacy.blank("en").vocab))
    assert {doc.text: max(doc.cats, key=doc.cats.get) for doc in docs} == expected
    assert all(sorted(doc.cats) == LABELS and sum(doc.cats.values()) == 1.0 for doc in docs)
    # The project's convert reads the CSV as training data.
    # (Five variants of each text: convert keeps copies of one text in one split.)
    more = pd.concat(
        [written.assign(text=written["text"] + f" #{i}") for i in range(5)], ignore_index=True
    )
    more.to_csv(tmp_path / "more.csv", index=False)
    summary = convert_table(
        tmp_path / "more.csv",
        text_column="text",
        label_column="label",
        out_dir=tmp_path / "corpus",
        dev_size=0.2,
        test_size=0.2,
    )
    assert summary.rows_kept == len(more)
    assert not window.dialogs.errors


def test_corrections_csv_round_trips_texts_through_convert(qtbot, window, pipeline_dir, tmp_path):
    texts = ["@united lost my bag", "great crew", "=cmd|' /C calc'!A0"]
    path = tmp_path / "at.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    load(qtbot, window, pipeline_dir, path)
    window.correct_rows([0, 2], "negative")
    window.correct_rows([1], "positive")
    window.export_corrections(tmp_path / "c.csv")
    wait_idle(qtbot, window)
    # The file guards the cells against spreadsheet formulas, and says so...
    assert window.dialogs.infos[-1][0] == "Formula guard in the CSV file"
    with open(tmp_path / "c.csv", encoding="utf-8-sig") as file:
        assert "'@united lost my bag" in file.read()
    # ...and convert reads the exact texts back.
    convert_table(
        tmp_path / "c.csv",
        text_column="text",
        label_column="label",
        out_dir=tmp_path / "corpus",
        dev_size=0,
        test_size=0,
    )
    docs = DocBin().from_disk(tmp_path / "corpus" / "train.spacy").get_docs(spacy.blank("en").vocab)
    assert sorted(doc.text for doc in docs) == sorted(texts)


def test_export_corrections_without_any(qtbot, labeled_window, tmp_path):
    labeled_window.export_corrections(tmp_path / "c.csv")
    assert labeled_window.dialogs.infos[-1][0] == "No corrections"
    assert not (tmp_path / "c.csv").exists()


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_and_click_confusion_cell_filters_table(qtbot, labeled_window, tmp_path):
    window = labeled_window
    evaluation = window.evaluation  # evaluated right after labeling (gold column guessed)
    assert evaluation is not None
    result = evaluation.result
    model = window.model
    gold = window.session.frame["airline_sentiment"].to_numpy(dtype=object)
    predicted = np.array([*LABELS, None], dtype=object)[window.session.results.predicted]
    ok = window.session.results.predicted >= 0
    assert result.n_evaluated == int(ok.sum())
    assert result.accuracy == pytest.approx(float((gold[ok] == predicted[ok]).mean()))
    panel = window.evaluation_panel
    assert panel.metrics.rowCount() == len(LABELS) + 2
    assert panel.metrics.verticalHeaderItem(len(LABELS)).text() == "macro avg"
    assert f"{result.accuracy:.3f}" in panel.summary.text()
    assert panel.pr_pane.canvas is not None and panel.reliability_pane.canvas is not None
    matrix = panel.confusion
    assert matrix.rowCount() == matrix.columnCount() == len(LABELS)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            assert matrix.item(i, j).text().split("\n")[0].replace(",", "") == str(
                result.confusion[i][j]
            )
    # Click an off-diagonal cell with rows in it (or the diagonal if the model is perfect).
    cells = [(i, j) for i in range(3) for j in range(3) if result.confusion[i][j]]
    i, j = next(((i, j) for i, j in cells if i != j), cells[0])
    window.show()
    window.views.setCurrentIndex(1)
    qtbot.waitExposed(matrix)
    rect = matrix.visualItemRect(matrix.item(i, j))
    assert matrix.itemAt(rect.center()) is matrix.item(i, j)
    from PySide6.QtTest import QTest

    QTest.mouseClick(matrix.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.views.currentIndex() == 0
    rows = set(window.session.visible_rows.tolist())
    expected = {
        r for r in range(len(gold)) if ok[r] and gold[r] == LABELS[i] and predicted[r] == LABELS[j]
    }
    assert rows == expected and len(rows) == result.confusion[i][j]
    assert window.table_panel.row_filter_label.isVisible()
    assert f"predicted_label = {LABELS[j]}" in window.table_panel.row_filter_label.text()
    window.set_row_filter(None)
    assert model.rowCount() == 300
    # Export the report the CLI writes.
    report = tmp_path / "report" / "eval.html"
    report.parent.mkdir()
    window.export_report(report)
    wait_idle(qtbot, window)
    assert report.is_file() and "Confusion" in report.read_text()
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["accuracy"] == pytest.approx(result.accuracy)
    assert data["details"]["written by"] == "bertcls-gui"
    assert sorted(p.name for p in (report.parent / "eval_plots").iterdir()) == [
        "confusion_matrix.png",
        "pr_curves.png",
        "reliability.png",
    ]


def test_evaluate_with_wrong_gold_column(qtbot, labeled_window):
    window = labeled_window
    window.set_gold_column("airline")  # "A"/"B" are not pipeline labels
    window.evaluate()
    wait_idle(qtbot, window)
    title, message = window.dialogs.errors[-1]
    assert title == "Could not evaluate" and "No row can be evaluated" in message
    window.set_gold_column(None)
    window.evaluate()
    assert window.dialogs.errors[-1][0] == "No gold column"


# ----------------------------------------------------------------------------- exports


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_export_labeled_table(qtbot, labeled_window, tmp_path, suffix):
    window = labeled_window
    window.correct_rows([3], "positive")
    path = tmp_path / f"labeled{suffix}"
    window.export_table(path)
    wait_idle(qtbot, window)
    assert not window.dialogs.errors
    read = {".csv": pd.read_csv, ".xlsx": pd.read_excel, ".parquet": pd.read_parquet}[suffix]
    written = read(path)
    assert list(written.columns) == [
        "id",
        "airline_sentiment",
        "text",
        "airline",
        "predicted_label",
        "confidence",
        *(f"prob_{lab}" for lab in LABELS),
        "corrected_label",
    ]
    assert len(written) == 300
    np.testing.assert_allclose(
        written["prob_neutral"].to_numpy(dtype=float),
        window.session.results.probs[:, 1],
        rtol=1e-4,
        equal_nan=True,
    )
    assert written["corrected_label"][3] == "positive"
    assert "Exported 300 rows" in window.statusBar().currentMessage()


def test_export_over_source_needs_confirmation(qtbot, labeled_window, sample_csv):
    window = labeled_window
    before = sample_csv.read_bytes()
    window.dialogs.answers = [False]
    window.export_table(sample_csv)
    wait_idle(qtbot, window)
    assert window.dialogs.questions[-1][0] == "Overwrite the source file?"
    assert sample_csv.read_bytes() == before
    window.dialogs.answers = [True]
    window.export_table(sample_csv)
    wait_idle(qtbot, window)
    assert "predicted_label" in pd.read_csv(sample_csv).columns
    qtbot.wait(600)  # our own write does not count as "changed by another program"
    assert [q for q in window.dialogs.questions if q[0] == "File changed on disk"] == []


def test_export_to_read_only_place(qtbot, labeled_window, tmp_path):
    window = labeled_window
    if os.geteuid() == 0:  # root may write into a read-only folder; /proc takes no files
        target = Path("/proc/bertcls_labeled.csv")
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        target = folder / "labeled.csv"
    window.export_table(target)
    wait_idle(qtbot, window)
    title, message = window.dialogs.errors[-1]
    assert title == "Could not export the table"
    assert "Cannot write" in message
    assert window.session.results.labeled_count() == 300  # nothing lost
    window.export_table(tmp_path / "labeled.xls")
    assert "choose one of" in window.dialogs.errors[-1][1]
