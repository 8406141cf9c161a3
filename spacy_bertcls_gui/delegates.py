"""How the table's special cells are drawn and edited: probability bars, label chips and the
correction drop-down.

One delegate serves the whole view: it draws a bar wherever the model gives a ``VALUE_ROLE``
number (``confidence`` and the ``prob_<label>`` columns), chips wherever it gives a
``LABEL_SET_ROLE`` label set (a multi-label pipeline's ``predicted_labels`` and
``corrected_labels``), and offers a combo box wherever the model allows editing
(``corrected_label``), so columns can come and go without re-wiring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter
from PySide6.QtWidgets import QComboBox, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from .charts import label_color
from .label_chips import paint_chips
from .table_model import LABEL_INDEX_ROLE, LABEL_SET_ROLE, VALUE_ROLE, LabelSet

NO_CORRECTION = "(keep prediction)"


class LabelEditor(QComboBox):
    """The corrected_label editor. Arrow keys and typing ("neu" jumps to neutral) only move
    the choice: a closed QComboBox reports them as ``activated``, which committed the first
    key's label. ``picked`` is emitted only for a choice made in the open list."""

    picked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._from_keys = False
        self.activated.connect(self._on_activated)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self._from_keys = True
        try:
            super().keyPressEvent(event)
        finally:
            self._from_keys = False

    def wheelEvent(self, event) -> None:
        event.ignore()  # scrolling the table must not change a label under the pointer

    def _on_activated(self, _: int) -> None:
        if not self._from_keys:
            self.picked.emit()


class TableDelegate(QStyledItemDelegate):
    """Bars for numbers in [0, 1] and a label combo box for corrections.

    A bar fills the cell's share given by ``VALUE_ROLE`` in the color of the cell's label
    (``LABEL_INDEX_ROLE``), light enough that the number drawn on top stays readable.
    """

    def __init__(self, labels: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels = list(labels)

    def set_labels(self, labels: Sequence[str]) -> None:
        self._labels = list(labels)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        label_set = index.data(LABEL_SET_ROLE)
        if isinstance(label_set, LabelSet):
            self._paint_chips(painter, option, index, label_set)
            return
        value = index.data(VALUE_ROLE)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            super().paint(painter, option, index)
            return
        # Background and selection as usual, but no text: the bar goes between the two.
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = opt.text
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        code = index.data(LABEL_INDEX_ROLE)
        color = QColor(
            label_color(code) if isinstance(code, int) and code >= 0 else QColor("#1f77b4")
        )
        color.setAlpha(110)
        rect = QRectF(option.rect).adjusted(2, 3, -2, -3)
        painter.save()
        painter.fillRect(
            QRectF(
                rect.left(),
                rect.top(),
                rect.width() * min(max(float(value), 0.0), 1.0),
                rect.height(),
            ),
            color,
        )
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = opt.palette.ColorRole.HighlightedText if selected else opt.palette.ColorRole.Text
        painter.setPen(opt.palette.color(role))
        painter.drawText(
            rect.adjusted(0, 0, -3, 0),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            text,
        )
        painter.restore()

    def _paint_chips(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
        label_set: LabelSet,
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.icon = QIcon()
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        foreground = index.data(Qt.ItemDataRole.ForegroundRole)
        painter.save()
        painter.setFont(opt.font)
        paint_chips(
            painter, QRectF(option.rect).adjusted(2, 0, -2, 0), self._labels, label_set.codes,
            opt.palette, mark=label_set.mark,
            mark_color=QColor(foreground) if foreground is not None else None,
            selected=bool(option.state & QStyle.StateFlag.State_Selected),
        )  # fmt: skip
        painter.restore()

    def createEditor(
        self,
        parent: QWidget,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> QWidget:
        combo = LabelEditor(parent)
        combo.addItem(NO_CORRECTION, "")
        for label in self._labels:
            combo.addItem(label, label)
        # A label picked from the open list commits at once; keys only choose (Enter commits,
        # through QStyledItemDelegate's event filter, and Esc cancels).
        combo.picked.connect(lambda c=combo: self._commit(c))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        current = index.data(Qt.ItemDataRole.EditRole) or ""
        position = editor.findData(current)
        editor.setCurrentIndex(max(position, 0))

    def setModelData(
        self, editor: QWidget, model: QAbstractItemModel, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentData() or "", Qt.ItemDataRole.EditRole)

    def _commit(self, combo: QComboBox) -> None:
        self.commitData.emit(combo)
        self.closeEditor.emit(combo, QStyledItemDelegate.EndEditHint.NoHint)
