"""The Details tab: the selected row's full text, its class probabilities, and its correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from .charts import ProbabilityChart
from .delegates import NO_CORRECTION


class DetailPanel(QWidget):
    """Shows one file row. Picking a label in ``corrected_label`` emits ``correction_chosen``."""

    correction_chosen = Signal(int, str)  # file row, label ("" clears the correction)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = -1
        self.row_label = QLabel("Select a row in the table.")
        self.text_view = QPlainTextEdit()
        self.text_view.setReadOnly(True)
        self.text_view.setPlaceholderText("The full text of the selected row")
        self.text_view.setMinimumHeight(80)
        self.text_view.setMaximumHeight(260)
        self.predicted_value = QLabel("—")
        self.gold_value = QLabel("—")
        self.correction_combo = QComboBox()
        self.correction_combo.setEnabled(False)
        self.correction_combo.activated.connect(self._on_correction)
        self.chart = ProbabilityChart()
        form = QFormLayout()
        form.addRow("predicted_label:", self.predicted_value)
        self.gold_caption = QLabel("gold:")
        form.addRow(self.gold_caption, self.gold_value)
        form.addRow("corrected_label:", self.correction_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(self.row_label)
        layout.addWidget(self.text_view, 1)
        layout.addLayout(form)
        layout.addWidget(QLabel("Class probabilities:"))
        layout.addWidget(self.chart)
        layout.addStretch(1)

    @property
    def row(self) -> int:
        return self._row

    def set_labels(self, labels: Sequence[str]) -> None:
        self.correction_combo.clear()
        self.correction_combo.addItem(NO_CORRECTION, "")
        for label in labels:
            self.correction_combo.addItem(label, label)

    def show_row(
        self,
        row: int,
        text: str,
        labels: Sequence[str],
        probs: np.ndarray | None,
        predicted: str | None,
        confidence: float,
        labeled: bool,
        corrected: str | None,
        gold: str | None,
        gold_column: str | None = None,
    ) -> None:
        """Show file row ``row`` (0-based; shown 1-based like the table's row numbers)."""
        self._row = row
        self.row_label.setText(f"Row {row + 1}")
        self.text_view.setPlainText(text)
        if predicted is not None:
            self.predicted_value.setText(f"<b>{predicted}</b> (confidence {confidence:.3f})")
        elif labeled:
            self.predicted_value.setText("— (empty text)")
        else:
            self.predicted_value.setText("not labeled yet")
        self.gold_caption.setText(f"{gold_column}:" if gold_column else "gold:")
        self.gold_value.setText(gold if gold else "—")
        self.correction_combo.setEnabled(bool(labels))
        position = self.correction_combo.findData(corrected or "")
        self.correction_combo.setCurrentIndex(max(position, 0))
        placeholder = "Empty text: nothing to predict" if labeled else "Not labeled yet"
        self.chart.set_probabilities(labels, probs if labeled else None, placeholder)

    def clear(self) -> None:
        self._row = -1
        self.row_label.setText("Select a row in the table.")
        self.text_view.clear()
        self.predicted_value.setText("—")
        self.gold_value.setText("—")
        self.correction_combo.setEnabled(False)
        self.chart.set_probabilities([], None, "No row selected")

    def _on_correction(self, index: int) -> None:
        if self._row >= 0:
            self.correction_chosen.emit(self._row, self.correction_combo.itemData(index) or "")
