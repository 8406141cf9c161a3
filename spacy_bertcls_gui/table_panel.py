"""The Table tab: which file and columns, the filter bar, and the labeled table itself.

The panel shows the session's table and turns the analyst's clicks and keys into session
calls: filters, sorting, corrections (one key per label, accept, clear, undo through the
window's Edit menu; for a multi-label pipeline a label's key switches it on or off in the
selected rows' label sets). Questions to the user (changing text_column clears predictions) go
up to the window as signals.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.audit import LABEL_QUALITY, SUGGESTED_LABEL, SUSPECT_RANK
from spacy_bertcls.labeling import CONFIDENCE, prob_column
from spacy_bertcls.session import ENTROPY, RowFilter, Session, SortKey
from spacy_bertcls.session.rows import corrected_column, predicted_column

from .delegates import TableDelegate
from .filter_bar import FilterBar
from .table_model import LabeledTableModel

#: Keys that correct the selected rows (1 = the first label), as shown in the Details tab.
LABEL_KEYS = [Qt.Key(Qt.Key.Key_1 + i) for i in range(9)]
ACCEPT_KEY = Qt.Key.Key_A
CLEAR_KEYS = (Qt.Key.Key_0, Qt.Key.Key_Delete, Qt.Key.Key_Backspace)


class LabeledTableView(QTableView):
    """A table view that hands correction keys to ``on_key`` before its own handling."""

    def __init__(self, on_key: Callable[[QKeyEvent], bool], parent: QWidget | None = None):
        super().__init__(parent)
        self._on_key = on_key

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.state() != QAbstractItemView.State.EditingState and self._on_key(event):
            event.accept()
            return
        super().keyPressEvent(event)


class TablePanel(QWidget):
    """File bar, filter bar and table over ``session``."""

    text_column_chosen = Signal(str)  # the window asks before predictions are cleared
    gold_column_chosen = Signal(object)  # str or None
    row_shown = Signal(int)  # the current file row changed (-1: none)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.auto_advance = True
        self._kept_selection: np.ndarray | None = None
        # Before the model hears of a new order: a big selection is cheaper to drop and
        # rebuild than for Qt to carry index by index (3,000 rows froze the window 30 s).
        session.events.order_about_to_change.connect(self._drop_selection)
        self.model = LabeledTableModel(session, self)
        session.events.order_changed.connect(self._restore_selection)
        session.events.table_reset.connect(self._on_table_reset)
        session.events.labels_changed.connect(self._on_labels_changed)
        session.events.columns_changed.connect(self._on_columns_changed)
        session.events.file_changed.connect(self._on_file_changed)

        # --- file bar: which file, which column is text, which is gold
        self.file_label = QLabel("No file open. Open a file (Ctrl+O) or drop one here.")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text_column_combo = self._column_combo(
            "text_column", "text_column: the column whose texts are labeled"
        )
        self.text_column_combo.activated.connect(
            lambda i: self.text_column_chosen.emit(self.text_column_combo.itemData(i))
        )
        self.gold_column_combo = self._column_combo(
            "gold_column", "The column with the true labels, for the Evaluation tab"
        )
        self.gold_column_combo.activated.connect(
            lambda i: self.gold_column_chosen.emit(self.gold_column_combo.itemData(i))
        )
        file_bar = QHBoxLayout()
        file_bar.addWidget(self.file_label, 1)
        file_bar.addWidget(QLabel("text_column:"))
        file_bar.addWidget(self.text_column_combo)
        file_bar.addSpacing(12)
        file_bar.addWidget(QLabel("gold column:"))
        file_bar.addWidget(self.gold_column_combo)

        self.filters = FilterBar()
        self.filters.changed.connect(self.apply_filters)
        self.filters.clear_button.clicked.connect(self.clear_filters)
        self.filters.least_confident_button.clicked.connect(self.show_least_confident_first)
        self.row_filter_label = QLabel("")
        self.row_filter_label.setTextFormat(Qt.TextFormat.RichText)
        self.row_filter_label.setStyleSheet("font-weight: bold")
        self.row_filter_label.linkActivated.connect(lambda _: self.set_row_filter(None))
        self.row_filter_label.hide()

        self.table = LabeledTableView(self._table_key)
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
        self.table.setTabKeyNavigation(False)  # Tab moves between panels, not through columns
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
        self.table.selectionModel().currentRowChanged.connect(
            lambda *_: self.row_shown.emit(self.current_row())
        )
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._table_menu)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(file_bar)
        layout.addWidget(self.filters)
        layout.addWidget(self.row_filter_label)
        layout.addWidget(self.table, 1)

    def _column_combo(self, name: str, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(name)
        combo.setToolTip(tip)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        return combo

    # ================================================================= rows

    def current_row(self) -> int:
        """The file row of the table's current index, or -1."""
        index = self.table.currentIndex()
        return self.model.source_row(index.row()) if index.isValid() else -1

    def selected_rows(self) -> np.ndarray:
        """The selected file rows, in view order."""
        # From the ranges, not selectedRows(): that asks every cell of every range whether it
        # is selected (0.3 s for 3,000 scattered rows).
        ranges = self.table.selectionModel().selection()
        if not ranges:
            return np.empty(0, dtype=np.int64)
        view_rows = np.unique(np.concatenate(
            [np.arange(r.top(), r.bottom() + 1, dtype=np.int64) for r in ranges]
        ))  # fmt: skip
        return self.session.visible_rows[view_rows]

    def show_row(self, source_row: int) -> None:
        """Select and show a file row (clearing filters if they hide it), text column in view."""
        if self.model.view_row(source_row) < 0:
            self.clear_filters()
        view_row = self.model.view_row(source_row)
        if view_row < 0:
            return
        self._go_to(view_row, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _go_to(self, view_row: int, hint: QAbstractItemView.ScrollHint) -> None:
        column = max(self.model.column_index(self.session.text_column), 0)
        index = self.model.index(view_row, column)
        self.table.setCurrentIndex(index)
        self.table.selectRow(view_row)
        self.table.scrollTo(index, hint)
        self.table.horizontalScrollBar().setValue(0)  # the text and the predictions in view

    # ================================================================= filters and sorting

    def apply_filters(self) -> None:
        """Filter the table as the filter bar says (plus an explicit row set, if any)."""
        self.session.set_filter(self.filters.row_filter(self.session.row_filter))
        self._show_row_filter_label()
        self.table.scrollToTop()  # results start at their first row

    def set_row_filter(self, rows: np.ndarray | None, description: str = "") -> None:
        """Show only these file rows (e.g. a confusion-matrix cell); None shows all again."""
        current = self.session.row_filter
        chosen = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.session.row_filter = current.copy(
            rows=chosen, rows_description=description if rows is not None else ""
        )
        self.apply_filters()
        if rows is not None and self.model.rowCount():
            self._go_to(0, QAbstractItemView.ScrollHint.PositionAtTop)

    def clear_filters(self) -> None:
        self.filters.show_filter(RowFilter())
        self.session.set_filter(RowFilter())
        self._show_row_filter_label()

    def show_filter(self) -> None:
        """Show the session's filter in the widgets (after a resumed session)."""
        self.filters.show_filter(self.session.row_filter)
        self._show_row_filter_label()

    def _show_row_filter_label(self) -> None:
        row_filter = self.session.row_filter
        if row_filter.rows is not None:
            self.row_filter_label.setText(
                f"Showing {html.escape(row_filter.rows_description)} — "
                "<a href='clear'>show all rows</a>"
            )
            self.row_filter_label.show()
        else:
            self.row_filter_label.hide()

    def show_least_confident_first(self) -> bool:
        """Sort the rows the model is least sure of first, by the filter bar's measure."""
        column = self.model.column_index(CONFIDENCE)
        if column < 0:
            return False
        measure = self.filters.uncertainty.currentData()
        if measure is None:
            self.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
        else:
            header = self.table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            header.blockSignals(False)
            self.session.set_sort(SortKey(measure, descending=measure == ENTROPY))
        if self.model.rowCount():
            self._go_to(0, QAbstractItemView.ScrollHint.PositionAtTop)
        return True

    def show_sort_indicator(self, column_name: str) -> None:
        """Show the header's sort arrow on ``column_name`` (ascending) for a sort the session
        made, without sorting again."""
        column = self.model.column_index(column_name)
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(column, Qt.SortOrder.AscendingOrder)
        header.blockSignals(False)

    def accept_suggestions(self, rows: np.ndarray) -> None:
        """Make each row's audit suggestion (``suggested_label``) its corrected label."""
        frame = self.session.frame
        if SUGGESTED_LABEL not in frame.columns:
            return
        suggested = frame[SUGGESTED_LABEL].to_numpy(dtype=object)[rows]
        for label in set(suggested) & set(self.session.labels):
            self.session.correct(rows[suggested == label], label)

    def _drop_selection(self) -> None:
        selection = self.table.selectionModel() if hasattr(self, "table") else None
        if selection is None or not selection.hasSelection():
            self._kept_selection = None
            return
        self._kept_selection = self.selected_rows()
        selection.clearSelection()

    def _restore_selection(self) -> None:
        rows, self._kept_selection = self._kept_selection, None
        if rows is None or not rows.size or not self.model.rowCount():
            return
        view_rows = self.session.view_rows(rows)
        view_rows = np.unique(view_rows[view_rows >= 0])
        if not view_rows.size:
            return
        # One range per run of consecutive rows, selected in one call.
        breaks = np.flatnonzero(np.diff(view_rows) != 1) + 1
        last = self.model.columnCount() - 1
        selection = QItemSelection()
        for run in np.split(view_rows, breaks):
            selection.select(self.model.index(int(run[0]), 0), self.model.index(int(run[-1]), last))
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)

    # ================================================================= corrections

    def _table_key(self, event: QKeyEvent) -> bool:
        """Correction keys: 1-9 a label (multi-label: switch it on or off), A the prediction,
        0/Delete clears. True if handled."""
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        labels = self.session.labels
        rows = self.selected_rows()
        if not labels or not rows.size:
            return False
        key = event.key()
        if key in LABEL_KEYS[: len(labels)] and self.session.multi_label:
            self.session.toggle_label(rows, labels[LABEL_KEYS.index(key)])
            return True  # several labels may go on one row: stay on it
        if key in LABEL_KEYS[: len(labels)]:
            self.session.correct(rows, labels[LABEL_KEYS.index(key)])
        elif key == ACCEPT_KEY:
            self.accept_predictions(rows)
        elif key in CLEAR_KEYS:
            self.session.correct(rows, None)
        else:
            return False
        if len(rows) == 1 and self.auto_advance:
            self._advance()
        return True

    def accept_predictions(self, rows: np.ndarray) -> None:
        """Make each row's prediction its corrected label (confirmed training data)."""
        self.session.accept_predictions(rows)

    def _advance(self) -> None:
        index = self.table.currentIndex()
        if index.isValid() and index.row() + 1 < self.model.rowCount():
            next_index = self.model.index(index.row() + 1, index.column())
            self.table.setCurrentIndex(next_index)
            self.table.selectRow(next_index.row())
            self.table.scrollTo(next_index)

    def _table_menu(self, position) -> None:
        rows = self.selected_rows()
        labels = self.session.labels
        if not rows.size or not labels:
            return
        menu = QMenu(self)
        if self.session.multi_label:
            self._add_toggle_menu(menu, rows)
        else:
            correct = menu.addMenu(f"Set corrected_label of {len(rows):,} row(s)")
            for i, label in enumerate(labels):
                key = f"\t{i + 1}" if i < len(LABEL_KEYS) else ""
                act = correct.addAction(f"{label}{key}")
                act.triggered.connect(
                    lambda _=False, label=label: self.session.correct(rows, label)
                )
        accept = menu.addAction("Accept prediction\tA")
        accept.triggered.connect(lambda _=False: self.accept_predictions(rows))
        clear = menu.addAction("Clear correction\t0")
        clear.triggered.connect(lambda _=False: self.session.correct(rows, None))
        if SUGGESTED_LABEL in self.session.frame.columns:
            suggest = menu.addAction("Accept suggested_label (the audit's guess)")
            suggest.triggered.connect(lambda _=False: self.accept_suggestions(rows))
        menu.exec(self.table.viewport().mapToGlobal(position))

    def _add_toggle_menu(self, menu: QMenu, rows: np.ndarray) -> None:
        """Multi-label: one checkable entry per label, checked when every row's set has it."""
        toggle = menu.addMenu(f"Switch a label in corrected_labels of {len(rows):,} row(s)")
        sets = self.session.results.current_sets(rows)
        for i, label in enumerate(self.session.labels):
            key = f"\t{i + 1}" if i < len(LABEL_KEYS) else ""
            act = toggle.addAction(f"{label}{key}")
            act.setCheckable(True)
            act.setChecked(bool(sets[:, i].all()))
            act.triggered.connect(
                lambda _=False, label=label: self.session.toggle_label(rows, label)
            )

    # ================================================================= columns

    def _on_table_reset(self) -> None:
        self.arrange_columns()

    def _on_labels_changed(self) -> None:
        labels = self.session.labels
        self.delegate.set_labels(labels)
        self.filters.set_labels(labels, multi_label=self.session.multi_label)
        self.size_columns()

    def _on_file_changed(self) -> None:
        session = self.session
        frame = session.frame
        columns = [str(column) for column in frame.columns]
        for combo, first in ((self.text_column_combo, None), (self.gold_column_combo, "(none)")):
            combo.clear()
            if first:
                combo.addItem(first, None)
            for column in columns:
                combo.addItem(column, column)
        sheet = f" (sheet {session.sheet})" if session.sheet else ""
        name = session.file_path.name if session.file_path else ""
        self.file_label.setText(
            f"<b>{html.escape(name)}</b>{html.escape(sheet)}: "
            f"{len(frame):,} rows, {len(columns):,} columns"
        )
        self.file_label.setToolTip(str(session.file_path))
        self.filters.show_filter(session.row_filter)
        self._show_row_filter_label()
        self.size_columns()
        self.table.setCurrentIndex(QModelIndex())
        self.table.scrollToTop()
        self.table.horizontalScrollBar().setValue(0)

    def _on_columns_changed(self) -> None:
        session = self.session
        self.text_column_combo.setCurrentIndex(
            max(self.text_column_combo.findData(session.text_column), 0)
        )
        gold = self.gold_column_combo.findData(session.gold_column) if session.gold_column else 0
        self.gold_column_combo.setCurrentIndex(max(gold, 0))
        self.filters.set_gold_available(session.has_gold)
        self.arrange_columns()

    def arrange_columns(self) -> None:
        """Show what an analyst reads first at the left: text_column, the predictions, the
        correction and the gold column; the file's other columns follow in file order.
        Only the view's order changes; exports keep the file's order."""
        model, session = self.model, self.session
        header = self.table.horizontalHeader()
        multi_label = session.multi_label
        first = [session.text_column, predicted_column(multi_label), CONFIDENCE]
        first += [prob_column(label) for label in session.labels]
        first += [corrected_column(multi_label), session.gold_column]
        if SUGGESTED_LABEL in session.frame.columns:
            # After an audit: the gold label and the audit's verdict beside the text, in view.
            first[1:1] = [session.gold_column, SUGGESTED_LABEL, LABEL_QUALITY, SUSPECT_RANK]
            first = list(dict.fromkeys(first))  # the gold column once, here
        wanted = [model.column_index(name) for name in first if name]
        wanted = [column for column in wanted if column >= 0]
        wanted += [c for c in range(model.columnCount()) if c not in wanted]
        for visual, logical in enumerate(wanted):
            current = header.visualIndex(logical)
            if current != visual:
                header.moveSection(current, visual)

    def size_columns(self) -> None:
        """Widths from the header and the first rows' contents; the text column gets room."""
        self.arrange_columns()
        metrics = self.table.fontMetrics()
        model = self.model
        sample = min(model.rowCount(), 100)
        for column in range(model.columnCount()):
            name = model.column_name(column)
            width = metrics.horizontalAdvance(name) + 34  # room for the sort arrow
            if model.is_text_column(column):
                # Multi-label: narrower, so the label chips beside it are in view at 1280.
                width = max(width, 340 if self.session.multi_label else 460)
            elif model.is_label_set_column(column):
                width = max(width, 300)  # room for two or three chips
            elif model.is_source_column(column):
                longest = 0
                for row in range(sample):
                    text = model.data(model.index(row, column)) or ""
                    longest = max(longest, metrics.horizontalAdvance(str(text)[:60]))
                width = max(width, min(longest + 16, 240))
            else:
                width = max(width, metrics.horizontalAdvance("✗ 0.000") + 28)
            self.table.setColumnWidth(column, width)
