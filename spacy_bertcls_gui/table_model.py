"""The labeled table as a Qt model: a view of a :class:`spacy_bertcls.session.Session`.

The session holds the rows, the predictions, the corrections and the ``view row -> file row``
order (filters and sorting are numpy operations there); this model only turns cells into text,
colours and roles, and turns the session's events into Qt's model signals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from spacy_bertcls.audit import LABEL_QUALITY
from spacy_bertcls.labeling import MULTI_LABEL_SEP
from spacy_bertcls.session import ColumnKind, Session, SortKey
from spacy_bertcls.tables.cells import cell_text, is_missing

from .charts import label_color
from .label_chips import NO_LABEL, surest_first

#: The number behind a cell (a probability or a confidence) for the bar delegate.
VALUE_ROLE = Qt.ItemDataRole.UserRole + 1
#: The index of a cell's label in the pipeline's labels (for its color), or -1.
LABEL_INDEX_ROLE = Qt.ItemDataRole.UserRole + 2
#: Multi-label: a label-set cell as ``LabelSet`` (drawn as chips), None for other cells.
LABEL_SET_ROLE = Qt.ItemDataRole.UserRole + 3

NO_PREDICTION = "—"
#: Marks a corrected label and a wrong prediction in the text, so neither relies on colour.
CORRECTED_MARK = "✎ "
WRONG_MARK = "✗ "
#: After the row number of a row whose text the pipeline was trained on.
TRAINED_MARK = " ◆"


@dataclass(frozen=True)
class LabelSet:
    """A label-set cell: the label codes, and the mark drawn before them (✗ or ✎)."""

    codes: tuple[int, ...]
    mark: str = ""


_MULTI_LABEL_TIPS = {
    ColumnKind.PREDICTED: "Every label whose probability reaches its decision threshold "
    "(✗: not the gold set)",
    ColumnKind.CONFIDENCE: "How sure the least sure label decision is: p of a label given, "
    "1 - p of one left out",
    ColumnKind.CORRECTED: "Your corrected label set; exported as training data "
    "(File > Export Corrections)",
}
_HEADER_TIPS = {
    ColumnKind.PREDICTED: "The label with the highest probability (✗: not the gold label)",
    ColumnKind.CONFIDENCE: "The probability of predicted_label",
    ColumnKind.PROB: "The probability the pipeline gives this label",
    ColumnKind.CORRECTED: "Your correction; exported as training data (File > Export Corrections)",
}


def _contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours."""

    def luminance(color: QColor) -> float:
        def channel(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        return (
            0.2126 * channel(color.redF())
            + 0.7152 * channel(color.greenF())
            + 0.0722 * channel(color.blueF())
        )

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def row_colours(palette: QPalette) -> tuple[QColor, QColor]:
    """(corrected background, mismatch text) derived from ``palette``, each at least 4.5:1
    against the palette's text / base colours, in a light or a dark theme."""
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    dark = base.lightnessF() < 0.5
    # A tint of amber over the base: light yellow in a light theme, dark amber in a dark one.
    amber = QColor(255, 193, 7)
    mix = 0.25 if not dark else 0.30
    corrected = QColor.fromRgbF(
        base.redF() * (1 - mix) + amber.redF() * mix,
        base.greenF() * (1 - mix) + amber.greenF() * mix,
        base.blueF() * (1 - mix) + amber.blueF() * mix,
    )
    mismatch = QColor(183, 28, 28) if not dark else QColor(255, 138, 128)
    for background in (base, corrected):
        while _contrast(mismatch, background) < 4.5:
            mismatch = mismatch.darker(110) if not dark else mismatch.lighter(110)
    while _contrast(text, corrected) < 4.5 and 0.0 < corrected.lightnessF() < 1.0:
        corrected = corrected.lighter(105) if not dark else corrected.darker(110)
    return corrected, mismatch


class LabeledTableModel(QAbstractTableModel):
    """The session's shown columns (``session.layout``) for the shown rows, in their order."""

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self._persistent_rows: list[tuple[int, int]] = []
        self._sorted_at: tuple[SortKey | None, int] | None = None
        self.update_colours()
        events = session.events
        events.table_about_to_reset.connect(self.beginResetModel)
        events.table_reset.connect(self._end_reset)
        events.order_about_to_change.connect(self._order_about_to_change)
        events.order_changed.connect(self._order_changed)
        events.predictions_changed.connect(lambda rows: self._columns_changed())
        events.corrections_changed.connect(self._rows_changed)
        # Which rows are wrong, kept as the session's mask (its rule, computed once per change
        # rather than per painted cell).
        self._wrong = session.wrong_rows()
        events.columns_changed.connect(self._update_wrong)

    def update_colours(self, palette: QPalette | None = None) -> None:
        """Derive the row colours from the application's palette (call on a theme change)."""
        app = QApplication.instance()
        palette = palette or (app.palette() if app is not None else QPalette())
        self.corrected_background, self.mismatch_foreground = row_colours(palette)
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1)
            )

    # ----------------------------------------------------------------- rows and columns

    def source_row(self, view_row: int) -> int:
        return int(self.session.visible_rows[view_row])

    def view_row(self, source_row: int) -> int:
        return self.session.view_row(source_row)

    def column_name(self, column: int) -> str:
        return self.session.layout[column].name

    def column_index(self, name: str | None) -> int:
        """The view column showing ``name`` (e.g. ``confidence``), or -1."""
        return self.session.layout.position(name)

    def is_text_column(self, column: int) -> bool:
        spec = self.session.layout[column]
        return spec.kind is ColumnKind.SOURCE and spec.name == self.session.text_column

    def is_source_column(self, column: int) -> bool:
        return self.session.layout[column].kind is ColumnKind.SOURCE

    def is_label_set_column(self, column: int) -> bool:
        """Whether the column holds label sets (a multi-label pipeline's predictions and
        corrections)."""
        kind = self.session.layout[column].kind
        return self.session.multi_label and kind in (ColumnKind.PREDICTED, ColumnKind.CORRECTED)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by any column; empty values go last in both directions."""
        session = self.session
        wanted = None
        if 0 <= column < len(session.layout):
            descending = order == Qt.SortOrder.DescendingOrder
            wanted = SortKey(session.layout[column].name, descending)
        if (wanted, session.results.version) == self._sorted_at:
            return  # QTableView.sortByColumn may ask twice for the same order
        self._sorted_at = (wanted, session.results.version)
        session.set_sort(wanted)

    # ----------------------------------------------------------------- Qt model interface

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.session.visible_rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.session.layout)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ):
        layout = self.session.layout
        if orientation == Qt.Orientation.Horizontal:
            if not 0 <= section < len(layout):
                return None
            if role == Qt.ItemDataRole.DisplayRole:
                return layout[section].name
            if role == Qt.ItemDataRole.ToolTipRole:
                kind = layout[section].kind
                if self.session.multi_label and kind in _MULTI_LABEL_TIPS:
                    return _MULTI_LABEL_TIPS[kind]
                return _HEADER_TIPS.get(kind, layout[section].name)
            return None
        rows = self.session.visible_rows
        if not 0 <= section < len(rows):
            return None
        row = int(rows[section])
        if role == Qt.ItemDataRole.DisplayRole:
            # The row as a spreadsheet shows it, as in reports: stays with the row when sorted.
            number = f"{self.session.row_number(row):,}"
            return number + TRAINED_MARK if self.session.trained_rows()[row] else number
        if role == Qt.ItemDataRole.ToolTipRole and self.session.trained_rows()[row]:
            return "The pipeline was trained on this text: its prediction is not a fair test"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        # A label set is corrected with the keys 1-9, the context menu or the Details tab.
        if (
            index.isValid()
            and self.session.layout[index.column()].kind is ColumnKind.CORRECTED
            and not self.session.multi_label
        ):
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ):
        if not index.isValid():
            return None
        session, results = self.session, self.session.results
        row = int(session.visible_rows[index.row()])
        column = session.layout[index.column()]
        kind = column.kind
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, kind, column.index)
        if role == LABEL_SET_ROLE:
            return self._label_set(row, kind)
        if role == Qt.ItemDataRole.EditRole:
            if kind is ColumnKind.CORRECTED:
                return results.label_of(int(results.corrected[row])) or ""
            return self._display(row, kind, column.index)
        if role == VALUE_ROLE:
            if kind is ColumnKind.CONFIDENCE:
                return float(results.confidence[row])
            if kind is ColumnKind.PROB:
                return float(results.probs[row, column.index])
            return None
        if role == LABEL_INDEX_ROLE:
            if kind is ColumnKind.PROB:
                return column.index
            if kind is ColumnKind.CONFIDENCE:
                return int(results.predicted[row])
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            return self.corrected_background if results.corrected[row] >= 0 else None
        if role == Qt.ItemDataRole.ForegroundRole:
            if kind is ColumnKind.PREDICTED and self._is_wrong(row):
                return self.mismatch_foreground
            return None
        if role == Qt.ItemDataRole.FontRole:
            if kind is ColumnKind.CORRECTED and results.corrected[row] >= 0:
                font = QFont()
                font.setBold(True)
                return font
            return None
        if role == Qt.ItemDataRole.DecorationRole:
            if session.multi_label:
                return None  # the chips carry the colours
            code = -1
            if kind is ColumnKind.PREDICTED:
                code = int(results.predicted[row])
            elif kind is ColumnKind.CORRECTED:
                code = int(results.corrected[row])
            return label_color(code) if code >= 0 else None
        if role == Qt.ItemDataRole.ToolTipRole:
            if kind is ColumnKind.SOURCE and column.name == session.text_column:
                return session.text(row)
            if kind is ColumnKind.PREDICTED and results.labeled[row] and results.predicted[row] < 0:
                return "Empty text: nothing to label"
            if kind is ColumnKind.PREDICTED and session.multi_label and results.labeled[row]:
                return self._set_tip(row)
            if kind is ColumnKind.PREDICTED and self._is_wrong(row):
                return f"Not the gold label ({session.gold_column} = {session.gold_label(row)})"
            if kind is ColumnKind.CORRECTED and session.multi_label:
                return "A number key switches a label on or off; A accepts, 0 clears; Ctrl+Z undoes"
            if kind is ColumnKind.CORRECTED:
                return "F2 or a number key to correct; Ctrl+Z undoes"
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if kind in (ColumnKind.CONFIDENCE, ColumnKind.PROB):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        return None

    def setData(
        self,
        index: QModelIndex | QPersistentModelIndex,
        value,
        role: int = Qt.ItemDataRole.EditRole,
    ) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        if self.session.layout[index.column()].kind is not ColumnKind.CORRECTED:
            return False
        label = str(value) if value else None
        if label is not None and label not in self.session.results.codes:
            return False
        self.session.correct([self.source_row(index.row())], label)
        return True

    # ----------------------------------------------------------------- internals

    def _label_set(self, row: int, kind: ColumnKind) -> LabelSet | None:
        """The predicted or corrected label set of a multi-label row, None where there is none."""
        results = self.session.results
        if not self.session.multi_label:
            return None
        if kind is ColumnKind.PREDICTED and results.predicted[row] >= 0:
            codes = surest_first(np.flatnonzero(results.predicted_sets[row]), results.probs[row])
            return LabelSet(tuple(map(int, codes)), WRONG_MARK if self._is_wrong(row) else "")
        if kind is ColumnKind.CORRECTED and results.corrected[row] >= 0:
            return LabelSet(tuple(map(int, np.flatnonzero(results.corrected_sets[row]))),
                            CORRECTED_MARK)  # fmt: skip
        return None

    def _set_tip(self, row: int) -> str:
        """Each label's probability against its threshold, the labels given first."""
        session, results = self.session, self.session.results
        if results.predicted[row] < 0:
            return "Empty text: nothing to label"
        thresholds = session.rule.thresholds
        lines = []
        for j in np.argsort(-np.nan_to_num(results.probs[row], nan=-1.0)):
            p, t = float(results.probs[row, j]), float(thresholds[j])
            given = "✓" if results.predicted_sets[row, j] else "·"
            lines.append(f"{given} {results.labels[j]}: {p:.3f} (threshold {t:.3f})")
        if self._is_wrong(row):
            gold = f"{session.gold_column} = {session.gold_label(row)}"
            lines.append(f"✗ not the gold set ({gold})")
        return "\n".join(lines)

    def _display(self, row: int, kind: ColumnKind, i: int) -> str:
        session, results = self.session, self.session.results
        if kind is ColumnKind.SOURCE:
            value = session.frame.iat[row, i]
            if session.frame.columns[i] == LABEL_QUALITY and not is_missing(value):
                # The audit's probabilities go down to 1e-5: full digits cut off at the column's
                # edge read as 1.4 instead of 1.4e-05.
                return f"{float(value):.3g}"
            return cell_text(value)
        if session.multi_label and kind in (ColumnKind.PREDICTED, ColumnKind.CORRECTED):
            label_set = self._label_set(row, kind)
            if label_set is None:
                labeled = kind is ColumnKind.PREDICTED and results.labeled[row]
                return NO_PREDICTION if labeled else ""
            names = [results.labels[code] for code in label_set.codes]
            return label_set.mark + (MULTI_LABEL_SEP.join(names) or NO_LABEL)
        if kind is ColumnKind.PREDICTED:
            if not results.labeled[row]:
                return ""
            code = results.predicted[row]
            if code < 0:
                return NO_PREDICTION
            return (WRONG_MARK if self._is_wrong(row) else "") + results.labels[code]
        if kind is ColumnKind.CONFIDENCE:
            value = results.confidence[row]
            return "" if np.isnan(value) else f"{value:.3f}"
        if kind is ColumnKind.PROB:
            value = results.probs[row, i]
            return "" if np.isnan(value) else f"{value:.3f}"
        code = results.corrected[row]
        return CORRECTED_MARK + results.labels[code] if code >= 0 else ""

    def _is_wrong(self, row: int) -> bool:
        return bool(self._wrong[row])

    def _end_reset(self) -> None:
        self._update_wrong()
        self.endResetModel()

    def _update_wrong(self) -> None:
        self._wrong = self.session.wrong_rows()

    def _order_about_to_change(self) -> None:
        self.layoutAboutToBeChanged.emit()
        rows = self.session.visible_rows
        self._persistent = self.persistentIndexList()
        self._persistent_rows = [(int(rows[i.row()]), i.column()) for i in self._persistent]

    def _order_changed(self) -> None:
        new = []
        for source_row, column in self._persistent_rows:
            view_row = self.view_row(source_row)
            new.append(self.index(view_row, column) if view_row >= 0 else QModelIndex())
        self.changePersistentIndexList(self._persistent, new)
        self._persistent, self._persistent_rows = [], []
        self.layoutChanged.emit()

    def _columns_changed(self) -> None:
        self._update_wrong()
        columns = self.session.layout.prediction_positions()
        if columns and self.rowCount():
            self.dataChanged.emit(
                self.index(0, columns[0]), self.index(self.rowCount() - 1, columns[-1])
            )

    def _rows_changed(self, rows: np.ndarray) -> None:
        if not self.rowCount() or not len(rows):
            return
        shown = [self.view_row(int(row)) for row in rows[:1000]]
        shown = [row for row in shown if row >= 0]
        if len(rows) > 1000 or not shown:
            top, bottom = 0, self.rowCount() - 1  # one signal for a bulk correction
        else:
            top, bottom = min(shown), max(shown)
        self.dataChanged.emit(self.index(top, 0), self.index(bottom, self.columnCount() - 1))
