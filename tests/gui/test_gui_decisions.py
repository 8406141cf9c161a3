"""Decision thresholds, rows to review, Save Pipeline As and the device in the app."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_calibration import DEV_HAM, DEV_SPAM, dev_cats, overconfident_pipeline

from spacy_bertcls.calibration import calibrate
from spacy_bertcls.decisions import decision_rule
from spacy_bertcls.pipelines import load_pipeline
from spacy_bertcls.tables import read_table

from .gui_support import label, load, make_pipeline, wait_idle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def binary_pipeline_dir(tiny_encoder, tmp_path_factory):
    """A calibrated two-class bert_textcat pipeline (ham, spam)."""
    nlp = overconfident_pipeline(tiny_encoder)
    calibrate(nlp, *dev_cats())
    path = tmp_path_factory.mktemp("calibrated") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture
def binary_window(qtbot, window, binary_pipeline_dir, tmp_path):
    table = tmp_path / "messages.csv"
    gold = ["ham"] * len(DEV_HAM) + ["spam"] * len(DEV_SPAM)
    pd.DataFrame({"text": DEV_HAM + DEV_SPAM, "label": gold}).to_csv(table, index=False)
    load(qtbot, window, binary_pipeline_dir, table)
    window.set_gold_column("label")
    label(qtbot, window)
    return window


def a_threshold_that_changes_rows(session, label: str) -> float:
    for threshold in (0.9, 0.99, 0.7, 0.3, 0.1, 0.01):
        if session.threshold_preview(label, threshold).changed:
            return threshold
    raise AssertionError("no threshold changes a row")


def test_threshold_dialog_previews_applies_and_save_pipeline_as_keeps_it(
    qtbot, binary_window, tmp_path
):
    window, session = binary_window, binary_window.session
    assert window.threshold_action.isEnabled()
    window.threshold_action.trigger()
    dialog = window.threshold_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.set_label("spam")
    threshold = a_threshold_that_changes_rows(session, "spam")
    dialog.slider.setValue(round(threshold * 100))  # the spin box and the preview follow
    assert dialog.threshold == threshold
    preview = session.threshold_preview("spam", threshold)
    assert dialog.preview_label.text() == preview.format()
    assert preview.n_gold == len(session.frame)
    if preview.precision is not None:
        assert dialog.point() == pytest.approx((preview.recall, preview.precision))

    spam = session.labels.index("spam")
    before = session.results.predicted.copy()
    dialog.apply_button.click()
    after = session.results.predicted
    expected = np.where(session.results.probs[:, spam] >= threshold, spam, 1 - spam)
    assert after.tolist() == expected.tolist()
    assert int((after != before).sum()) == preview.changed > 0
    wait_idle(qtbot, window)  # Apply evaluates again against the gold column
    assert f"{preview.changed:,} rows changed label" in window.statusBar().currentMessage()
    assert session.evaluation is not None
    assert f"{threshold:.3f}" in session.evaluation.result.decision
    # The Pipeline tab shows the new decision rule.
    assert f"p(spam) >= {threshold:.3f}" in window.pipeline_panel.info.toPlainText()
    assert dialog.preview_label.text() == session.threshold_preview("spam", threshold).format()

    # Never over the loaded folder; a new one loads with the threshold.
    window.dialogs.save_path = str(session.pipeline_path)
    window.save_pipeline_action.trigger()
    wait_idle(qtbot, window)
    assert window.dialogs.errors and window.dialogs.errors[-1][0] == "Could not save the pipeline"
    out = tmp_path / "with_threshold"
    window.dialogs.save_path = str(out)
    window.save_pipeline_action.trigger()
    wait_idle(qtbot, window)
    assert str(out) in window.statusBar().currentMessage()
    assert decision_rule(load_pipeline(out)).tuned == {"spam": threshold}
    assert len(window.dialogs.errors) == 1


def test_threshold_dialog_explains_what_it_cannot_do(qtbot, window, pipeline_dir, sample_csv, tmp_path):  # fmt: skip
    assert not window.threshold_action.isEnabled()  # no pipeline, no labeled rows
    load(qtbot, window, pipeline_dir, sample_csv)
    label(qtbot, window)
    window.threshold_action.trigger()
    dialog = window.threshold_dialog
    # spaCy's textcat with three exclusive classes: the most probable label, no threshold.
    assert dialog.error_label.isVisible()
    assert "two exclusive classes" in dialog.error_label.text()
    assert not dialog.apply_button.isEnabled()
    assert dialog.apply() is None

    # Two classes of spaCy's own textcat: the preview works, Apply is refused and stays off.
    binary = make_pipeline(tmp_path / "binary", ["negative", "neutral"])
    load(qtbot, window, binary)
    label(qtbot, window)
    dialog.refresh()
    assert dialog.label_combo.currentText() == "negative"
    assert not dialog.error_label.isVisible() and dialog.apply_button.isEnabled()
    before = window.session.results.predicted.copy()
    assert dialog.apply() is None
    assert "not bert_textcat" in dialog.error_label.text()
    assert window.session.results.predicted.tolist() == before.tolist()
    dialog.refresh()
    assert not dialog.apply_button.isEnabled()


def test_export_rows_to_review_writes_the_unsure_rows(qtbot, binary_window, tmp_path):
    window, session = binary_window, binary_window.session
    confidence = session.results.confidence
    below = float(np.sort(confidence)[len(confidence) // 2])
    rows = np.flatnonzero(confidence < below)
    assert 0 < len(rows) < len(confidence)
    window._get_review_confidence = lambda: below
    path = tmp_path / "review.csv"
    window.dialogs.save_path = str(path)
    window.export_review_action.trigger()
    wait_idle(qtbot, window)
    written = read_table(path)
    assert written["text"].tolist() == session.frame["text"].iloc[rows].tolist()
    assert (pd.to_numeric(written["confidence"]) < below).all()
    assert window.statusBar().currentMessage() == (
        f"Exported {len(rows):,} rows under confidence {below:g} to {path}"
    )
    # The source file is refused, with a message; it stays as it was.
    source = session.file_path
    contents = source.read_bytes()
    window.dialogs.save_path = str(source)
    window.export_review_action.trigger()
    wait_idle(qtbot, window)
    assert window.dialogs.errors[-1][0] == "Cannot export the rows to review"
    assert "is the input file" in window.dialogs.errors[-1][1]
    assert source.read_bytes() == contents
    # No row under the confidence: said so, nothing written.
    window._get_review_confidence = lambda: float(confidence.min())
    window.dialogs.save_path = str(tmp_path / "none.csv")
    window.export_review_action.trigger()
    wait_idle(qtbot, window)
    assert window.dialogs.infos[-1][0] == "No rows to review"
    assert not (tmp_path / "none.csv").exists()


def test_device_menu_offers_the_cpu_and_says_no_gpu_was_found(window):
    texts = [act.text().replace("&", "") for act in window.device_menu.actions()]
    assert texts == ["CPU", "GPU: none found (CUDA not available)"]
    cpu, gpu = window.device_menu.actions()
    assert cpu.isChecked() and cpu.isCheckable()
    assert not gpu.isEnabled()
    # A GPU remembered from another machine is the CPU here; choosing one says why not.
    window.settings.setValue("labeling/device", 0)
    assert window.device == -1
    window.choose_device(0)
    assert window.dialogs.errors[-1][0] == "Cannot label on this device"
    assert "no CUDA GPU" in window.dialogs.errors[-1][1]
    assert cpu.isChecked()
