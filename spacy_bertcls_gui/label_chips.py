"""Label sets drawn as chips, for a multi-label pipeline: one rounded tag per label, in its color.

``paint_chips`` is the one drawing of a label set: the table's delegate paints its
``predicted_labels`` and ``corrected_labels`` cells with it, and ``LabelChips`` shows the
selected row's set in the Details tab with it. ``LabelSetEditor`` is the Details tab's
correction of a set: one toggle button per label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QToolButton, QWidget

from .charts import label_color

#: Shown where a row's set is empty: the pipeline (or the analyst) says no label applies.
NO_LABEL = "(no label)"
CHIP_ALPHA = 70  # light enough that the text on a chip keeps its contrast in both themes
CHIP_GAP = 4


def paint_chips(
    painter: QPainter,
    rect: QRectF,
    names: Sequence[str],
    codes: Sequence[int],
    palette: QPalette,
    *,
    mark: str = "",
    mark_color: QColor | None = None,
    selected: bool = False,
    wrap: bool = False,
) -> None:
    """Draw ``mark`` (e.g. ✗ or ✎) and one chip per label code in ``codes`` (indexes into
    ``names``) left to right inside ``rect``; chips that do not fit are summed up as "+N", or
    with ``wrap`` go on the next line (``chip_lines`` says how many lines that takes)."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    metrics = QFontMetrics(painter.font())
    text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
    text_color = palette.color(text_role)
    x = rect.left() + 2
    height = min(rect.height() - 4, metrics.height() + 4)
    top = rect.center().y() - height / 2
    if mark:
        painter.setPen(mark_color or text_color)
        width = metrics.horizontalAdvance(mark)
        painter.drawText(QRectF(x, rect.top(), width, rect.height()),
                         Qt.AlignmentFlag.AlignVCenter, mark)  # fmt: skip
        x += width
    if not codes:
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(QRectF(x, rect.top(), rect.right() - x, rect.height()),
                         Qt.AlignmentFlag.AlignVCenter, NO_LABEL)  # fmt: skip
        painter.restore()
        return
    for i, code in enumerate(codes):
        name = names[code]
        width = metrics.horizontalAdvance(name) + 12
        rest = f"+{len(codes) - i}"
        room = rect.right() - x
        last = i == len(codes) - 1
        if wrap and width > room and x > rect.left() + 2:
            x, top = rect.left() + 2, top + height + CHIP_GAP
            room = rect.right() - x
        too_wide = width > room or (not last and width + metrics.horizontalAdvance(rest) + 8 > room)
        if not wrap and too_wide:
            painter.setPen(text_color)
            painter.drawText(QRectF(x, rect.top(), max(room, 0), rect.height()),
                             Qt.AlignmentFlag.AlignVCenter, rest)  # fmt: skip
            break
        chip = QRectF(x, top, width, height)
        fill = QColor(label_color(code))
        border = QColor(fill)
        fill.setAlpha(CHIP_ALPHA)
        painter.setPen(border)
        painter.setBrush(fill)
        painter.drawRoundedRect(chip, height / 2, height / 2)
        painter.setPen(text_color)
        painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, name)
        x += width + CHIP_GAP
    painter.restore()


def surest_first(codes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A predicted set's label codes, the most probable first (what a reader sees first)."""
    return codes[np.argsort(-probs[codes], kind="stable")]


def chip_lines(
    metrics: QFontMetrics, names: Sequence[str], codes: Sequence[int], width: float
) -> int:
    """How many lines ``paint_chips(..., wrap=True)`` takes for ``codes`` in ``width`` pixels."""
    lines, x = 1, 0.0
    for code in codes:
        chip = metrics.horizontalAdvance(names[code]) + 12
        if x and x + chip > width - 4:
            lines, x = lines + 1, 0.0
        x += chip + CHIP_GAP
    return lines


class LabelChips(QWidget):
    """One row's label set as chips (the Details tab's ``predicted_labels``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._codes: list[int] = []
        self._text = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_labels(self, names: Sequence[str], codes: Sequence[int] | None, text: str = "") -> None:
        """Show the labels ``codes`` of ``names``; with None, the plain ``text`` instead."""
        self._names = list(names)
        self._codes = [] if codes is None else [int(code) for code in codes]
        self._text = text if codes is None else ""
        self.setToolTip(", ".join(self._names[code] for code in self._codes))
        self._fit_height()
        self.update()

    def _line_height(self) -> int:
        return self.fontMetrics().height() + 4 + CHIP_GAP

    def _fit_height(self) -> None:
        """Tall enough for every chip at the current width (chips wrap, none is hidden)."""
        lines = chip_lines(self.fontMetrics(), self._names, self._codes, self.width())
        height = max(lines, 1) * self._line_height() + 4
        if height != self.minimumHeight():
            self.setMinimumHeight(height)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def labels(self) -> list[str]:
        return [self._names[code] for code in self._codes]

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().height() + 10)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        if self._text:
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignVCenter, self._text)
        else:
            rect = QRectF(0, 0, self.width(), self._line_height())  # the first line; wraps down
            paint_chips(painter, rect, self._names, self._codes, self.palette(), wrap=True)
        painter.end()


class LabelSetEditor(QWidget):
    """A toggle button per label, checked for the labels in the set; ``toggled(label)`` when
    the user switches one (the panel then asks the session to switch it)."""

    toggled = Signal(str)
    COLUMNS = 2

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buttons: dict[str, QToolButton] = {}
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(3)

    def set_labels(self, names: Sequence[str]) -> None:
        for button in self.buttons.values():
            self._grid.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        for i, name in enumerate(names):
            button = QToolButton()
            button.setText(f"{i + 1} {name}" if i < 9 else name)
            button.setCheckable(True)
            button.setToolTip(f"Switch {name} on or off in this row's corrected label set")
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            color = label_color(i)
            button.setStyleSheet(
                f"QToolButton {{ border: 1px solid {color.name()}; border-radius: 9px; "
                "padding: 1px 8px; }"
                f"QToolButton:checked {{ background: rgba({color.red()}, {color.green()}, "
                f"{color.blue()}, {CHIP_ALPHA}); font-weight: bold; }}"
            )
            button.clicked.connect(lambda _=False, name=name: self.toggled.emit(name))
            self._grid.addWidget(button, i // self.COLUMNS, i % self.COLUMNS)
            self.buttons[name] = button

    def set_checked(self, labels: Sequence[str]) -> None:
        """Check exactly ``labels``, without emitting ``toggled``."""
        for name, button in self.buttons.items():
            button.blockSignals(True)
            button.setChecked(name in labels)
            button.blockSignals(False)

    def checked(self) -> list[str]:
        return [name for name, button in self.buttons.items() if button.isChecked()]
