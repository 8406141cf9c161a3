"""Painted pictures of probabilities: one color per label and a bar chart of one text's classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

# matplotlib's tab10, so the app's bars match the report's plots.
_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def label_color(index: int) -> QColor:
    """The color of the label at ``index`` in the pipeline's labels."""
    return QColor(_PALETTE[index % len(_PALETTE)])


class ProbabilityChart(QWidget):
    """Horizontal bars, one per label, with the probability written next to each bar.

    The predicted (highest) label is drawn in bold. With no probabilities it shows a hint.
    """

    ROW_HEIGHT = 26

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: list[str] = []
        self._probs: np.ndarray | None = None
        self._placeholder = "No prediction yet"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setMinimumHeight(self.ROW_HEIGHT * 2)

    def set_probabilities(
        self,
        labels: Sequence[str],
        probs: Sequence[float] | np.ndarray | None,
        placeholder: str = "No prediction yet",
    ) -> None:
        """Show ``probs`` (one per label), or the ``placeholder`` text when None or all NaN."""
        self._labels = list(labels)
        values = None if probs is None else np.asarray(probs, dtype=float)
        if values is not None and (values.size == 0 or np.isnan(values).all()):
            values = None
        self._probs = values
        self._placeholder = placeholder
        self.setMinimumHeight(self.ROW_HEIGHT * max(2, len(self._labels)) + 8)
        self.updateGeometry()
        self.update()

    def probabilities(self) -> np.ndarray | None:
        return self._probs

    def sizeHint(self) -> QSize:
        return QSize(320, self.ROW_HEIGHT * max(2, len(self._labels)) + 8)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        if self._probs is None or not self._labels:
            painter.setPen(palette.color(palette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        bold = self.font()
        bold.setBold(True)
        metrics = QFontMetrics(bold)  # the predicted label is bold: measure the wider font
        label_width = min(max(metrics.horizontalAdvance(label) for label in self._labels) + 14, 220)
        value_width = metrics.horizontalAdvance("0.000") + 12
        bar_left = label_width
        bar_width = max(self.width() - label_width - value_width - 4, 10)
        best = int(np.nanargmax(self._probs))
        for i, label in enumerate(self._labels):
            top = 4 + i * self.ROW_HEIGHT
            value = float(self._probs[i]) if i < len(self._probs) else float("nan")
            painter.setFont(bold if i == best else self.font())
            painter.setPen(palette.color(palette.ColorRole.WindowText))
            text = metrics.elidedText(label, Qt.TextElideMode.ElideRight, label_width - 8)
            painter.drawText(
                QRectF(0, top, label_width - 8, self.ROW_HEIGHT),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
            track = QRectF(bar_left, top + 5, bar_width, self.ROW_HEIGHT - 10)
            painter.fillRect(track, palette.color(palette.ColorRole.AlternateBase))
            if not np.isnan(value):
                bar = QRectF(
                    track.left(),
                    track.top(),
                    track.width() * min(max(value, 0.0), 1.0),
                    track.height(),
                )
                painter.fillRect(bar, label_color(i))
            painter.drawText(
                QRectF(bar_left + bar_width + 6, top, value_width, self.ROW_HEIGHT),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                "" if np.isnan(value) else f"{value:.3f}",
            )
        painter.end()
