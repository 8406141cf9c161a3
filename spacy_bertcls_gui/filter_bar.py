"""The filter bar above the table: its widgets make a ``RowFilter`` for the session."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.session import ENTROPY, MARGIN, RowFilter

ALL = "(all)"


class FilterBar(QWidget):
    """Predicted label, gold label, wrong only, confidence range, search, corrected only.

    ``changed`` fires when the user changes any of them (the search after a short pause).
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label_filter = self._label_combo("Show only rows with this predicted_label")
        self.gold_filter = self._label_combo("Show only rows with this gold label")
        self.wrong_only = QCheckBox("wrong only")
        self.wrong_only.setToolTip("Show only rows whose predicted_label is not the gold label")
        self.confidence_min = QDoubleSpinBox()
        self.confidence_max = QDoubleSpinBox()
        for spin, value in ((self.confidence_min, 0.0), (self.confidence_max, 1.0)):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(value)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda _: self.changed.emit())
        self.confidence_min.setToolTip("Lowest confidence shown")
        self.confidence_max.setToolTip("Highest confidence shown")
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search text_column…")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.changed.emit)
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self.corrected_only = QCheckBox("corrected only")
        for box in (self.wrong_only, self.corrected_only):
            box.toggled.connect(lambda _: self.changed.emit())
        self.least_confident_button = QPushButton("Least sure first")
        self.least_confident_button.setToolTip(
            "Sort the rows the model is least sure of to the top (Ctrl+Shift+L), by:"
        )
        self.uncertainty = QComboBox()
        self.uncertainty.setToolTip(
            "confidence: lowest first · margin: top two probabilities closest first · "
            "entropy: most spread probabilities first"
        )
        for text, key in (("confidence", None), ("margin", MARGIN), ("entropy", ENTROPY)):
            self.uncertainty.addItem(text, key)
        self.suspects_button = QPushButton("Suspect labels")
        self.suspects_button.setToolTip(
            "Rows whose gold label is probably wrong, most likely first (Ctrl+Shift+U); the "
            "first time, audits the gold column"
        )
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.setToolTip("Show every row again (Ctrl+Shift+X)")

        # Two rows: in one, the search box was squeezed to nothing at 1280 pixels.
        which = QHBoxLayout()
        which.addWidget(QLabel("predicted:"))
        which.addWidget(self.label_filter)
        which.addWidget(QLabel("gold:"))
        which.addWidget(self.gold_filter)
        which.addWidget(self.wrong_only)
        which.addWidget(self.corrected_only)
        which.addSpacing(6)
        which.addWidget(QLabel("confidence:"))
        which.addWidget(self.confidence_min)
        which.addWidget(QLabel("to"))
        which.addWidget(self.confidence_max)
        which.addStretch(1)
        find = QHBoxLayout()
        self.search_edit.setMinimumWidth(200)
        find.addWidget(self.search_edit, 1)
        find.addWidget(self.least_confident_button)
        find.addWidget(self.uncertainty)
        find.addWidget(self.suspects_button)
        find.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(which)
        layout.addLayout(find)

    def _label_combo(self, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.setToolTip(tip)
        combo.addItem(ALL, None)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        combo.activated.connect(lambda _: self.changed.emit())
        return combo

    def set_labels(self, labels: Sequence[str], *, multi_label: bool = False) -> None:
        """Offer ``labels``; for a multi-label pipeline a label picks the rows whose label set
        has it."""
        if multi_label:
            self.label_filter.setToolTip("Show only rows whose predicted_labels include this label")
            self.gold_filter.setToolTip("Show only rows whose gold label set includes this label")
            self.wrong_only.setToolTip(
                "Show only rows whose predicted_labels are not exactly the gold label set"
            )
        else:
            self.label_filter.setToolTip("Show only rows with this predicted_label")
            self.gold_filter.setToolTip("Show only rows with this gold label")
            self.wrong_only.setToolTip("Show only rows whose predicted_label is not the gold label")
        for combo in (self.label_filter, self.gold_filter):
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(ALL, None)
            for label in labels:
                combo.addItem(label, label)
            combo.blockSignals(False)

    def set_gold_available(self, available: bool) -> None:
        self.gold_filter.setEnabled(available)
        self.wrong_only.setEnabled(available)

    def row_filter(self, current: RowFilter) -> RowFilter:
        """The filter the widgets say, keeping ``current``'s explicit row set."""
        low, high = self.confidence_min.value(), self.confidence_max.value()
        return current.copy(
            predicted_label=self.label_filter.currentData(),
            gold_label=self.gold_filter.currentData() if self.gold_filter.isEnabled() else None,
            wrong_only=self.wrong_only.isChecked() and self.wrong_only.isEnabled(),
            confidence_min=min(low, high),
            confidence_max=max(low, high),
            search=self.search_edit.text().strip(),
            corrected_only=self.corrected_only.isChecked(),
        )

    def show_filter(self, row_filter: RowFilter) -> None:
        """Set the widgets to ``row_filter`` without firing ``changed`` (e.g. a resumed
        session, or clearing)."""
        widgets = (
            self.label_filter, self.gold_filter, self.wrong_only, self.confidence_min,
            self.confidence_max, self.search_edit, self.corrected_only,
        )  # fmt: skip
        for widget in widgets:
            widget.blockSignals(True)
        for combo, value in (
            (self.label_filter, row_filter.predicted_label),
            (self.gold_filter, row_filter.gold_label),
        ):
            combo.setCurrentIndex(max(combo.findData(value), 0) if value else 0)
        self.wrong_only.setChecked(row_filter.wrong_only)
        self.confidence_min.setValue(row_filter.confidence_min)
        self.confidence_max.setValue(row_filter.confidence_max)
        self.search_edit.setText(row_filter.search)
        self.corrected_only.setChecked(row_filter.corrected_only)
        for widget in widgets:
            widget.blockSignals(False)
        self._search_timer.stop()
