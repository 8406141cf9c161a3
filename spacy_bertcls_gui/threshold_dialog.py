"""Label > Decision Threshold: move a label's decision threshold and see what it does first.

A non-modal dialog over the session: a label, a slider (with a spin box) for its threshold,
the live count from ``Session.threshold_preview`` ("N rows spam, M would change; on G gold rows
precision P, recall R") as the slider moves, and the label's precision-recall curve
(``Session.pr_curve``) with the chosen point on it. Apply is ``Session.set_threshold``: the
labeled rows change, and the pipeline in memory decides by it from then on (File > Save
Pipeline As keeps it). The preview is numpy on the labeled rows, cheap enough for every step of
the slider; the curve's point is redrawn when the slider stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.decisions import DEFAULT_THRESHOLD, DecisionRule
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.session import Session

if TYPE_CHECKING:
    from .main_window import MainWindow

#: The slider's steps: thresholds 0.01 … 0.99.
STEPS = 100
#: How long the slider must rest before the curve's point is redrawn (ms).
REDRAW_DELAY_MS = 150
ERROR_STYLE = "color: #c62828;"


def current_threshold(rule: DecisionRule, label: str) -> float:
    """The threshold ``label`` is decided by now: its own, or for two exclusive classes with
    the threshold on the other label the equivalent one (p(a) >= t means p(b) <= 1 - t);
    0.5 when the most probable label decides."""
    j = rule.labels.index(label)
    if not np.isnan(rule.thresholds[j]):
        return float(rule.thresholds[j])
    positive = rule.positive_label
    if positive is not None:
        return round(1.0 - rule.tuned[positive], 6)
    return DEFAULT_THRESHOLD


class ThresholdDialog(QDialog):
    """Choose a label's decision threshold with a live preview; ``applied(label, threshold,
    changed_rows)`` after Apply."""

    applied = Signal(str, float, int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Decision threshold")
        self.setModal(False)
        self._available = True
        self._error: str | None = None
        #: (id of the pipeline, message) when Apply was refused for it: not offered again.
        self._refused: tuple[int, str] | None = None

        self.label_combo = QComboBox()
        self.label_combo.setToolTip("The label whose threshold to set")
        self.label_combo.currentTextChanged.connect(self._on_label_chosen)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, STEPS - 1)
        self.slider.setPageStep(5)
        self.slider.setMinimumWidth(220)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(1 / STEPS, 1 - 1 / STEPS)
        self.spin.setSingleStep(1 / STEPS)
        self.spin.setDecimals(3)  # a tuned threshold (0.731) is shown as it is
        self.spin.setToolTip("The label applies when its probability reaches this value")
        self.slider.valueChanged.connect(lambda step: self.spin.setValue(step / STEPS))
        self.slider.sliderReleased.connect(self._draw_point)
        self.spin.valueChanged.connect(self._on_value_changed)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.slider, 1)
        threshold_row.addWidget(self.spin)

        self.rule_label = QLabel()  # how the pipeline decides now
        self.rule_label.setWordWrap(True)
        self.preview_label = QLabel()
        self.preview_label.setWordWrap(True)
        self.preview_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.preview_label.font()
        font.setBold(True)
        self.preview_label.setFont(font)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        self.figure = Figure(figsize=(4.6, 3.4), layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(360, 270)
        self._point: Any = None  # the marker of the chosen threshold on the curve
        self.redraw_timer = QTimer(self)
        self.redraw_timer.setSingleShot(True)
        self.redraw_timer.setInterval(REDRAW_DELAY_MS)
        self.redraw_timer.timeout.connect(self._draw_point)
        # Session events while the dialog is open (labeling more rows, another gold column,
        # another pipeline) refresh it once they settle.
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(200)
        self.refresh_timer.timeout.connect(self.refresh)
        events = session.events
        for event in (events.pipeline_changed, events.columns_changed, events.table_reset):
            event.connect(self._schedule_refresh)
        events.predictions_changed.connect(lambda rows: self._schedule_refresh())

        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip(
            "Decide the label by this threshold: the labeled rows change, and so does the "
            "pipeline in memory (File > Save Pipeline As keeps it)"
        )
        self.apply_button.clicked.connect(self.apply)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.apply_button, QDialogButtonBox.ButtonRole.ApplyRole)
        buttons.rejected.connect(self.close)

        form = QFormLayout()
        form.addRow("Label:", self.label_combo)
        form.addRow("Threshold:", threshold_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.rule_label)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(buttons)
        self.resize(600, 600)
        self.refresh()

    # ----------------------------------------------------------------- state

    @property
    def label(self) -> str:
        return self.label_combo.currentText()

    @property
    def threshold(self) -> float:
        return round(self.spin.value(), 3)

    def set_available(self, available: bool) -> None:
        """Whether Apply may run now (not while labeling or a background task runs)."""
        self._available = available
        self._update_apply()

    def set_label(self, label: str) -> None:
        self.label_combo.setCurrentText(label)

    def set_threshold(self, threshold: float) -> None:
        """Move the slider and the spin box as the user would."""
        self.spin.setValue(threshold)

    def refresh(self) -> None:
        """Take the session's labels, rule and rows again, keeping the label and the value
        chosen when they still apply."""
        self.refresh_timer.stop()
        labels = self.session.labels if self.session.nlp is not None else []
        shown = [self.label_combo.itemText(i) for i in range(self.label_combo.count())]
        if labels != shown:
            self.label_combo.blockSignals(True)
            self.label_combo.clear()
            self.label_combo.addItems(labels)
            self.label_combo.setCurrentIndex(self._default_label_index(labels))
            self.label_combo.blockSignals(False)
            self._on_label_chosen(self.label)
        else:
            self._draw_curve()
            self._update_preview()

    def _default_label_index(self, labels: list[str]) -> int:
        """The label with a tuned threshold, if any: the one being worked on."""
        try:
            tuned = self.session.rule.tuned
        except BertclsError:
            return 0
        return next((i for i, label in enumerate(labels) if label in tuned), 0)

    def _schedule_refresh(self) -> None:
        if self.isVisible():
            self.refresh_timer.start()

    def showEvent(self, event: Any) -> None:
        self.refresh()
        super().showEvent(event)

    # ----------------------------------------------------------------- reacting

    def _on_label_chosen(self, label: str) -> None:
        if not label:
            self._show_error("Load a pipeline and label some rows first.")
            self._draw_curve()
            return
        try:
            start = current_threshold(self.session.rule, label)
        except BertclsError as error:
            start = DEFAULT_THRESHOLD
            self._show_error(str(error))
        self.spin.blockSignals(True)
        self.spin.setValue(start)
        self.spin.blockSignals(False)
        self._sync_slider()
        self._draw_curve()
        self._update_preview()

    def _on_value_changed(self, value: float) -> None:
        self._sync_slider()
        self._update_preview()
        if self.slider.isSliderDown():
            self.redraw_timer.start()  # the point follows once the slider rests
        else:
            self._draw_point()

    def _sync_slider(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(self.spin.value() * STEPS)))
        self.slider.blockSignals(False)

    def _update_preview(self) -> None:
        session = self.session
        label = self.label
        if not label:
            return
        try:
            self.rule_label.setText(f"Now: {session.rule.describe()}")
            if self._refused is not None and self._refused[0] == id(session.nlp):
                raise BertclsError(self._refused[1])
            if not session.results.labeled_count():
                raise BertclsError("Label some rows first: the preview counts the labeled rows.")
            preview = session.threshold_preview(label, self.threshold)
        except BertclsError as error:
            self._show_error(str(error))
            return
        self._error = None
        self.error_label.hide()
        self.preview_label.setText(preview.format())
        self.preview_label.show()
        self._update_apply()

    def _show_error(self, message: str) -> None:
        self._error = message
        self.error_label.setText(message)
        self.error_label.show()
        self.preview_label.hide()
        self._update_apply()

    def _update_apply(self) -> None:
        usable = self._error is None
        self.apply_button.setEnabled(usable and self._available)
        self.slider.setEnabled(usable)
        self.spin.setEnabled(usable)

    # ----------------------------------------------------------------- the curve

    def _draw_curve(self) -> None:
        """The label's precision-recall curve over the labeled rows with a gold label."""
        axes = self.axes
        axes.clear()
        self._point = None
        curve = None
        why = (
            "No precision-recall curve: it needs a gold column\n"
            "with labeled rows of this label and of others."
        )
        if self.label and self.session.nlp is not None:
            try:
                curve = self.session.pr_curve(self.label)
            except (BertclsError, ValueError) as error:
                # ValueError: scikit-learn refusing the scores (e.g. NaN of rows without text);
                # shown where the curve would be rather than raised out of a Qt slot.
                why = f"No precision-recall curve: {error}"
        if curve is None:
            axes.set_axis_off()
            axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True, transform=axes.transAxes)
            self.canvas.draw_idle()
            return
        precision, recall, _ = curve
        axes.set_axis_on()
        axes.plot(recall, precision, color="#1f77b4", linewidth=1.6, drawstyle="steps-post")
        axes.set_xlim(0, 1.02)
        axes.set_ylim(0, 1.02)
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_title(f"{self.label}: precision and recall at every threshold", fontsize=10)
        axes.grid(True, alpha=0.3)
        try:
            now = current_threshold(self.session.rule, self.label)
        except BertclsError:
            now = None
        where = None if now is None else self._pr_point(now)
        if where is not None:  # the threshold the pipeline decides by now, hollow
            axes.plot(
                *where, "o", markersize=10, markerfacecolor="none", markeredgecolor="#555555",
                markeredgewidth=1.5, zorder=3,
                label=f"now {now:.3g}: precision {where[1]:.3f}, recall {where[0]:.3f}",
            )  # fmt: skip
        (self._point,) = axes.plot([], [], "o", color="#d62728", markersize=8, zorder=4)
        self._draw_point()

    def _pr_point(self, threshold: float) -> tuple[float, float] | None:
        """(recall, precision) of the label at ``threshold``, None where either is undefined."""
        try:
            preview = self.session.threshold_preview(self.label, threshold)
        except BertclsError:
            return None
        if preview.recall is None or preview.precision is None:
            return None
        return preview.recall, preview.precision

    def _draw_point(self) -> None:
        """Mark (recall, precision) of the chosen threshold on the curve."""
        self.redraw_timer.stop()
        if self._point is None:
            return
        where = self._pr_point(self.threshold) if self._error is None and self.label else None
        if where is None:
            self._point.set_data([], [])
            self._point.set_label("_none")  # no legend entry
        else:
            self._point.set_data([where[0]], [where[1]])
            self._point.set_label(
                f"{self.threshold:.3g}: precision {where[1]:.3f}, recall {where[0]:.3f}"
            )
        legend = self.axes.get_legend()
        if legend is not None:
            legend.remove()
        if any(not line.get_label().startswith("_") for line in self.axes.get_lines()):
            self.axes.legend(loc="lower left", fontsize=9)
        self.canvas.draw_idle()

    def point(self) -> tuple[float, float] | None:
        """(recall, precision) of the marked point, or None (for tests)."""
        if self._point is None or not len(self._point.get_xdata()):
            return None
        return float(self._point.get_xdata()[0]), float(self._point.get_ydata()[0])

    # ----------------------------------------------------------------- applying

    def apply(self) -> int | None:
        """``Session.set_threshold`` with the chosen label and value; rows changed, or None
        when the session refused (its message is shown here)."""
        if not self.apply_button.isEnabled():
            return None
        label, threshold = self.label, self.threshold
        try:
            changed = self.session.set_threshold(label, threshold)
        except BertclsError as error:
            self._refused = (id(self.session.nlp), str(error))
            self._show_error(str(error))
            return None
        self.refresh()
        self.applied.emit(label, threshold, changed)
        return changed


def show_threshold_dialog(window: MainWindow) -> ThresholdDialog:
    """Open (or raise) the window's threshold dialog; Apply reports in the status bar and
    evaluates again when there is a gold column."""
    dialog = window.threshold_dialog
    if dialog is None:
        dialog = ThresholdDialog(window.session, window)
        dialog.applied.connect(lambda *args: _applied(window, *args))
        window.threshold_dialog = dialog
        window._update_actions()
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def _applied(window: MainWindow, label: str, threshold: float, changed: int) -> None:
    message = f"Decision threshold of {label} set to {threshold:g}: {changed:,} rows changed label"
    window.statusBar().showMessage(message, 15000)
    if window.session.gold_column and not window.is_busy():
        window._run_message = message  # kept in the evaluation's status message
        window.evaluate()
