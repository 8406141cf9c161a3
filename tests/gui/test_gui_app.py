"""Starting the app from the command line; menus and shortcuts; the layout is remembered."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from .gui_support import load, wait_idle

pytestmark = pytest.mark.gui


def test_main_opens_pipeline_and_file(qtbot, monkeypatch, tmp_path, pipeline_dir, sample_csv):
    from spacy_bertcls_gui import app as app_module

    settings = QSettings(str(tmp_path / "main.ini"), QSettings.Format.IniFormat)
    monkeypatch.setattr(
        app_module, "MainWindow", lambda settings=None: _window(settings or settings_)
    )
    settings_ = settings
    seen = {}

    def fake_exec():
        window = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "bertclsMain")
        qtbot.waitUntil(
            lambda: (
                not window.is_busy()
                and window.session.nlp is not None
                and window.session.file_path is not None
            ),
            timeout=20000,
        )
        seen["window"] = window
        window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    code = app_module.main(
        ["--pipeline", str(pipeline_dir), "--file", str(sample_csv), "--text-column", "text"]
    )
    assert code == 0
    window = seen["window"]
    assert window.session.text_column == "text"
    assert window.model.rowCount() == 300
    assert QApplication.instance().applicationName() == "bertcls-gui"


def _window(settings):
    from spacy_bertcls_gui.main_window import MainWindow

    window = MainWindow(settings=settings)
    window.setObjectName("bertclsMain")
    return window


def test_parse_args():
    from spacy_bertcls_gui.app import parse_args

    args = parse_args(["--file", "x.csv", "--text-column", "body"])
    assert args.file == "x.csv" and args.text_column == "body" and args.pipeline is None


def test_menus_and_shortcuts(window):
    menus = {action.text().replace("&", ""): action.menu() for action in window.menuBar().actions()}
    assert {"File", "Help"} <= set(menus)
    file_actions = {a.text().replace("&", ""): a for a in menus["File"].actions() if a.text()}
    assert file_actions["Open File…"].shortcut() == QKeySequence("Ctrl+O")
    assert file_actions["Export Labeled Table…"].shortcut() == QKeySequence("Ctrl+S")
    assert file_actions["Export Corrections…"].shortcut() == QKeySequence("Ctrl+E")
    assert file_actions["Quit"].shortcut() == QKeySequence("Ctrl+Q")
    assert "Open Pipeline…" in file_actions and "Recent Files" in file_actions
    help_actions = [a.text().replace("&", "") for a in menus["Help"].actions() if a.text()]
    assert help_actions == ["Keyboard Shortcuts", "Guide", "About"]
    edit_actions = {a.text().replace("&", ""): a for a in menus["Edit"].actions() if a.text()}
    assert edit_actions["Undo Correction"].shortcut() == QKeySequence("Ctrl+Z")
    assert QKeySequence("Ctrl+Shift+Z") in edit_actions["Redo Correction"].shortcuts()
    assert "Label Shown Rows As" in edit_actions
    assert "Open Session…" in file_actions and "Save Session…" in file_actions


def test_shortcut_list_names_every_shortcut_and_the_table_keys(window):
    from spacy_bertcls_gui.menus import shortcut_rows, shortcuts_html

    rows = dict((text, keys) for keys, text in shortcut_rows(window))
    assert rows["Label"] == "Ctrl+L"
    assert rows["Undo Correction"] == "Ctrl+Z"
    assert "Ctrl+Shift+Z" in rows["Redo Correction"]
    assert rows["Keyboard Shortcuts"] == "F1"
    keys = [keys for keys, _ in shortcut_rows(window)]
    assert "1 … 9" in keys and "A" in keys and "F2" in keys
    assert "Accept the prediction" in shortcuts_html(window)


def test_about_dialog(window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(title))
    window.about_action.trigger()
    assert shown == ["About bertcls"]


def test_layout_is_restored(qtbot, make_window, settings):
    first = make_window()
    first.show()
    qtbot.waitExposed(first)
    first.resize(760, 540)  # within the offscreen platform's 800x600 screen
    qtbot.wait(50)
    first.table_splitter.setSizes([900, 300])
    sizes = first.table_splitter.sizes()
    first.views.setCurrentIndex(2)
    first.close()
    second = make_window(settings)
    second.show()
    qtbot.waitExposed(second)
    assert second.size() == first.size()
    assert second.views.currentIndex() == 2
    second.views.setCurrentIndex(0)
    restored = second.table_splitter.sizes()
    assert restored[0] / sum(restored) == pytest.approx(sizes[0] / sum(sizes), abs=0.03)


def test_status_bar_counts(qtbot, window, pipeline_dir, sample_csv):
    load(qtbot, window, pipeline_dir, sample_csv)
    assert window.rows_status.text() == "300 rows · 300 shown · 0 labeled · 0 corrected"
    window.start_labeling()
    QTimer.singleShot(0, lambda: None)
    qtbot.waitUntil(lambda: not window.is_labeling(), timeout=20000)
    wait_idle(qtbot, window)
    assert window.rows_status.text() == "300 rows · 300 shown · 300 labeled · 0 corrected"
