"""The main window: file -> rows -> pipeline -> predictions -> table, evaluation and exports.

The window owns the loaded pipeline, the table model and the workers; every long step (loading
a pipeline or a file, labeling, evaluating, writing) runs off the UI thread and comes back by
signal. Dialogs go through a few small methods (``_show_error``, ``_ask``, ``_choose_sheet``,
``_get_*_path``) so tests can answer them without a real modal dialog.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QFileSystemWatcher, QSettings, Qt, QThreadPool, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from spacy.language import Language

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import write_report
from spacy_bertcls.labeling import (
    CONFIDENCE,
    PREDICTED_LABEL,
    LabeledChunk,
    predict_proba,
    prob_column,
)
from spacy_bertcls.outputs import check_not_same_file
from spacy_bertcls.pipelines import PipelineInfo, load_pipeline, pipeline_info
from spacy_bertcls.tables import (
    EXCEL_SUFFIXES,
    SUPPORTED_SUFFIXES,
    WRITABLE_SUFFIXES,
    list_sheets,
    read_table,
    require_columns,
    write_table,
)
from spacy_bertcls.tables.cells import label_text, text_values

from .columns import guess_gold_column, guess_text_column
from .corrections import CORRECTION_SUFFIXES, changed_by_formula_guard, write_corrections
from .delegates import TableDelegate
from .detail_panel import DetailPanel
from .evaluation_panel import Evaluation, EvaluationPanel, run_evaluation
from .pipeline_panel import PipelinePanel
from .settings import RecentList, open_settings
from .table_model import CORRECTED_LABEL, LabeledTableModel, RowFilter
from .try_text_panel import TryTextPanel
from .workers import LabelWorker, TaskRunner

APP_TITLE = "bertcls"
TABLE_EXPORT_FILTERS = (
    "CSV (*.csv);;Excel (*.xlsx);;Parquet (*.parquet);;TSV (*.tsv);;JSON lines (*.jsonl)"
)


def _file_stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _format_seconds(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class MainWindow(QMainWindow):
    """The analyst's window. ``settings`` defaults to the user's; tests pass a temporary one."""

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else open_settings()
        self.recent_files = RecentList(self.settings, "recent/files")
        self.recent_pipelines = RecentList(self.settings, "recent/pipelines")
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.nlp: Language | None = None
        self.nlp_lock = threading.Lock()
        self.pipeline_path: Path | None = None
        self.pipeline_info: PipelineInfo | None = None
        self.file_path: Path | None = None
        self.file_sheet: str | None = None
        self._file_stat: tuple[int, int] | None = None
        self._pending_file_check = False
        self.worker: LabelWorker | None = None
        self._labeling = False
        self._run_message = ""
        self.last_run: dict[str, Any] = {}
        self.evaluation: Evaluation | None = None
        self.tasks = TaskRunner(self.pool)
        self._corrections_version = 0
        self._corrections_saved_version = 0
        self.last_error: tuple[str, str] | None = None
        self._splitters_restored = False

        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.model = LabeledTableModel(self)
        self.model.corrections_changed.connect(self._on_corrections_changed)
        self._build_ui()
        self._build_actions()
        self._build_menus()
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._on_file_event)
        self._watch_timer = QTimer(self)
        self._watch_timer.setSingleShot(True)
        self._watch_timer.setInterval(300)  # editors write in bursts; look once they are done
        self._watch_timer.timeout.connect(self.check_file_changed)
        self._restore_layout()
        self._refresh_recent()
        self._update_actions()
        self._update_status()

    # ================================================================= building the window

    def _build_ui(self) -> None:
        # --- file bar: which file, which column is text, which is gold
        self.file_label = QLabel("No file open. Open a file (Ctrl+O) or drop one here.")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text_column_combo = QComboBox()
        self.text_column_combo.setObjectName("text_column")
        self.text_column_combo.setToolTip("text_column: the column whose texts are labeled")
        self.text_column_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.text_column_combo.activated.connect(self._on_text_column_chosen)
        self.gold_column_combo = QComboBox()
        self.gold_column_combo.setObjectName("gold_column")
        self.gold_column_combo.setToolTip("The column with the true labels, for the Evaluation tab")
        self.gold_column_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.gold_column_combo.activated.connect(self._on_gold_column_chosen)
        file_bar = QHBoxLayout()
        file_bar.addWidget(self.file_label, 1)
        file_bar.addWidget(QLabel("text_column:"))
        file_bar.addWidget(self.text_column_combo)
        file_bar.addSpacing(12)
        file_bar.addWidget(QLabel("gold column:"))
        file_bar.addWidget(self.gold_column_combo)

        # --- filter bar
        self.label_filter = QComboBox()
        self.label_filter.setToolTip("Show only rows with this predicted_label")
        self.label_filter.addItem("(all)", None)
        self.label_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.label_filter.activated.connect(lambda _: self.apply_filters())
        self.confidence_min = QDoubleSpinBox()
        self.confidence_max = QDoubleSpinBox()
        for spin, value in ((self.confidence_min, 0.0), (self.confidence_max, 1.0)):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(value)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda _: self.apply_filters())
        self.confidence_min.setToolTip("Lowest confidence shown")
        self.confidence_max.setToolTip("Highest confidence shown")
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search text_column…")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.apply_filters)
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self.corrected_only = QCheckBox("corrected only")
        self.corrected_only.toggled.connect(lambda _: self.apply_filters())
        self.least_confident_button = QPushButton("Least confident first")
        self.least_confident_button.setToolTip("Sort by confidence, lowest first")
        self.least_confident_button.clicked.connect(self.show_least_confident_first)
        self.clear_filters_button = QPushButton("Clear filters")
        self.clear_filters_button.clicked.connect(self.clear_filters)
        filter_bar = QHBoxLayout()
        filter_bar.addWidget(QLabel("predicted_label:"))
        filter_bar.addWidget(self.label_filter)
        filter_bar.addSpacing(8)
        filter_bar.addWidget(QLabel("confidence:"))
        filter_bar.addWidget(self.confidence_min)
        filter_bar.addWidget(QLabel("to"))
        filter_bar.addWidget(self.confidence_max)
        filter_bar.addSpacing(8)
        filter_bar.addWidget(self.search_edit, 1)
        filter_bar.addWidget(self.corrected_only)
        filter_bar.addWidget(self.least_confident_button)
        filter_bar.addWidget(self.clear_filters_button)
        self.row_filter_label = QLabel("")
        self.row_filter_label.setStyleSheet("color: #0b5394; font-weight: bold")
        self.row_filter_label.setTextFormat(Qt.TextFormat.RichText)
        self.row_filter_label.linkActivated.connect(lambda _: self.set_row_filter(None))
        self.row_filter_label.hide()

        # --- the table
        self.table = QTableView()
        self.table.setObjectName("labeledTable")
        self.table.setModel(self.model)
        self.delegate = TableDelegate(parent=self.table)
        self.table.setItemDelegate(self.delegate)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.SelectedClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setHighlightSections(False)
        self.table.setSortingEnabled(True)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows keep 100k smooth
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_current_row())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._table_menu)

        table_area = QWidget()
        table_layout = QVBoxLayout(table_area)
        table_layout.setContentsMargins(4, 4, 4, 4)
        table_layout.addLayout(file_bar)
        table_layout.addLayout(filter_bar)
        table_layout.addWidget(self.row_filter_label)
        table_layout.addWidget(self.table, 1)

        # --- side panels
        self.detail_panel = DetailPanel()
        self.detail_panel.correction_chosen.connect(self._on_detail_correction)
        self.try_panel = TryTextPanel(self.pool)
        self.try_panel.failed.connect(
            lambda error, tb: self._report_failure("Could not classify the text", error, tb)
        )
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.detail_panel, "Details")
        self.side_tabs.addTab(self.try_panel, "Try a text")
        self.table_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.table_splitter.setObjectName("tableSplitter")
        self.table_splitter.addWidget(table_area)
        self.table_splitter.addWidget(self.side_tabs)
        self.table_splitter.setStretchFactor(0, 3)
        self.table_splitter.setStretchFactor(1, 1)
        self.table_splitter.setSizes([1000, 380])

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

        # --- status bar
        self.rows_status = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v / %m rows")
        self.progress.hide()
        self.speed_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop labeling; the rows labeled so far are kept")
        self.cancel_button.clicked.connect(self.cancel_labeling)
        self.cancel_button.hide()
        status = self.statusBar()
        status.addPermanentWidget(self.rows_status)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.speed_label)
        status.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        def action(
            text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = ""
        ) -> QAction:
            act = QAction(text, self)
            act.triggered.connect(lambda _=False: slot())
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            if tip:
                act.setStatusTip(tip)
                act.setToolTip(tip)
            return act

        self.open_pipeline_action = action(
            "Open &Pipeline…",
            self.open_pipeline_dialog,
            "Ctrl+Shift+O",
            "Load a trained pipeline folder (e.g. training/model-best)",
        )
        self.open_file_action = action(
            "&Open File…",
            self.open_file_dialog,
            QKeySequence.StandardKey.Open,
            "Open a CSV, TSV, Excel, Parquet, JSON lines or text file",
        )
        self.label_action = action(
            "&Label", self.start_labeling, "Ctrl+L", "Label the rows not labeled yet"
        )
        self.cancel_action = action(
            "&Cancel Labeling", self.cancel_labeling, None, "Stop; the rows labeled so far are kept"
        )
        self.evaluate_action = action(
            "&Evaluate", self.evaluate, "F5", "Compare predicted_label with the gold column"
        )
        self.export_table_action = action(
            "Export Labeled &Table…",
            self.export_table,
            QKeySequence.StandardKey.Save,
            "Write the table with predicted_label, confidence and prob_<label> columns",
        )
        self.export_corrections_action = action(
            "Export &Corrections…",
            self.export_corrections,
            "Ctrl+E",
            "Write the corrected rows as training data (text,label CSV or .spacy)",
        )
        self.export_report_action = action(
            "Export Evaluation &Report…",
            self.export_report,
            "Ctrl+R",
            "Write the HTML evaluation report the CLI writes",
        )
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.about_action = action("&About", self._about)
        self.least_confident_action = action(
            "&Least Confident First", self.show_least_confident_first, "Ctrl+Shift+L"
        )
        self.clear_filters_action = action("C&lear Filters", self.clear_filters, "Ctrl+Shift+X")
        self.find_action = action(
            "&Find in Texts",
            lambda: (self.views.setCurrentIndex(0), self.search_edit.setFocus()),
            QKeySequence.StandardKey.Find,
        )

        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for act in (self.open_pipeline_action, self.open_file_action):
            toolbar.addAction(act)
        toolbar.addSeparator()
        toolbar.addAction(self.label_action)
        toolbar.addAction(self.cancel_action)
        toolbar.addSeparator()
        toolbar.addAction(self.export_table_action)
        toolbar.addAction(self.export_corrections_action)
        toolbar.addSeparator()
        toolbar.addAction(self.evaluate_action)
        self.addToolBar(toolbar)

    def _build_menus(self) -> None:
        menu_bar = self.menuBar()
        file_menu = menu_bar.addMenu("&File")
        file_menu.addAction(self.open_pipeline_action)
        self.recent_pipelines_menu = file_menu.addMenu("Recent Pi&pelines")
        file_menu.addSeparator()
        file_menu.addAction(self.open_file_action)
        self.recent_files_menu = file_menu.addMenu("&Recent Files")
        file_menu.addSeparator()
        file_menu.addAction(self.export_table_action)
        file_menu.addAction(self.export_corrections_action)
        file_menu.addAction(self.export_report_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        label_menu = menu_bar.addMenu("&Label")
        label_menu.addAction(self.label_action)
        label_menu.addAction(self.cancel_action)
        label_menu.addAction(self.evaluate_action)
        view_menu = menu_bar.addMenu("&View")
        view_menu.addAction(self.find_action)
        view_menu.addAction(self.least_confident_action)
        view_menu.addAction(self.clear_filters_action)
        view_menu.addSeparator()
        for i, name in enumerate(("Table", "Evaluation", "Pipeline")):
            act = QAction(f"&{name}", self)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.triggered.connect(lambda _=False, i=i: self.views.setCurrentIndex(i))
            view_menu.addAction(act)
        help_menu = menu_bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    # ================================================================= dialogs (tests replace these)

    def _show_error(self, title: str, message: str) -> None:
        QMessageBox.critical(self, title, message)

    def _show_info(self, title: str, message: str) -> None:
        QMessageBox.information(self, title, message)

    def _confirm_clearing(self, title: str, action: str) -> bool:
        """Ask before ``action`` clears the predictions and corrections; True when there are
        none to lose or the user agrees."""
        labeled, corrected = self.model.labeled_count(), self.model.corrected_count()
        if not (labeled or corrected):
            return True
        source = self.file_path.name if self.file_path else "this file"
        question = (
            f"{action} clears the {labeled:,} predictions and {corrected:,} corrections of "
            f"{source} (export them first to keep them). Continue?"
        )
        return self._ask(title, question)

    def _ask(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

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

    def _about(self) -> None:
        from spacy_bertcls import __version__

        QMessageBox.about(
            self,
            "About bertcls",
            f"<b>bertcls {__version__}</b><p>Label spreadsheets with a trained spaCy text "
            "classifier (BERT-family encoder), inspect and correct the labels, and evaluate "
            "them against a gold column.</p><p>Same functions as the <code>bertcls</code> "
            "command line.</p>",
        )

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
        return self.tasks.busy() or self.is_labeling()

    def is_labeling(self) -> bool:
        """True from Label until the run's end has been handled (its last chunk shown)."""
        return self._labeling

    def _after_busy(self) -> None:
        if self._pending_file_check and not self.is_busy():
            self._pending_file_check = False
            self.check_file_changed()

    # ================================================================= pipeline

    def open_pipeline_dialog(self) -> None:
        path = self._get_directory("Open a trained pipeline folder")
        if path:
            self.load_pipeline(path)

    def load_pipeline(self, path: str | Path) -> None:
        """Load a pipeline folder in the background and show its info."""
        path = Path(path)
        if self.is_labeling():
            self._show_error(
                "Labeling is running", "Cancel or wait for labeling before loading a pipeline."
            )
            return
        if not self._confirm_clearing("Load another pipeline?", "Loading another pipeline"):
            return
        self.pipeline_panel.set_loading(str(path))

        def job() -> tuple[Language, PipelineInfo]:
            nlp = load_pipeline(path)
            return nlp, pipeline_info(nlp)

        def failed(error: BaseException, tb: str) -> None:
            self.pipeline_panel.set_info(self.pipeline_info)
            if not path.exists():
                self.recent_pipelines.remove(path)
                self._refresh_recent()

        self._run_task(
            f"Loading pipeline {path}",
            job,
            on_done=lambda result: self._pipeline_loaded(path, *result),
            on_failed=failed,
            failure_title="Could not load the pipeline",
        )

    def _pipeline_loaded(self, path: Path, nlp: Language, info: PipelineInfo) -> None:
        self.nlp = nlp
        self.pipeline_path = path
        self.pipeline_info = info
        labels = info.labels
        self.model.set_labels(labels)
        self.delegate.set_labels(labels)
        self.detail_panel.set_labels(labels)
        self.detail_panel.clear()
        self.label_filter.clear()
        self.label_filter.addItem("(all)", None)
        for label in labels:
            self.label_filter.addItem(label, label)
        self.try_panel.set_predictor(self._make_predictor(nlp), labels)
        self.pipeline_panel.set_info(info)
        self.recent_pipelines.add(path)
        self.settings.setValue("paths/lastPipelineDir", str(path.parent))
        self._refresh_recent()
        self.evaluation = None
        self.evaluation_panel.clear("Label the file, then click Evaluate.")
        if self.model.gold_column is None and self.model.frame.shape[1]:
            self._set_gold_column(
                guess_gold_column(self.model.frame, labels, self.model.text_column)
            )
        self._size_columns()
        self._update_actions()
        self._update_status()
        self._update_title()
        self.statusBar().showMessage(f"Loaded pipeline {path} ({len(labels)} labels)", 8000)

    def _make_predictor(self, nlp: Language) -> Callable[[str], np.ndarray]:
        lock = self.nlp_lock

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
        if self.is_labeling():
            self._show_error(
                "Labeling is running", "Cancel or wait for labeling before opening a file."
            )
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
        snapshot = self.model.snapshot() if reload else None
        previous_text_column = self.model.text_column if reload else None
        stat = _file_stat(path)
        self._run_task(
            f"Reading {path.name}",
            read_table_for_app,
            path,
            sheet=sheet,
            on_done=lambda frame: self._file_loaded(
                path, sheet, frame, stat, text_column or previous_text_column, snapshot
            ),
            failure_title="Could not read the file",
        )

    def _file_loaded(
        self,
        path: Path,
        sheet: str | None,
        frame: pd.DataFrame,
        stat: tuple[int, int] | None,
        text_column: str | None,
        snapshot: Any,
    ) -> None:
        gold_before = self.model.gold_column
        self.model.set_frame(frame)
        if self.file_path is not None and str(self.file_path) in self.watcher.files():
            self.watcher.removePath(str(self.file_path))
        self.file_path = path
        self.file_sheet = sheet
        self._file_stat = stat
        self.watcher.addPath(str(path))
        self.recent_files.add(path)
        self.settings.setValue("paths/lastFileDir", str(path.parent))
        self._refresh_recent()

        columns = [str(column) for column in frame.columns]
        missing_text_column = text_column is not None and text_column not in columns
        chosen = text_column if text_column in columns else guess_text_column(frame)
        self.text_column_combo.clear()
        for column in columns:
            self.text_column_combo.addItem(column, column)
        if chosen is not None:
            self.text_column_combo.setCurrentIndex(columns.index(chosen))
        self.model.set_text_column(chosen)
        self.gold_column_combo.clear()
        self.gold_column_combo.addItem("(none)", None)
        for column in columns:
            self.gold_column_combo.addItem(column, column)
        if snapshot is not None and gold_before in columns:
            gold = gold_before
        else:
            gold = guess_gold_column(frame, self.model.labels, chosen)
        self._set_gold_column(gold)
        restored = self.model.restore(snapshot) if snapshot is not None else 0

        self.clear_filters()
        self.detail_panel.clear()
        self.evaluation = None
        self.evaluation_panel.clear("Label the file, then click Evaluate.")
        self._corrections_saved_version = self._corrections_version
        self._size_columns()
        self._update_title()
        self._update_actions()
        self._update_status()
        sheet_text = f" (sheet {sheet})" if sheet else ""
        self.file_label.setText(
            f"<b>{html.escape(path.name)}</b>{html.escape(sheet_text)}: "
            f"{len(frame):,} rows, {len(columns)} columns"
        )
        self.file_label.setToolTip(str(path))
        message = f"Opened {path.name}: {len(frame):,} rows"
        if snapshot is not None:
            message = (
                f"Reloaded {path.name}: {len(frame):,} rows, labels kept for {restored:,} rows"
            )
        self.statusBar().showMessage(message, 10000)
        notes = frame.attrs.get("reading_notes") or []
        if notes:
            # Warnings from reading (e.g. formula cells without a saved value), as the command
            # line prints them in its summary.
            self._show_info(f"Read {path.name} with warnings", "\n\n".join(notes))
        if missing_text_column:
            try:
                require_columns(columns, [text_column], source=str(path))
            except BertclsError as error:
                self._report_failure("Missing text column", error)

    def _on_text_column_chosen(self, index: int) -> None:
        name = self.text_column_combo.itemData(index)
        if name == self.model.text_column:
            return
        if self.model.labeled_count() or self.model.corrected_count():
            action = (
                f"The predictions were made on {self.model.text_column!r}: switching "
                f"text_column to {name!r}"
            )
            if not self._confirm_clearing("Change text_column?", action):
                self.text_column_combo.setCurrentIndex(
                    self.text_column_combo.findData(self.model.text_column)
                )
                return
            self.model.clear_results()
        self.model.set_text_column(name)
        self.detail_panel.clear()
        self._size_columns()
        self._update_status()

    def set_text_column(self, name: str) -> None:
        """Choose the text column as the combo box does (for scripts and tests)."""
        index = self.text_column_combo.findData(name)
        if index < 0:
            raise BertclsError(f"No column {name!r}; columns: {list(self.model.frame.columns)}")
        self.text_column_combo.setCurrentIndex(index)
        self._on_text_column_chosen(index)

    def _on_gold_column_chosen(self, index: int) -> None:
        self._set_gold_column(self.gold_column_combo.itemData(index))
        if self.model.gold_column and self.model.labeled_count() and not self.is_busy():
            self.evaluate()

    def _set_gold_column(self, name: str | None) -> None:
        index = self.gold_column_combo.findData(name) if name else 0
        self.gold_column_combo.setCurrentIndex(max(index, 0))
        self.model.set_gold_column(name)
        self._arrange_columns()
        self.evaluation = None
        self.evaluation_panel.clear(
            "Label the file, then click Evaluate." if name else "Choose a gold column to evaluate."
        )
        self._update_actions()

    def set_gold_column(self, name: str | None) -> None:
        """Choose the gold column as the combo box does (for scripts and tests)."""
        self._set_gold_column(name)

    # --- the file changing on disk

    def _on_file_event(self, path: str) -> None:
        self._watch_timer.start()

    def check_file_changed(self) -> None:
        """If the open file changed on disk, offer to reload it (labels are kept by text)."""
        if self.file_path is None:
            return
        path = self.file_path
        if str(path) not in self.watcher.files() and path.exists():
            self.watcher.addPath(str(path))  # replaced by rename: watch the new file
        stat = _file_stat(path)
        if stat == self._file_stat:
            return
        if self.is_busy():
            self._pending_file_check = True
            self.statusBar().showMessage(
                f"{path.name} changed on disk; asking when the work in progress ends"
            )
            return
        self._file_stat = stat
        if stat is None:
            self._show_info(
                "File removed",
                f"{path} was deleted or moved. The table and its labels stay open here; "
                "export them to keep them.",
            )
            return
        question = (
            f"{path.name} was changed on disk by another program.\n\nReload it? The labels "
            "computed so far are kept for every row whose text is unchanged. "
            "No keeps the version shown now."
        )
        if self._ask("File changed on disk", question):
            self.open_file(path, sheet=self.file_sheet, reload=True)
        else:
            self.statusBar().showMessage(f"Kept the version of {path.name} loaded earlier", 8000)

    # ================================================================= labeling

    def start_labeling(self) -> None:
        """Label the rows that have no prediction yet (all rows if every row has one)."""
        if self.is_labeling():
            return
        if self.nlp is None:
            self._show_error("No pipeline", "Load a trained pipeline first (File > Open Pipeline).")
            return
        if self.file_path is None:
            self._show_error("No file", "Open a file to label first (File > Open File).")
            return
        text_column = self.model.text_column
        try:
            require_columns(
                self.model.frame.columns, [text_column or ""], source=str(self.file_path)
            )
        except BertclsError as error:
            self._report_failure("Missing text column", error)
            return
        rows = self.model.unlabeled_rows()
        if rows.size == 0:
            if not self._ask("Label again?", "Every row is labeled. Label all rows again?"):
                return
            rows = np.arange(len(self.model.frame))
        worker = LabelWorker(
            self.nlp,
            self.model.frame[text_column].copy(),
            rows,
            nlp_lock=self.nlp_lock,
        )
        worker.chunk_ready.connect(self._on_chunk)
        worker.progress.connect(self._on_progress)
        worker.failed.connect(lambda error, tb: self._report_failure("Labeling failed", error, tb))
        worker.finished.connect(self._on_labeling_finished)
        self.worker = worker
        self._labeling = True
        self.progress.setRange(0, len(rows))
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.speed_label.setText("starting…")
        self.statusBar().showMessage(f"Labeling {len(rows):,} rows…")
        self.last_run = {"rows": len(rows), "started": time.perf_counter()}
        worker.start()
        self._update_actions()

    def cancel_labeling(self) -> None:
        """Stop labeling after the current chunk; labeled rows are kept."""
        if self.is_labeling():
            assert self.worker is not None
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.speed_label.setText("cancelling…")

    def _on_chunk(self, chunk: LabeledChunk) -> None:
        self.model.apply_chunk(chunk)
        row = self.detail_panel.row
        if row >= 0 and np.any(chunk.rows == row):
            self._show_row_details(row)
        self._update_status()

    def _on_progress(self, done: int, total: int, rate: float, left: float) -> None:
        self.progress.setValue(done)
        self.speed_label.setText(f"{rate:,.0f} rows/s · {_format_seconds(left)} left")

    def _on_labeling_finished(self) -> None:
        worker = self.worker
        if worker is None:
            return
        self._labeling = False
        self.progress.hide()
        self.cancel_button.hide()
        self.speed_label.setText("")
        self.model.refresh()  # sort and filter on the new values
        seconds = worker.elapsed
        rate = worker.done_rows / seconds if seconds > 0 else 0.0
        self.last_run.update(state=worker.state, done=worker.done_rows, seconds=seconds, rate=rate)
        left = len(self.model.unlabeled_rows())
        if worker.state == "done":
            message = f"Labeled {worker.done_rows:,} rows in {seconds:.1f} s ({rate:,.0f} rows/s)"
        elif worker.state == "cancelled":
            message = (
                f"Cancelled: kept the {worker.done_rows:,} rows labeled in this run; "
                f"{left:,} rows left (Label continues with them)"
            )
        else:
            message = f"Labeling stopped by an error; kept the {worker.done_rows:,} rows labeled"
        self.statusBar().showMessage(message, 15000)
        self._update_actions()
        self._update_status()
        self._show_current_row()
        if worker.state == "done" and self.model.gold_column:
            self._run_message = message
            self.evaluate()
        self._after_busy()

    def _wait_for_worker(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()

    # ================================================================= the table

    def apply_filters(self) -> None:
        """Filter the table by the filter bar's widgets (plus a confusion-matrix cell, if set)."""
        current = self.model.row_filter()
        low, high = self.confidence_min.value(), self.confidence_max.value()
        row_filter = RowFilter(
            predicted_label=self.label_filter.currentData(),
            confidence_min=min(low, high),
            confidence_max=max(low, high),
            search=self.search_edit.text().strip(),
            rows=current.rows,
            rows_description=current.rows_description,
            corrected_only=self.corrected_only.isChecked(),
        )
        self.model.set_filter(row_filter)
        self._show_row_filter_label()
        self._update_status()

    def set_row_filter(self, rows: np.ndarray | None, description: str = "") -> None:
        """Show only these file rows (e.g. a confusion-matrix cell); None shows all again."""
        current = self.model.row_filter()
        current.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        current.rows_description = description if rows is not None else ""
        self.apply_filters()

    def clear_filters(self) -> None:
        for widget in (
            self.label_filter,
            self.confidence_min,
            self.confidence_max,
            self.search_edit,
            self.corrected_only,
        ):
            widget.blockSignals(True)
        self.label_filter.setCurrentIndex(0)
        self.confidence_min.setValue(0.0)
        self.confidence_max.setValue(1.0)
        self.search_edit.clear()
        self.corrected_only.setChecked(False)
        for widget in (
            self.label_filter,
            self.confidence_min,
            self.confidence_max,
            self.search_edit,
            self.corrected_only,
        ):
            widget.blockSignals(False)
        self._search_timer.stop()
        self.model.set_filter(RowFilter())
        self._show_row_filter_label()
        self._update_status()

    def _show_row_filter_label(self) -> None:
        description = self.model.row_filter().rows_description
        if self.model.row_filter().rows is not None:
            self.row_filter_label.setText(
                f"Showing {description} — <a href='clear'>show all rows</a>"
            )
            self.row_filter_label.show()
        else:
            self.row_filter_label.hide()

    def show_least_confident_first(self) -> None:
        column = self.model.column_index(CONFIDENCE)
        if column < 0:
            self.statusBar().showMessage("Load a pipeline and label the file first", 5000)
            return
        self.views.setCurrentIndex(0)
        self.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)

    def show_row(self, source_row: int) -> None:
        """Select and show a file row (clearing filters if they hide it)."""
        if self.model.view_row(source_row) < 0:
            self.clear_filters()
        view_row = self.model.view_row(source_row)
        if view_row < 0:
            return
        self.views.setCurrentIndex(0)
        index = self.model.index(
            view_row, max(self.model.column_index(self.model.text_column or ""), 0)
        )
        self.table.setCurrentIndex(index)
        self.table.selectRow(view_row)
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _show_current_row(self) -> None:
        index = self.table.currentIndex()
        if not index.isValid():
            self.detail_panel.clear()
            return
        self._show_row_details(self.model.source_row(index.row()))
        self.side_tabs.setCurrentWidget(self.detail_panel)

    def _show_row_details(self, row: int) -> None:
        model = self.model
        gold = None
        if model.gold_column:
            value = model.value(row, model.gold_column)
            gold = label_text(value)
        model_labels = model.labels
        self.detail_panel.show_row(
            row,
            model.text(row),
            model_labels,
            model.probs[row] if model_labels else None,
            model.predicted_label(row),
            float(model.confidence[row]),
            bool(model.labeled[row]),
            model.corrected_label(row),
            gold,
            model.gold_column,
        )

    def _on_detail_correction(self, row: int, label: str) -> None:
        self.model.set_correction(row, label or None)

    def _table_menu(self, position: Any) -> None:
        rows = sorted(
            {
                self.model.source_row(index.row())
                for index in self.table.selectionModel().selectedRows()
            }
        )
        if not rows or not self.model.labels:
            return
        menu = QMenu(self)
        correct = menu.addMenu(f"Set corrected_label of {len(rows):,} row(s)")
        for label in self.model.labels:
            act = correct.addAction(label)
            act.triggered.connect(lambda _=False, label=label: self.correct_rows(rows, label))
        clear = menu.addAction("Clear correction")
        clear.triggered.connect(lambda _=False: self.correct_rows(rows, None))
        menu.exec(self.table.viewport().mapToGlobal(position))

    def correct_rows(self, rows: list[int], label: str | None) -> None:
        """Set (or clear) the corrected label of several file rows."""
        for row in rows:
            self.model.set_correction(row, label)
        if self.detail_panel.row in rows:
            self._show_row_details(self.detail_panel.row)

    def _arrange_columns(self) -> None:
        """Show what an analyst reads first at the left: text_column, the predictions, the
        correction and the gold column; the file's other columns follow in file order.
        Only the view's order changes; exports keep the file's order."""
        model = self.model
        header = self.table.horizontalHeader()
        first = [model.text_column, PREDICTED_LABEL, CONFIDENCE]
        first += [prob_column(label) for label in model.labels]
        first += [CORRECTED_LABEL, model.gold_column]
        wanted = [model.column_index(name) for name in first if name]
        wanted = [column for column in wanted if column >= 0]
        wanted += [c for c in range(model.columnCount()) if c not in wanted]
        for visual, logical in enumerate(wanted):
            current = header.visualIndex(logical)
            if current != visual:
                header.moveSection(current, visual)

    def _size_columns(self) -> None:
        """Widths from the header and the first rows' contents; the text column gets room."""
        self._arrange_columns()
        metrics = self.table.fontMetrics()
        model = self.model
        sample = min(model.rowCount(), 100)
        for column in range(model.columnCount()):
            name = model.column_name(column)
            width = metrics.horizontalAdvance(name) + 34  # room for the sort arrow
            if model.is_text_column(column):
                width = max(width, 460)
            elif model.is_source_column(column):
                longest = 0
                for row in range(sample):
                    text = model.data(model.index(row, column)) or ""
                    longest = max(longest, metrics.horizontalAdvance(str(text)[:60]))
                width = max(width, min(longest + 16, 240))
            else:
                width = max(width, metrics.horizontalAdvance("0.000") + 28)
            self.table.setColumnWidth(column, width)

    # ================================================================= evaluation

    def evaluate(self) -> None:
        """Score the labeled rows against the gold column in the background."""
        gold_column = self.model.gold_column
        if gold_column is None:
            self._show_error(
                "No gold column", "Choose the column with the true labels (gold column) first."
            )
            return
        rows = np.flatnonzero(self.model.labeled)
        if rows.size == 0:
            self._show_error("Nothing labeled", "Label the file (Label > Label) before evaluating.")
            return
        frame = self.model.frame
        gold = frame[gold_column].to_numpy(dtype=object)[rows].tolist()
        texts = text_values(frame[self.model.text_column].iloc[rows])
        probs = self.model.probs[rows].copy()
        self.evaluation_panel.summary.setText("Evaluating…")
        self._run_task(
            "Evaluating",
            run_evaluation,
            gold,
            probs,
            self.model.labels,
            texts,
            rows,
            gold_column,
            on_done=self._evaluated,
            failure_title="Could not evaluate",
        )

    def _evaluated(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self.evaluation_panel.set_evaluation(evaluation)
        result = evaluation.result
        self._update_actions()
        message = (
            f"Evaluated {result.n_evaluated:,} rows: accuracy {result.accuracy:.3f}, "
            f"macro F1 {result.macro['f1']:.3f}"
        )
        if self._run_message:  # the run that triggered this evaluation: keep its summary too
            message = f"{self._run_message} · {message}"
            self._run_message = ""
        self.statusBar().showMessage(message, 15000)

    def show_confusion_cell(self, gold_label: str, predicted_label: str) -> None:
        """Filter the table to exactly the rows of one confusion-matrix cell."""
        if self.evaluation is None:
            return
        rows = self.evaluation.table_rows(gold_label, predicted_label)
        self.clear_filters()
        self.set_row_filter(
            rows,
            f"{len(rows):,} rows with {self.evaluation.gold_column} = {gold_label} "
            f"and predicted_label = {predicted_label}",
        )
        self.views.setCurrentIndex(0)

    # ================================================================= exports

    def export_table(self, path: str | Path | None = None) -> None:
        """Write the labeled table (CSV, Excel, Parquet, ...) via ``tables.write_table``."""
        if self.file_path is None:
            self._show_error("Nothing to export", "Open and label a file first.")
            return
        if path is None:
            suggestion = str(self.file_path.with_name(f"{self.file_path.stem}_labeled.csv"))
            chosen = self._get_save_path("Export labeled table", suggestion, TABLE_EXPORT_FILTERS)
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if path.suffix.lower() not in WRITABLE_SUFFIXES:
            self._show_error(
                "Cannot export",
                f"{path.name}: choose one of {', '.join(WRITABLE_SUFFIXES)} as the file type.",
            )
            return
        overwrite_source = False
        try:
            check_not_same_file(self.file_path, path)
        except BertclsError:
            question = (
                f"{path} is the file you opened. Overwrite the source file with the labeled "
                "table? The original contents are replaced (the write is atomic)."
            )
            if not self._ask("Overwrite the source file?", question):
                self.statusBar().showMessage("Export cancelled; the source file is unchanged", 8000)
                return
            overwrite_source = True
        frame = self.model.labeled_frame()

        def written(_: Any) -> None:
            if overwrite_source:
                self._file_stat = _file_stat(path)  # our own write: do not offer a reload
            self.statusBar().showMessage(f"Exported {len(frame):,} rows to {path}", 10000)

        self._run_task(
            f"Writing {path.name}",
            write_table,
            frame,
            path,
            on_done=written,
            failure_title="Could not export the table",
        )

    def export_corrections(self, path: str | Path | None = None) -> None:
        """Write the corrected rows as training data: ``text,label`` CSV or ``.spacy``."""
        corrections = self.model.corrections()
        if corrections.empty:
            self._show_info(
                "No corrections",
                "Correct some rows first: double-click a corrected_label cell, use the Details "
                "panel, or right-click selected rows.",
            )
            return
        if path is None:
            suggestion = str((self.file_path or Path.cwd() / "x").with_name("corrections.spacy"))
            filters = ";;".join(
                f"{name} (*{suffix})" for suffix, name in CORRECTION_SUFFIXES.items()
            )
            chosen = self._get_save_path("Export corrections as training data", suggestion, filters)
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if self.file_path is not None:
            try:
                check_not_same_file(self.file_path, path)
            except BertclsError as error:
                self._report_failure("Cannot export corrections", error)
                return
        nlp = self.nlp
        count = len(corrections)
        version = self._corrections_version

        guarded = (
            changed_by_formula_guard(corrections["text"])
            if path.suffix.lower() in (".csv", ".xlsx")
            else 0
        )

        def written(_: Any) -> None:
            self._corrections_saved_version = version
            self.statusBar().showMessage(f"Exported {count:,} corrections to {path}", 10000)
            if guarded:
                self._show_info(
                    f"Formula guard in the {path.suffix} file",
                    f"{guarded:,} of the {count:,} texts start with = + - or @, so their cells "
                    "begin with ' in the file: spreadsheet programs would otherwise run them "
                    "as formulas. bertcls convert and this app remove that ' when they read "
                    "the file, so training sees the exact texts; other tools may not.",
                )

        self._run_task(
            f"Writing {path.name}",
            write_corrections,
            corrections,
            path,
            self.model.labels,
            nlp,
            on_done=written,
            failure_title="Could not export the corrections",
        )

    def export_report(self, path: str | Path | None = None) -> None:
        """Write the HTML report (plus JSON and PNG plots) of the current evaluation."""
        if self.evaluation is None:
            self._show_error("No evaluation", "Evaluate against a gold column first.")
            return
        if path is None:
            stem = self.file_path.stem if self.file_path else "evaluation"
            suggestion = str((self.file_path or Path.cwd() / "x").with_name(f"{stem}_report.html"))
            chosen = self._get_save_path("Export evaluation report", suggestion, "HTML (*.html)")
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_suffix(".html")
        evaluation = self.evaluation
        details = {
            "pipeline": str(self.pipeline_path),
            "data": str(self.file_path),
            "text_column": self.model.text_column,
            "gold_column": evaluation.gold_column,
            "rows labeled": f"{len(evaluation.rows):,} of {len(self.model.frame):,}",
            "written by": "bertcls-gui",
        }
        title = f"Evaluation of {self.pipeline_path.name if self.pipeline_path else 'pipeline'}"
        if self.file_path:
            title += f" on {self.file_path.name}"
        self._run_task(
            f"Writing {path.name}",
            write_report,
            evaluation.result,
            path,
            json_path=path.with_suffix(".json"),
            plots_dir=path.with_name(f"{path.stem}_plots"),
            title=title,
            details=details,
            on_done=lambda written: self.statusBar().showMessage(
                f"Wrote {', '.join(str(p) for p in written.values())}", 10000
            ),
            failure_title="Could not write the report",
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

    # ================================================================= status, title, recent lists

    def _on_corrections_changed(self, count: int) -> None:
        self._corrections_version += 1
        self._update_status()

    def _update_status(self) -> None:
        model = self.model
        total = len(model.frame)
        if not total:
            self.rows_status.setText("no file")
            return
        parts = [f"{total:,} rows", f"{model.rowCount():,} shown"]
        if model.labels:
            parts.append(f"{model.labeled_count():,} labeled")
            parts.append(f"{model.corrected_count():,} corrected")
        self.rows_status.setText(" · ".join(parts))

    def _update_title(self) -> None:
        parts = [APP_TITLE]
        if self.file_path:
            parts.insert(0, self.file_path.name)
        if self.pipeline_path:
            parts.insert(1 if self.file_path else 0, self.pipeline_path.name)
        self.setWindowTitle(" — ".join(parts))

    def _update_actions(self) -> None:
        labeling = self.is_labeling()
        has_file = self.file_path is not None
        has_pipeline = self.nlp is not None
        self.open_pipeline_action.setEnabled(not labeling)
        self.open_file_action.setEnabled(not labeling)
        self.recent_files_menu.setEnabled(not labeling)
        self.recent_pipelines_menu.setEnabled(not labeling)
        self.label_action.setEnabled(has_file and has_pipeline and not labeling)
        self.cancel_action.setEnabled(labeling)
        self.text_column_combo.setEnabled(has_file and not labeling)
        self.export_table_action.setEnabled(has_file)
        self.export_corrections_action.setEnabled(has_pipeline)
        self.evaluate_action.setEnabled(
            has_pipeline and self.model.gold_column is not None and not labeling
        )
        self.evaluation_panel.evaluate_button.setEnabled(self.evaluate_action.isEnabled())
        self.export_report_action.setEnabled(self.evaluation is not None)

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

    # ================================================================= layout and closing

    def _restore_layout(self) -> None:
        geometry = self.settings.value("layout/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 900)
        state = self.settings.value("layout/windowState")
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("layout/view")
        if tab is not None:
            self.views.setCurrentIndex(int(tab))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._splitters_restored:
            # Once the window has its restored size, so the saved sizes apply as they were.
            self._splitters_restored = True
            self.layout().activate()
            for key, splitter in self._splitters().items():
                value = self.settings.value(f"layout/{key}")
                if value is not None:
                    splitter.restoreState(value)

    def _splitters(self) -> dict[str, QSplitter]:
        return {
            "tableSplitter": self.table_splitter,
            "evaluationSplitter": self.evaluation_panel.splitter,
            "pipelineSplitter": self.pipeline_panel.splitter,
        }

    def save_layout(self) -> None:
        self.settings.setValue("layout/geometry", self.saveGeometry())
        self.settings.setValue("layout/windowState", self.saveState())
        for key, splitter in self._splitters().items():
            self.settings.setValue(f"layout/{key}", splitter.saveState())
        self.settings.setValue("layout/view", self.views.currentIndex())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        reasons = []
        if self.worker is not None and self.worker.isRunning():
            reasons.append("Labeling is still running; it will be stopped.")
        unsaved = self._corrections_version != self._corrections_saved_version
        if self.model.corrected_count() and unsaved:
            reasons.append(f"{self.model.corrected_count():,} corrections have not been exported.")
        if reasons and not self._ask("Quit?", " ".join(reasons) + "\n\nQuit anyway?"):
            event.ignore()
            return
        self.save_layout()
        self._wait_for_worker()  # one chunk: well under a second
        self.try_panel.timer.stop()
        self._watch_timer.stop()
        if self.tasks.busy():
            # A file being read or written cannot be interrupted; finish it out of sight.
            self.hide()
        self.pool.waitForDone()
        event.accept()


def read_table_for_app(path: Path, *, sheet: str | None = None) -> pd.DataFrame:
    """``read_table``, refusing duplicate column names: the app picks columns by name (text,
    gold, filters, export), and a name standing for two columns would mix them up. Reading
    warnings go with the frame (``attrs["reading_notes"]``) to be shown once it is open."""
    notes: list[str] = []
    frame = read_table(path, sheet=sheet, notes=notes)
    frame.attrs["reading_notes"] = notes
    names = [str(name) for name in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BertclsError(
            f"{path.name} has several columns named {', '.join(map(repr, repeated))}. The app "
            "needs one name per column: rename them in the file (the command line's bertcls "
            "label keeps duplicate names as they are)."
        )
    return frame
