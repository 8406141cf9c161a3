"""The main window: panels over one :class:`spacy_bertcls.session.Session`.

The session holds the pipeline, the table, predictions, corrections, filters and the
evaluation; the panels (``TablePanel``, ``DetailPanel``, ``EvaluationPanel``,
``PipelinePanel``) show it and observe its events. This window adds what needs Qt: menus and
shortcuts, dialogs, running the slow halves of the session's steps off the UI thread
(``TaskRunner``, ``LabelWorker``), the status bar, and the file watcher. Dialogs go through a
few small methods (``_show_error``, ``_ask``, ``_choose_sheet``, ``_get_*_path``) so tests can
answer them without a real modal dialog.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QThreadPool
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QWidget,
)

from spacy_bertcls.devices import CPU
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import predict_proba
from spacy_bertcls.pipelines import PipelineInfo
from spacy_bertcls.session import Session, read_file
from spacy_bertcls.tables import EXCEL_SUFFIXES, SUPPORTED_SUFFIXES, list_sheets

from .detail_panel import DetailPanel
from .evaluation_panel import EvaluationPanel
from .exports import ExportsMixin
from .file_watch import FileWatchMixin
from .labeling_run import LabelingMixin, load_on_device
from .menus import build_actions, build_menus
from .pipeline_panel import PipelinePanel
from .retrain_dialog import RetrainDialog, RetrainMixin
from .settings import RecentList, open_settings
from .suspects_view import SuspectsMixin
from .table_panel import TablePanel
from .threshold_dialog import ThresholdDialog
from .try_text_panel import TryTextPanel
from .window_layout import LayoutMixin
from .workers import JobWorker, LabelWorker, TaskRunner

APP_TITLE = "bertcls"
#: Keyboard focus is visible on every panel Tab moves to (the style's own cue is faint).
FOCUS_STYLE = (
    "QTableView:focus, QTableWidget:focus, QLineEdit:focus, QPlainTextEdit:focus, "
    "QComboBox:focus, QDoubleSpinBox:focus { border: 2px solid palette(highlight); }"
)


class MainWindow(
    LabelingMixin, SuspectsMixin, RetrainMixin, ExportsMixin, FileWatchMixin, LayoutMixin,
    QMainWindow,
):  # fmt: skip
    """The analyst's window. ``settings`` defaults to the user's; tests pass a temporary one."""

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else open_settings()
        self.recent_files = RecentList(self.settings, "recent/files")
        self.recent_pipelines = RecentList(self.settings, "recent/pipelines")
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.tasks = TaskRunner(self.pool)
        self.session = Session()
        self.worker: LabelWorker | None = None
        self._labeling = False
        self._run_message = ""
        self.last_run: dict[str, Any] = {}
        self.last_error: tuple[str, str] | None = None
        #: The device the loaded pipeline runs on (Label > Device chooses it for the next load).
        self.pipeline_device = CPU
        self.threshold_dialog: ThresholdDialog | None = None  # Label > Decision Threshold
        #: An audit or a retrain running (``JobWorker``), until its end has been handled.
        self.job: JobWorker | None = None
        self.retrain_dialog: RetrainDialog | None = None  # Label > Retrain
        self.last_retrain: dict[str, Any] = {}

        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.setStyleSheet(FOCUS_STYLE)
        self._build_ui()
        build_actions(self)
        build_menus(self)
        self._observe_session()
        self._setup_file_watch()
        self._restore_layout()
        self._refresh_recent()
        self._update_actions()
        self._update_status()

    # ================================================================= building the window

    def _build_ui(self) -> None:
        session = self.session
        self.table_panel = TablePanel(session)
        self.table_panel.text_column_chosen.connect(self._on_text_column_chosen)
        self.table_panel.gold_column_chosen.connect(self._on_gold_column_chosen)
        self.table_panel.row_shown.connect(self._show_row_details)
        self.table = self.table_panel.table
        self.model = self.table_panel.model
        self.filters = self.table_panel.filters
        self.filters.suspects_button.clicked.connect(self.show_suspect_labels)

        self.detail_panel = DetailPanel()
        self.detail_panel.set_session(session)
        self.try_panel = TryTextPanel(self.pool)
        self.try_panel.failed.connect(
            lambda error, tb: self._report_failure("Could not classify the text", error, tb)
        )
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.detail_panel, "Details")
        self.side_tabs.addTab(self.try_panel, "Try a text")
        self.table_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.table_splitter.setObjectName("tableSplitter")
        self.table_splitter.addWidget(self.table_panel)
        self.table_splitter.addWidget(self.side_tabs)
        self.table_splitter.setStretchFactor(0, 3)
        self.table_splitter.setStretchFactor(1, 1)

        self.evaluation_panel = EvaluationPanel()
        self.evaluation_panel.evaluate_requested.connect(self.evaluate)
        self.evaluation_panel.export_requested.connect(lambda: self.export_report())
        self.evaluation_panel.cell_chosen.connect(self.show_confusion_cell)
        self.evaluation_panel.error_row_chosen.connect(self.show_row)
        self.pipeline_panel = PipelinePanel()
        self.pipeline_panel.open_requested.connect(self.open_pipeline_dialog)
        self.pipeline_panel.recent_chosen.connect(self.load_pipeline)

        self.views = QTabWidget()
        self.views.setObjectName("views")
        self.views.addTab(self.table_splitter, "Table")
        self.views.addTab(self.evaluation_panel, "Evaluation")
        self.views.addTab(self.pipeline_panel, "Pipeline")
        self.setCentralWidget(self.views)

        self.rows_status = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.speed_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop labeling (the rows labeled so far are kept) or the audit"
        )
        self.cancel_button.clicked.connect(self.cancel_running)
        self.cancel_button.hide()
        status = self.statusBar()
        status.addPermanentWidget(self.rows_status)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.speed_label)
        status.addPermanentWidget(self.cancel_button)

    def _observe_session(self) -> None:
        events = self.session.events
        events.pipeline_changed.connect(self._on_pipeline_changed)
        events.file_changed.connect(self._on_file_changed)
        events.evaluation_changed.connect(self._on_evaluation_changed)
        events.columns_changed.connect(self._update_actions)
        for event in (events.corrections_changed, events.predictions_changed):
            event.connect(lambda rows: self._update_status())
        events.order_changed.connect(self._update_status)
        events.corrections_changed.connect(lambda rows: self._update_actions())

    # ================================================================= dialogs (tests replace these)

    def _show_error(self, title: str, message: str) -> None:
        QMessageBox.critical(self, title, message)

    def _show_info(self, title: str, message: str) -> None:
        QMessageBox.information(self, title, message)

    def _ask(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _confirm_clearing(self, title: str, action: str) -> bool:
        """Ask before ``action`` clears the predictions and corrections; True when there are
        none to lose or the user agrees."""
        question = self.session.clearing_question(action)
        return question is None or self._ask(title, question)

    def _choose_sheet(self, path: Path, sheets: list[str]) -> str | None:
        sheet, ok = QInputDialog.getItem(
            self, "Choose a sheet", f"{path.name} has several sheets. Which one?", sheets, 0, False
        )
        return sheet if ok else None

    def _get_directory(self, caption: str) -> str | None:
        start = self.settings.value("paths/lastPipelineDir", str(Path.cwd()))
        path = QFileDialog.getExistingDirectory(self, caption, str(start))
        return path or None

    def _get_open_path(self, caption: str, filters: str) -> str | None:
        start = self.settings.value("paths/lastFileDir", str(Path.cwd()))
        path, _ = QFileDialog.getOpenFileName(self, caption, str(start), filters)
        return path or None

    def _get_save_path(self, caption: str, suggestion: str, filters: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, caption, suggestion, filters)
        return path or None

    def _report_failure(self, title: str, error: BaseException, tb: str = "") -> None:
        """Show an error in a dialog: a user problem by its message, a bug with its type."""
        if isinstance(error, BertclsError):
            message = str(error)
        elif isinstance(error, OSError):
            where = f" ({error.filename})" if error.filename else ""
            message = f"{error.strerror or error}{where}"
        else:
            message = f"{type(error).__name__}: {error}"
            if tb:
                print(tb, file=sys.stderr)
        self.last_error = (title, message)
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        self._show_error(title, message)

    # ================================================================= background tasks

    def _run_task(
        self,
        description: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        failure_title: str,
        on_failed: Callable[[BaseException, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Run ``fn`` on the pool; its result goes to ``on_done``, an error to a dialog."""

        def done(result: Any) -> None:
            self._update_actions()
            on_done(result)
            self._after_busy()

        def failed(error: BaseException, tb: str) -> None:
            self._update_actions()
            if on_failed is not None:
                on_failed(error, tb)
            self._report_failure(failure_title, error, tb)
            self._after_busy()

        self.tasks.start(fn, *args, on_done=done, on_failed=failed, **kwargs)
        self.statusBar().showMessage(f"{description}…")
        self._update_actions()

    def is_busy(self) -> bool:
        """True while anything runs in the background (labeling, loading, writing)."""
        return self.tasks.busy() or self.is_labeling() or self.is_running_job()

    def _refuse_while_labeling(self, what: str) -> bool:
        if self.is_labeling():
            self._show_error("Labeling is running", f"Cancel or wait for labeling before {what}.")
        elif self.is_running_job():
            self._show_error(
                "An audit or retrain is running", f"Cancel or wait for it before {what}."
            )
        return self.is_labeling() or self.is_running_job()

    def cancel_running(self) -> None:
        """The status bar's Cancel: stops labeling, or an audit."""
        if self.is_labeling():
            self.cancel_labeling()
        else:
            self.cancel_job()

    # ================================================================= pipeline

    def open_pipeline_dialog(self) -> None:
        path = self._get_directory("Open a trained pipeline folder")
        if path:
            self.load_pipeline(path)

    def load_pipeline(self, path: str | Path) -> None:
        """Load a pipeline folder in the background and show its info."""
        path = Path(path)
        if self._refuse_while_labeling("loading a pipeline"):
            return
        if not self._confirm_clearing("Load another pipeline?", "Loading another pipeline"):
            return
        self.pipeline_panel.set_loading(str(path))
        device = self.device

        def job() -> tuple[Any, PipelineInfo]:
            return load_on_device(path, device)

        def done(result: tuple[Any, PipelineInfo]) -> None:
            self.pipeline_device = device
            self.session.set_pipeline(path, *result)

        def failed(error: BaseException, tb: str) -> None:
            self.pipeline_panel.set_info(self.session.pipeline_info)
            if not path.exists():
                self.recent_pipelines.remove(path)
                self._refresh_recent()

        self._run_task(
            f"Loading pipeline {path}",
            job,
            on_done=done,
            on_failed=failed,
            failure_title="Could not load the pipeline",
        )

    def _on_pipeline_changed(self) -> None:
        session = self.session
        path, labels = session.pipeline_path, session.labels
        self.try_panel.set_predictor(self._make_predictor(), labels)
        self.pipeline_panel.set_info(session.pipeline_info)
        self.recent_pipelines.add(path)
        self.settings.setValue("paths/lastPipelineDir", str(path.parent))
        self._refresh_recent()
        self._update_actions()
        self._update_status()
        self._update_title()
        self.statusBar().showMessage(f"Loaded pipeline {path} ({len(labels)} labels)", 8000)

    def _make_predictor(self) -> Callable[[str], np.ndarray]:
        nlp, lock = self.session.nlp, self.session.nlp_lock

        def predict(text: str) -> np.ndarray:
            with lock:
                return np.asarray(predict_proba(nlp, [text]), dtype=float)[0]

        return predict

    # ================================================================= files

    def open_file_dialog(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in SUPPORTED_SUFFIXES)
        path = self._get_open_path("Open a table", f"Tables ({patterns});;All files (*)")
        if path:
            self.open_file(path)

    def open_file(
        self,
        path: str | Path,
        *,
        sheet: str | None = None,
        text_column: str | None = None,
        reload: bool = False,
    ) -> None:
        """Read a table in the background and show it. ``reload`` keeps the labels of rows
        whose text is unchanged."""
        path = Path(path)
        if self._refuse_while_labeling("opening a file"):
            return
        if not path.is_file():
            self.recent_files.remove(path)
            self._refresh_recent()
            self._show_error("Could not open the file", f"{path} does not exist or is not a file.")
            return
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            self._show_error(
                "Could not open the file",
                f"{path.name} has the unsupported suffix {path.suffix!r}. "
                f"Supported: {', '.join(SUPPORTED_SUFFIXES)}.",
            )
            return
        if not reload and not self._confirm_clearing("Open another file?", "Opening another file"):
            return
        if sheet is None and path.suffix.lower() in EXCEL_SUFFIXES:
            try:
                sheets = list_sheets(path)
            except Exception as error:
                self._report_failure("Could not open the file", error)
                return
            if len(sheets) > 1:
                sheet = self._choose_sheet(path, sheets)
                if sheet is None:
                    return
        stat = self._stat(path)

        def read_done(frame: Any) -> None:
            self._watch(path, stat)
            restored = self.session.set_table(
                path, frame, sheet=sheet, text_column=text_column, keep_results=reload
            )
            self._file_opened(frame, restored if reload else None, text_column)

        self._run_task(
            f"Reading {path.name}",
            read_file,
            path,
            sheet=sheet,
            on_done=read_done,
            failure_title="Could not read the file",
        )

    def _on_file_changed(self) -> None:
        path = self.session.file_path
        self.recent_files.add(path)
        self.settings.setValue("paths/lastFileDir", str(path.parent))
        self._refresh_recent()
        self._update_title()
        self._update_actions()
        self._update_status()

    def _file_opened(self, frame: Any, restored: int | None, text_column: str | None) -> None:
        path = self.session.file_path
        if restored is None:
            message = f"Opened {path.name}: {len(frame):,} rows"
        else:
            message = (
                f"Reloaded {path.name}: {len(frame):,} rows, labels kept for {restored:,} rows"
            )
        self.statusBar().showMessage(message, 10000)
        notes = frame.attrs.get("reading_notes") or []
        if notes:
            # Warnings from reading (e.g. formula cells without a saved value), as the command
            # line prints them in its summary.
            self._show_info(f"Read {path.name} with warnings", "\n\n".join(notes))
        if text_column is not None and text_column not in frame.columns:
            self._report_failure(
                "Missing text column",
                BertclsError(
                    f"{path} has no column {text_column!r}; columns: {list(frame.columns)}. "
                    "Choose text_column in the file bar."
                ),
            )

    def _on_text_column_chosen(self, name: str) -> None:
        session = self.session
        if name == session.text_column:
            return
        action = (
            f"The predictions were made on {session.text_column!r}: switching text_column "
            f"to {name!r}"
        )
        if self._confirm_clearing("Change text_column?", action):
            session.set_text_column(name)
            self.table_panel.size_columns()
        else:
            session.events.columns_changed.emit()  # the combo box shows the kept column again
        self._update_status()

    def set_text_column(self, name: str) -> None:
        """Choose the text column as the combo box does (for scripts and tests)."""
        if name not in self.session.frame.columns:
            raise BertclsError(f"No column {name!r}; columns: {list(self.session.frame.columns)}")
        self._on_text_column_chosen(name)

    def _on_gold_column_chosen(self, name: str | None) -> None:
        self.session.set_gold_column(name)
        if name and self.session.results.labeled_count() and not self.is_busy():
            self.evaluate()

    def set_gold_column(self, name: str | None) -> None:
        """Choose the gold column as the combo box does (for scripts and tests)."""
        self.session.set_gold_column(name)

    # ================================================================= the table

    def apply_filters(self) -> None:
        self.table_panel.apply_filters()

    def set_row_filter(self, rows: np.ndarray | None, description: str = "") -> None:
        self.table_panel.set_row_filter(rows, description)

    def clear_filters(self) -> None:
        self.table_panel.clear_filters()

    def show_least_confident_first(self) -> None:
        self.views.setCurrentIndex(0)
        if not self.table_panel.show_least_confident_first():
            self.statusBar().showMessage("Load a pipeline and label the file first", 5000)

    def show_row(self, source_row: int) -> None:
        """Select and show a file row (clearing filters if they hide it)."""
        self.views.setCurrentIndex(0)
        self.table_panel.show_row(source_row)

    def _show_row_details(self, row: int) -> None:
        self.detail_panel.show_row(row)
        if row >= 0:
            self.side_tabs.setCurrentWidget(self.detail_panel)

    def correct_rows(self, rows: Any, label: str | None) -> None:
        """Set (or clear) the corrected label of several file rows: one undo step."""
        self.session.correct(np.asarray(rows, dtype=np.int64), label)

    def label_shown_rows(self, label: str | None) -> None:
        """Correct every row the filters show to ``label``, after a confirmation."""
        rows = self.session.visible_rows
        if not rows.size:
            return
        what = f"to {label!r}" if label else "(clear their corrections)"
        question = (
            f"Set corrected_label of all {len(rows):,} shown rows {what}? "
            "Edit > Undo takes it back."
        )
        if self._ask("Label the shown rows?", question):
            changed = self.session.correct(rows.copy(), label)
            self.statusBar().showMessage(f"Corrected {changed:,} rows", 8000)

    def undo(self) -> None:
        changed = self.session.undo()
        self.statusBar().showMessage(
            f"Undid a correction of {changed:,} rows" if changed else "Nothing to undo", 5000
        )

    def redo(self) -> None:
        changed = self.session.redo()
        self.statusBar().showMessage(
            f"Redid a correction of {changed:,} rows" if changed else "Nothing to redo", 5000
        )

    # ================================================================= drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        path = paths[0]
        # A folder is a pipeline (it has a config.cfg), a file is a table.
        if path.is_dir():
            self.load_pipeline(path)
        else:
            self.open_file(path)

    # ================================================================= status, title, actions

    def _update_status(self) -> None:
        session = self.session
        total = len(session.frame)
        if not total:
            self.rows_status.setText("no file")
            return
        parts = [f"{total:,} rows", f"{len(session.visible_rows):,} shown"]
        if session.labels:
            labeled, corrected = session.at_stake()
            parts += [f"{labeled:,} labeled", f"{corrected:,} corrected"]
        self.rows_status.setText(" · ".join(parts))

    def _update_title(self) -> None:
        session = self.session
        parts = [APP_TITLE]
        if session.file_path:
            parts.insert(0, session.file_path.name)
        if session.pipeline_path:
            parts.insert(1 if session.file_path else 0, session.pipeline_path.name)
        self.setWindowTitle(" — ".join(parts))

    def _update_actions(self) -> None:
        session = self.session
        labeling = self.is_labeling()
        has_file = session.file_path is not None
        has_pipeline = session.nlp is not None
        has_labels = has_file and has_pipeline
        self.open_pipeline_action.setEnabled(not labeling)
        self.open_file_action.setEnabled(not labeling)
        self.recent_files_menu.setEnabled(not labeling)
        self.recent_pipelines_menu.setEnabled(not labeling)
        self.label_action.setEnabled(has_labels and not labeling)
        self.cancel_action.setEnabled(labeling)
        self.table_panel.text_column_combo.setEnabled(has_file and not labeling)
        self.export_table_action.setEnabled(has_labels and session.results.labeled_count() > 0)
        self.export_corrections_action.setEnabled(session.results.corrected_count() > 0)
        self.save_session_action.setEnabled(has_file)
        self.undo_action.setEnabled(bool(session.results.undo_steps))
        self.redo_action.setEnabled(bool(session.results.redo_steps))
        self.label_shown_menu.setEnabled(has_labels)
        self.evaluate_action.setEnabled(
            has_pipeline and session.gold_column is not None and not labeling
        )
        self.evaluation_panel.evaluate_button.setEnabled(self.evaluate_action.isEnabled())
        self.export_report_action.setEnabled(session.evaluation is not None)
        labeled = has_labels and session.results.labeled_count() > 0
        self.threshold_action.setEnabled(labeled and not labeling)
        self.export_review_action.setEnabled(labeled)
        self.save_pipeline_action.setEnabled(has_pipeline)
        self.device_menu.setEnabled(not labeling)
        idle = not labeling and self.job is None
        can_audit = has_labels and session.gold_column is not None and idle
        self.suspect_labels_action.setEnabled(can_audit)
        self.filters.suspects_button.setEnabled(can_audit)
        self.retrain_action.setEnabled(
            has_pipeline and session.results.corrected_count() > 0 and idle
        )
        self.switch_back_action.setEnabled(bool(session.previous_pipelines) and idle)
        if session.previous_pipelines:
            self.switch_back_action.setText(
                f"Switch &Back to {session.previous_pipelines[-1].name}"
            )
        if self.threshold_dialog is not None:
            self.threshold_dialog.set_available(labeled and not self.is_busy())

    def _refresh_recent(self) -> None:
        for menu, recent, slot in (
            (self.recent_files_menu, self.recent_files, self.open_file),
            (self.recent_pipelines_menu, self.recent_pipelines, self.load_pipeline),
        ):
            menu.clear()
            items = recent.items()
            for i, path in enumerate(items):
                act = menu.addAction(f"&{i + 1} {path}")
                act.triggered.connect(lambda _=False, p=path, s=slot: s(p))
            if not items:
                menu.addAction("(none)").setEnabled(False)
        self.pipeline_panel.set_recent(self.recent_pipelines.items())

    # ================================================================= closing

    def closeEvent(self, event: QCloseEvent) -> None:
        reasons = []
        if self.worker is not None and self.worker.isRunning():
            reasons.append("Labeling is still running; it will be stopped.")
        if self.session.has_unexported_corrections():
            count = self.session.results.corrected_count()
            reasons.append(f"{count:,} corrections have not been exported or saved.")
        if reasons and not self._ask("Quit?", " ".join(reasons) + "\n\nQuit anyway?"):
            event.ignore()
            return
        self.save_layout()
        self._wait_for_worker()  # one chunk: well under a second
        if self.job is not None:  # an audit stops within a chunk, a retrain within a step
            self.job.cancel()
            self.job.wait()
        self.try_panel.timer.stop()
        self._stop_file_watch()
        if self.tasks.busy():
            # A file being read or written cannot be interrupted; finish it out of sight.
            self.hide()
        self.pool.waitForDone()
        event.accept()
