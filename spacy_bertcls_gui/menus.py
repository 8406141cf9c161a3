"""The window's actions, menus, toolbar and Help texts, in one place so that shortcuts and
the Help > Keyboard Shortcuts list cannot disagree."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QToolBar

from spacy_bertcls.devices import CPU

from .labeling_run import cuda_devices
from .threshold_dialog import show_threshold_dialog

if TYPE_CHECKING:
    from .main_window import MainWindow

#: Keys handled by the table itself (not actions), for the shortcut list.
TABLE_KEYS = [
    ("1 … 9", "Set corrected_label of the selected rows to label 1 … 9 (see the Details tab)"),
    ("A", "Accept the prediction: corrected_label = predicted_label"),
    ("0, Delete", "Clear the correction"),
    ("F2", "Choose corrected_label from a list (type to jump, Enter to commit, Esc to cancel)"),
    ("Tab / Shift+Tab", "Move between the file bar, the filters, the table and the side panel"),
]

GUIDE = """
<h3>Labeling a file</h3>
<ol>
<li><b>File &gt; Open Pipeline</b> (Ctrl+Shift+O): a folder trained with
<code>bertcls train</code> or <code>spacy train</code>, e.g. <code>training/model-best</code>.</li>
<li><b>File &gt; Open File</b> (Ctrl+O): CSV, TSV, Excel, Parquet, JSON lines or text.
Check <i>text_column</i> and <i>gold column</i> in the file bar.</li>
<li><b>Label</b> (Ctrl+L). Cancel keeps the rows done; Label again continues.</li>
</ol>
<h3>Correcting</h3>
<p>Sort by <i>confidence</i> (Ctrl+Shift+L) or filter to <i>wrong only</i>, then press a number
key for the right label; the next row is selected. <b>A</b> accepts the prediction, <b>0</b>
clears, Ctrl+Z undoes. <b>Edit &gt; Label Shown Rows As</b> sets every filtered row at once.</p>
<h3>Keeping your work</h3>
<p><b>File &gt; Save Session</b> (Ctrl+Shift+S) keeps everything (predictions, corrections,
filters) to reopen later with <b>File &gt; Open Session</b>. <b>Export Corrections</b> writes
training data for <code>bertcls train</code>; <b>Export Labeled Table</b> writes the columns
<code>bertcls label</code> writes; <b>Export Rows to Review</b> writes the rows whose
confidence is under a value you choose, for a person to check.</p>
<h3>Decision thresholds</h3>
<p><b>Label &gt; Decision Threshold</b> moves the probability at which a label applies (two
exclusive classes, or any label of a multi-label classifier) and shows what changes before
you apply it. <b>File &gt; Save Pipeline As</b> keeps the threshold in a new pipeline folder
that <code>bertcls label</code> uses.</p>
<h3>Evaluating</h3>
<p>With a gold column, <b>Evaluate</b> (F5) scores the labeled rows; click a confusion-matrix
cell to see its rows. Rows the pipeline was trained on are counted apart.</p>
<h3>Suspect labels and retraining</h3>
<p>With a gold column, <b>View &gt; Suspect Labels</b> (Ctrl+Shift+U) audits it (out-of-fold
predictions and cleanlab, as <code>bertcls audit</code>) and shows the rows whose gold label
is probably wrong, most likely first, with <i>suggested_label</i> and <i>label_quality</i>.
Correct them as usual. <b>Label &gt; Retrain</b> trains the head again on the pipeline's
training corpus plus your corrections and writes a new version beside it
(<code>model-best-v2</code>); <b>Label &gt; Switch Back</b> returns to the previous one.</p>
"""


def build_actions(window: MainWindow) -> None:
    """Create the window's actions as attributes (``window.label_action``, ...)."""

    def action(name: str, text: str, slot: Callable[[], Any], shortcut: Any = None,
               tip: str = "") -> QAction:  # fmt: skip
        act = QAction(text, window)
        act.triggered.connect(lambda _=False: slot())
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        setattr(window, name, act)
        return act

    w = window
    action("open_pipeline_action", "Open &Pipeline…", w.open_pipeline_dialog, "Ctrl+Shift+O",
           "Load a trained pipeline folder (e.g. training/model-best)")  # fmt: skip
    action("open_file_action", "&Open File…", w.open_file_dialog, QKeySequence.StandardKey.Open,
           "Open a CSV, TSV, Excel, Parquet, JSON lines or text file")  # fmt: skip
    action("open_session_action", "Open Sess&ion…", w.open_session_dialog, None,
           "Reopen a saved session: pipeline, file, predictions, corrections, filters")  # fmt: skip
    action("save_session_action", "&Save Session…", w.save_session, "Ctrl+Shift+S",
           "Save predictions, corrections and filters to reopen later")  # fmt: skip
    action("label_action", "&Label", w.start_labeling, "Ctrl+L", "Label the rows not labeled yet")
    action("cancel_action", "&Cancel Labeling", w.cancel_labeling, None,
           "Stop; the rows labeled so far are kept")  # fmt: skip
    action("evaluate_action", "&Evaluate", w.evaluate, "F5",
           "Compare predicted_label with the gold column")  # fmt: skip
    action("export_table_action", "Export Labeled &Table…", w.export_table,
           QKeySequence.StandardKey.Save,
           "Write the table with predicted_label, confidence and prob_<label> columns")  # fmt: skip
    action("export_corrections_action", "Export &Corrections…", w.export_corrections, "Ctrl+E",
           "Write the corrected rows as training data (text,label CSV or .spacy)")  # fmt: skip
    action("export_report_action", "Export Evaluation &Report…", w.export_report, "Ctrl+R",
           "Write the HTML evaluation report the CLI writes")  # fmt: skip
    action("export_review_action", "Export Rows to Re&view…", w.export_review_rows, None,
           "Write the labeled rows whose confidence is under a value, for a person to check")  # fmt: skip
    action("save_pipeline_action", "Save Pipe&line As…", w.save_pipeline_as, None,
           "Write the pipeline with the thresholds set here to a new folder (for bertcls label)")  # fmt: skip
    action("threshold_action", "Decision &Threshold…", lambda: show_threshold_dialog(w), None,
           "Move a label's decision threshold and see what changes before applying it")  # fmt: skip
    action("quit_action", "&Quit", w.close, "Ctrl+Q")
    action("undo_action", "&Undo Correction", w.undo, QKeySequence.StandardKey.Undo)
    action("redo_action", "&Redo Correction", w.redo, "Ctrl+Shift+Z")
    w.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    action("least_confident_action", "&Least Confident First", w.show_least_confident_first,
           "Ctrl+Shift+L")  # fmt: skip
    action("suspect_labels_action", "&Suspect Labels", w.show_suspect_labels, "Ctrl+Shift+U",
           "Rows whose gold label is probably wrong (an audit of the gold column with cleanlab), "
           "most likely first")  # fmt: skip
    action("retrain_action", "&Retrain…", w.open_retrain_dialog, None,
           "Train the head again on the training corpus plus the corrections, as a new "
           "pipeline version")  # fmt: skip
    action("switch_back_action", "Switch &Back to the Previous Pipeline", w.switch_back, None,
           "Use the pipeline version used before this one; the corrections stay")  # fmt: skip
    action("clear_filters_action", "C&lear Filters", w.clear_filters, "Ctrl+Shift+X")
    action("find_action", "&Find in Texts",
           lambda: (w.views.setCurrentIndex(0), w.filters.search_edit.setFocus()),
           QKeySequence.StandardKey.Find)  # fmt: skip
    action("shortcuts_action", "&Keyboard Shortcuts", lambda: show_shortcuts(w), "F1")
    action("guide_action", "&Guide", lambda: show_guide(w))
    action("about_action", "&About", lambda: show_about(w))

    toolbar = QToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for act in (w.open_pipeline_action, w.open_file_action, None, w.label_action,
                w.cancel_action, None, w.export_table_action, w.export_corrections_action,
                None, w.evaluate_action):  # fmt: skip
        if act is None:
            toolbar.addSeparator()
        else:
            toolbar.addAction(act)
    w.addToolBar(toolbar)


