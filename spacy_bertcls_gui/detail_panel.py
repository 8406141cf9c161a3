"""The Details tab: the selected row's full text, its class probabilities, and its correction."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.session import Session

from .charts import ProbabilityChart
from .delegates import NO_CORRECTION


class DetailPanel(QWidget):
    """Shows one file row of a session; picking a label in ``corrected_label`` corrects it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = -1
        self._session: Session | None = None
        self.keys_label = QLabel("")
        self.keys_label.setWordWrap(True)
        self.keys_label.setTextFormat(Qt.TextFormat.RichText)
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
        self.correction_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
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
        layout.addWidget(self.keys_label)
        layout.addStretch(1)

    @property
    def row(self) -> int:
        return self._row

    def set_session(self, session: Session) -> None:
        """Show rows of ``session``, and follow its predictions and corrections."""
        self._session = session
        session.events.labels_changed.connect(self._on_labels_changed)
        session.events.table_reset.connect(self.clear)
        for event in (session.events.predictions_changed, session.events.corrections_changed):
            event.connect(self._on_rows_changed)

    def _on_labels_changed(self) -> None:
        labels = self._session.labels
        self.correction_combo.clear()
        self.correction_combo.addItem(NO_CORRECTION, "")
        for label in labels:
            self.correction_combo.addItem(label, label)
        keys = [f"<b>{i + 1}</b> {html.escape(label)}" for i, label in enumerate(labels[:9])]
        self.keys_label.setText(
            "Keys in the table: " + " · ".join(keys) + " · <b>A</b> accept prediction · "
            "<b>0</b> clear · <b>Ctrl+Z</b> undo"
            if labels
            else ""
        )
        self.clear()

    def _on_rows_changed(self, rows: np.ndarray) -> None:
        if self._row >= 0 and np.any(np.asarray(rows) == self._row):
            self.show_row(self._row)

    def show_row(self, row: int) -> None:
        """Show file ``row`` of the session (numbered as the table and the reports do)."""
        session = self._session
        if row < 0 or row >= len(session.frame):
            self.clear()
            return
        results = session.results
        labels = results.labels
        self._row = row
        trained = (
            " · ◆ the pipeline was trained on this text" if session.trained_rows()[row] else ""
        )
        self.row_label.setText(f"Row {session.row_number(row):,}{trained}")
        self.text_view.setPlainText(session.text(row))
        labeled = bool(results.labeled[row]) if labels else False
        predicted = results.label_of(int(results.predicted[row])) if labels else None
        if predicted is not None:
            confidence = float(results.confidence[row])
            self.predicted_value.setText(
                f"<b>{html.escape(predicted)}</b> (confidence {confidence:.3f})"
            )
        elif labeled:
            self.predicted_value.setText("— (empty text)")
        else:
            self.predicted_value.setText("not labeled yet")
        gold_column = session.gold_column
        gold = session.gold_label(row)
        self.gold_caption.setText(f"{gold_column}:" if gold_column else "gold:")
        self.gold_value.setText(gold if gold else "—")
        self.correction_combo.setEnabled(bool(labels))
        corrected = results.label_of(int(results.corrected[row])) if labels else None
        position = self.correction_combo.findData(corrected or "")
        self.correction_combo.setCurrentIndex(max(position, 0))
        placeholder = "Empty text: nothing to predict" if labeled else "Not labeled yet"
        probs = results.probs[row] if labeled else None
        self.chart.set_probabilities(labels, probs, placeholder)

    def clear(self) -> None:
        self._row = -1
        self.row_label.setText("Select a row in the table.")
        self.text_view.clear()
        self.predicted_value.setText("—")
        self.gold_value.setText("—")
        self.correction_combo.setEnabled(False)
        self.chart.set_probabilities([], None, "No row selected")

    def _on_correction(self, index: int) -> None:
        if self._row >= 0 and self._session is not None:
            self._session.correct([self._row], self.correction_combo.itemData(index) or None)
