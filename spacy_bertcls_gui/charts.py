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
    With ``thresholds`` (a multi-label pipeline's, one per label) every label that reaches its
    threshold is bold, and each bar has a tick where its threshold is.
    """

    ROW_HEIGHT = 26

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: list[str] = []
        self._probs: np.ndarray | None = None
        self._thresholds: np.ndarray | None = None
        self._placeholder = "No prediction yet"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setMinimumHeight(self.ROW_HEIGHT * 2)

    def set_probabilities(
        self,
        labels: Sequence[str],
        probs: Sequence[float] | np.ndarray | None,
        placeholder: str = "No prediction yet",
        *,
        thresholds: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Show ``probs`` (one per label), or the ``placeholder`` text when None or all NaN;
        ``thresholds``: each label's decision threshold (multi-label)."""
        self._labels = list(labels)
        self._thresholds = None if thresholds is None else np.asarray(thresholds, dtype=float)
        values = None if probs is None else np.asarray(probs, dtype=float)
        if values is not None and (values.size == 0 or np.isnan(values).all()):
            values = None
        self._probs = values
        self._placeholder = placeholder
        self.setMinimumHeight(self._row_height() * max(2, len(self._labels)) + 8)
        self.updateGeometry()
        self.update()

    def probabilities(self) -> np.ndarray | None:
        return self._probs

    def sizeHint(self) -> QSize:
        return QSize(320, self._row_height() * max(2, len(self._labels)) + 8)

    def _row_height(self) -> int:
        """Rows get tighter for many labels, so a dozen still fit beside the table."""
        return self.ROW_HEIGHT if len(self._labels) <= 8 else self.ROW_HEIGHT - 6

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
        if self._thresholds is not None:
            strong = set(np.flatnonzero(np.nan_to_num(self._probs, nan=-1.0) >= self._thresholds))
        else:
            strong = {int(np.nanargmax(self._probs))}
        row_height = self._row_height()
        for i, label in enumerate(self._labels):
            top = 4 + i * row_height
            value = float(self._probs[i]) if i < len(self._probs) else float("nan")
            painter.setFont(bold if i in strong else self.font())
            painter.setPen(palette.color(palette.ColorRole.WindowText))
            text = metrics.elidedText(label, Qt.TextElideMode.ElideRight, label_width - 8)
            painter.drawText(
                QRectF(0, top, label_width - 8, row_height),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
            track = QRectF(bar_left, top + 5, bar_width, row_height - 10)
            painter.fillRect(track, palette.color(palette.ColorRole.AlternateBase))
            if not np.isnan(value):
                bar = QRectF(
                    track.left(),
                    track.top(),
                    track.width() * min(max(value, 0.0), 1.0),
                    track.height(),
                )
                painter.fillRect(bar, label_color(i))
            if self._thresholds is not None and i < len(self._thresholds):
                x = track.left() + track.width() * float(self._thresholds[i])
                painter.fillRect(QRectF(x - 1, top + 2, 2, row_height - 4),
                                 palette.color(palette.ColorRole.WindowText))  # fmt: skip
            painter.drawText(
                QRectF(bar_left + bar_width + 6, top, value_width, row_height),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                "" if np.isnan(value) else f"{value:.3f}",
            )
        painter.end()