def build_menus(window: MainWindow) -> None:
    w = window
    menu_bar = w.menuBar()
    file_menu = menu_bar.addMenu("&File")
    file_menu.addAction(w.open_pipeline_action)
    w.recent_pipelines_menu = file_menu.addMenu("Recent Pi&pelines")
    file_menu.addSeparator()
    file_menu.addAction(w.open_file_action)
    w.recent_files_menu = file_menu.addMenu("&Recent Files")
    file_menu.addSeparator()
    file_menu.addAction(w.open_session_action)
    file_menu.addAction(w.save_session_action)
    file_menu.addSeparator()
    file_menu.addAction(w.export_table_action)
    file_menu.addAction(w.export_corrections_action)
    file_menu.addAction(w.export_report_action)
    file_menu.addAction(w.export_review_action)
    file_menu.addSeparator()
    file_menu.addAction(w.save_pipeline_action)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)

    edit_menu = menu_bar.addMenu("&Edit")
    edit_menu.addAction(w.undo_action)
    edit_menu.addAction(w.redo_action)
    edit_menu.addSeparator()
    w.label_shown_menu = edit_menu.addMenu("Label &Shown Rows As")
    w.label_shown_menu.aboutToShow.connect(lambda: _fill_label_shown_menu(w))

    label_menu = menu_bar.addMenu("&Label")
    label_menu.addAction(w.label_action)
    label_menu.addAction(w.cancel_action)
    label_menu.addAction(w.evaluate_action)
    label_menu.addSeparator()
    label_menu.addAction(w.threshold_action)
    label_menu.addSeparator()
    label_menu.addAction(w.retrain_action)
    label_menu.addAction(w.switch_back_action)
    w.device_menu = label_menu.addMenu("&Device")
    _fill_device_menu(w, w.device_menu)

    view_menu = menu_bar.addMenu("&View")
    view_menu.addAction(w.find_action)
    view_menu.addAction(w.least_confident_action)
    view_menu.addAction(w.suspect_labels_action)
    view_menu.addAction(w.clear_filters_action)
    view_menu.addSeparator()
    for i, name in enumerate(("Table", "Evaluation", "Pipeline")):
        act = QAction(f"&{name}", w)
        act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
        act.triggered.connect(lambda _=False, i=i: w.views.setCurrentIndex(i))
        view_menu.addAction(act)

    help_menu = menu_bar.addMenu("&Help")
    help_menu.addAction(w.shortcuts_action)
    help_menu.addAction(w.guide_action)
    help_menu.addSeparator()
    help_menu.addAction(w.about_action)


