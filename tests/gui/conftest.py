"""Fixtures for the desktop app's tests: a tiny trained pipeline, sample tables, a window whose
dialogs are answered by the test, and settings in a temporary INI file."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("PySide6", reason="the desktop app needs the 'gui' extra (PySide6)")
pytest.importorskip("pytestqt", reason="the desktop app's tests need pytest-qt")
from PySide6.QtCore import QSettings  # noqa: E402

from .gui_support import label, load, make_pipeline, make_rows  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _no_user_settings(tmp_path_factory):
    """Any QSettings made without a file (as the app's own default) lands in a temp folder."""
    folder = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, folder)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    yield


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory) -> Path:
    return make_pipeline(tmp_path_factory.mktemp("pipeline") / "tiny")


@pytest.fixture(scope="session")
def second_pipeline_dir(tmp_path_factory) -> Path:
    return make_pipeline(tmp_path_factory.mktemp("pipeline2") / "tiny2")


@pytest.fixture
def sample_csv(tmp_path) -> Path:
    path = tmp_path / "tweets.csv"
    make_rows(300).to_csv(path, index=False)
    return path


@pytest.fixture
def settings(tmp_path) -> QSettings:
    """Settings in a temporary INI file, never the user's."""
    return QSettings(str(tmp_path / "settings" / "bertcls-gui.ini"), QSettings.Format.IniFormat)


@dataclass
class Dialogs:
    """What the window would have shown; ``answers`` are popped by ``_ask`` (default yes)."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    infos: list[tuple[str, str]] = field(default_factory=list)
    questions: list[tuple[str, str]] = field(default_factory=list)
    answers: list[bool] = field(default_factory=list)
    sheets: list[list[str]] = field(default_factory=list)
    sheet_answer: str | None = None
    save_path: str | None = None

    def ask(self, title: str, question: str) -> bool:
        self.questions.append((title, question))
        return self.answers.pop(0) if self.answers else True


def attach_dialogs(window) -> Dialogs:
    dialogs = Dialogs()
    window._show_error = lambda title, message: dialogs.errors.append((title, message))
    window._show_info = lambda title, message: dialogs.infos.append((title, message))
    window._ask = dialogs.ask

    def choose(path, sheets):
        dialogs.sheets.append(list(sheets))
        return dialogs.sheet_answer

    window._choose_sheet = choose
    window._get_save_path = lambda *args: dialogs.save_path
    return dialogs


@pytest.fixture
def make_window(qtbot, settings):
    """Build main windows with recorded dialogs; workers are stopped at the end."""
    from spacy_bertcls_gui.main_window import MainWindow

    windows = []

    def make(settings_override: QSettings | None = None):
        window = MainWindow(settings=settings_override or settings)
        qtbot.addWidget(window)
        window.dialogs = attach_dialogs(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window._wait_for_worker()
        window.pool.waitForDone()


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def labeled_window(qtbot, window, pipeline_dir, sample_csv):
    """A window with the tiny pipeline and the sample CSV loaded, every row labeled."""
    load(qtbot, window, pipeline_dir, sample_csv)
    label(qtbot, window)
    return window