def _fill_device_menu(window: MainWindow, menu: QMenu) -> None:
    """CPU and one entry per CUDA GPU, one of them checked: where pipelines loaded from now on
    label (``window.device_actions`` maps a device number to its action)."""
    group = QActionGroup(window)
    group.setExclusive(True)
    window.device_actions = {}
    names = cuda_devices()
    entries = [(CPU, "&CPU")] + [(i, f"&GPU {i}: {name}") for i, name in enumerate(names)]
    for device, text in entries:
        act = menu.addAction(text)
        act.setCheckable(True)
        act.setData(device)
        group.addAction(act)
        window.device_actions[device] = act
    if not names:
        menu.addAction("GPU: none found (CUDA not available)").setEnabled(False)
    window.device_actions[window.device].setChecked(True)
    # triggered (not toggled): only the user's choice, never the check set here.
    group.triggered.connect(lambda act: window.choose_device(int(act.data())))


def _fill_label_shown_menu(window: MainWindow) -> None:
    menu = window.label_shown_menu
    menu.clear()
    shown = len(window.session.visible_rows)
    for label in window.session.labels:
        act = menu.addAction(f"{label} ({shown:,} rows)…")
        act.triggered.connect(lambda _=False, label=label: window.label_shown_rows(label))
    menu.addSeparator()
    clear = menu.addAction(f"Clear Their Corrections ({shown:,} rows)…")
    clear.triggered.connect(lambda _=False: window.label_shown_rows(None))


def shortcut_rows(window: MainWindow) -> list[tuple[str, str]]:
    """(keys, what they do) for every action with a shortcut, then the table's own keys."""
    rows = []
    for act in window.findChildren(QAction):
        keys = ", ".join(
            key.toString(QKeySequence.SequenceFormat.NativeText) for key in act.shortcuts()
        )
        if keys:
            rows.append((keys, act.text().replace("&", "").rstrip("…")))
    return sorted(set(rows), key=lambda row: row[1]) + TABLE_KEYS


def shortcuts_html(window: MainWindow) -> str:
    body = "".join(
        f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(text)}</td></tr>"
        for keys, text in shortcut_rows(window)
    )
    return f"<table cellspacing=4>{body}</table>"


def show_shortcuts(window: MainWindow) -> None:
    box = QMessageBox(window)
    box.setWindowTitle("Keyboard shortcuts")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(shortcuts_html(window))
    box.exec()


def show_guide(window: MainWindow) -> None:
    box = QMessageBox(window)
    box.setWindowTitle("bertcls guide")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(GUIDE)
    box.exec()


def show_about(window: MainWindow) -> None:
    from spacy_bertcls import __version__

    QMessageBox.about(
        window,
        "About bertcls",
        f"<b>bertcls {__version__}</b><p>Label spreadsheets with a trained spaCy text "
        "classifier (BERT-family encoder), inspect and correct the labels, and evaluate "
        "them against a gold column.</p><p>Same functions as the <code>bertcls</code> "
        "command line.</p>",
    )
