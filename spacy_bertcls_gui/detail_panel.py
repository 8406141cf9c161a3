"""The Details tab: the selected row's full text, its class probabilities, and its correction.

For a multi-label pipeline the row's label set is shown as chips (``label_chips``, as the
table draws it) and corrected with one toggle button per label.

"Why this label?" highlights the words that pushed the predicted label up (orange) or down
(blue), as ``spacy_bertcls.explain`` scores them. The explanation is computed on the worker pool
once the selection has rested for a moment (scrolling through rows starts none), under the
pipeline's lock, and kept for the last rows shown.
"""

from __future__ import annotations

import html
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QSize, Qt, QThreadPool, QTimer
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.explain import Explanation, explain, explainable
from spacy_bertcls.session import Session
from spacy_bertcls.session.rows import corrected_column, predicted_column

from .charts import ProbabilityChart
from .delegates import NO_CORRECTION
from .label_chips import LabelChips, LabelSetEditor, surest_first
from .workers import TaskRunner

# How long the selection must rest on a row before its explanation is computed.
EXPLAIN_DELAY_MS = 300
# Explanations kept, for going back and forth between rows.
EXPLANATIONS_KEPT = 100
TOWARDS = (230, 90, 30)
AGAINST = (40, 110, 230)


class DetailPanel(QWidget):
    """Shows one file row of a session; picking a label in ``corrected_label`` corrects it."""

    def __init__(self, parent: QWidget | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._row = -1
        self._session: Session | None = None
        self._tasks = TaskRunner(pool or QThreadPool.globalInstance())
        # (row, text, label) -> explanation of the label for the text, the latest last.
        self._explanations: OrderedDict[tuple[int, str, str], Explanation] = OrderedDict()
        self._explain_request = 0
        self.why_button = QPushButton("Why this label?")
        self.why_button.setCheckable(True)
        self.why_button.setEnabled(False)
        self.why_button.setToolTip(
            "Highlight the words that pushed the predicted label up (orange) or down (blue)"
        )
        self.why_button.toggled.connect(self._on_why_toggled)
        self.why_label = QLabel("")
        self.why_label.setWordWrap(True)
        self.why_label.setTextFormat(Qt.TextFormat.RichText)
        self.explain_timer = QTimer(self)
        self.explain_timer.setSingleShot(True)
        self.explain_timer.setInterval(EXPLAIN_DELAY_MS)
        self.explain_timer.timeout.connect(self._explain_row)
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
        # Multi-label: the predicted set as chips, the corrected set as toggle buttons.
        self.predicted_chips = LabelChips()
        self.correction_set = LabelSetEditor()
        self.correction_set.toggled.connect(self._on_label_toggled)
        self.keep_prediction_button = QPushButton("Keep prediction")
        self.keep_prediction_button.setToolTip("Clear this row's correction (key 0 in the table)")
        self.keep_prediction_button.clicked.connect(self._on_keep_prediction)
        self.chart = ProbabilityChart()
        predicted_box = QHBoxLayout()
        predicted_box.setContentsMargins(0, 0, 0, 0)
        predicted_box.addWidget(self.predicted_chips, 1)
        predicted_box.addWidget(self.predicted_value)
        correction_box = QVBoxLayout()
        correction_box.setContentsMargins(0, 0, 0, 0)
        correction_box.addWidget(self.correction_combo)
        correction_box.addWidget(self.correction_set)
        correction_box.addWidget(self.keep_prediction_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.predicted_caption = QLabel("predicted_label:")
        self.corrected_caption = QLabel("corrected_label:")
        form = QFormLayout()
        form.addRow(self.predicted_caption, predicted_box)
        self.gold_caption = QLabel("gold:")
        form.addRow(self.gold_caption, self.gold_value)
        form.addRow(self.corrected_caption, correction_box)
        # In a scroll area: a dozen labels (chart, toggle buttons) are taller than 800 pixels.
        self._content = content = QWidget()
        self._scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout = QVBoxLayout(content)
        layout.addWidget(self.row_label)
        layout.addWidget(self.text_view, 1)
        layout.addWidget(self.why_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.why_label)
        layout.addLayout(form)
        layout.addWidget(QLabel("Class probabilities:"))
        layout.addWidget(self.chart)
        layout.addWidget(self.keys_label)
        layout.addStretch(1)

    def minimumSizeHint(self) -> QSize:
        """As wide as the content needs (it scrolls only up and down), as before the scroll area."""
        width = self._content.minimumSizeHint().width()
        return QSize(width + self._scroll.verticalScrollBar().sizeHint().width(), 120)

    @property
    def row(self) -> int:
        return self._row

    def set_session(self, session: Session) -> None:
        """Show rows of ``session``, and follow its predictions and corrections."""
        self._session = session
        session.events.labels_changed.connect(self._on_labels_changed)
        session.events.table_reset.connect(self.clear)
        session.events.pipeline_changed.connect(self._explanations.clear)
        for event in (session.events.predictions_changed, session.events.corrections_changed):
            event.connect(self._on_rows_changed)

    def _on_labels_changed(self) -> None:
        labels = self._session.labels
        multi_label = self._session.multi_label
        self.correction_combo.clear()
        self.correction_combo.addItem(NO_CORRECTION, "")
        for label in labels:
            self.correction_combo.addItem(label, label)
        self.correction_set.set_labels(labels)
        self.correction_combo.setVisible(not multi_label)
        self.correction_set.setVisible(multi_label)
        self.keep_prediction_button.setVisible(multi_label)
        self.predicted_chips.setVisible(multi_label)
        self.predicted_caption.setText(f"{predicted_column(multi_label)}:")
        self.corrected_caption.setText(f"{corrected_column(multi_label)}:")
        keys = [f"<b>{i + 1}</b> {html.escape(label)}" for i, label in enumerate(labels[:9])]
        what = "switch a label on or off" if multi_label else "correct"
        self.keys_label.setText(
            f"Keys in the table ({what}): " + " · ".join(keys) + " · <b>A</b> accept "
            "prediction · <b>0</b> clear · <b>Ctrl+Z</b> undo"
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
        if session.multi_label:
            self._show_label_sets(row, labeled and predicted is not None)
        elif predicted is not None:
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
        thresholds = session.rule.thresholds if session.multi_label else None
        self.chart.set_probabilities(labels, probs, placeholder, thresholds=thresholds)
        self._show_explanation()

    def _show_label_sets(self, row: int, predicted: bool) -> None:
        """A multi-label row: its predicted set as chips, its set as it stands (corrected,
        else predicted) in the toggle buttons."""
        results = self._session.results
        if predicted:
            codes = surest_first(np.flatnonzero(results.predicted_sets[row]), results.probs[row])
            self.predicted_chips.set_labels(results.labels, codes)
            confidence = float(results.confidence[row])
            self.predicted_value.setText(f"(confidence {confidence:.3f})")
        else:
            text = "— (empty text)" if results.labeled[row] else "not labeled yet"
            self.predicted_chips.set_labels(results.labels, None, text)
            self.predicted_value.setText("")
        current = results.current_sets(np.array([row]))[0]
        self.correction_set.set_checked([results.labels[j] for j in np.flatnonzero(current)])
        self.correction_set.setEnabled(True)
        self.keep_prediction_button.setEnabled(bool(results.corrected[row] >= 0))

    def _on_label_toggled(self, label: str) -> None:
        if self._row >= 0 and self._session is not None:
            self._session.toggle_label([self._row], label)

    def _on_keep_prediction(self) -> None:
        if self._row >= 0 and self._session is not None:
            self._session.correct([self._row], None)

    def clear(self) -> None:
        self._row = -1
        self.row_label.setText("Select a row in the table.")
        self.text_view.clear()
        self.predicted_value.setText("—")
        self.predicted_chips.set_labels([], None, "")
        self.gold_value.setText("—")
        self.correction_combo.setEnabled(False)
        self.correction_set.set_checked([])
        self.correction_set.setEnabled(False)
        self.keep_prediction_button.setEnabled(False)
        self.chart.set_probabilities([], None, "No row selected")
        self._show_explanation()

    def _on_correction(self, index: int) -> None:
        if self._row >= 0 and self._session is not None:
            self._session.correct([self._row], self.correction_combo.itemData(index) or None)

    # ------------------------------------------------------------- why this label

    def _explain_target(self) -> tuple[int, str, str] | None:
        """(row, text, predicted label) of the row shown, if it can be explained."""
        session = self._session
        if self._row < 0 or session is None or session.nlp is None or not explainable(session.nlp):
            return None
        label = session.results.predicted_label(self._row) if session.labels else None
        text = session.text(self._row)
        return (self._row, text, label) if label is not None and text.strip() else None

    def _show_explanation(self) -> None:
        """Highlight the row's words if asked to, from the kept explanations or (after the
        selection rests) a new one."""
        self._explain_request += 1  # an answer for another row is not shown
        self.explain_timer.stop()
        target = self._explain_target()
        self.why_button.setEnabled(target is not None)
        self.text_view.setExtraSelections([])
        if target is None or not self.why_button.isChecked():
            self.why_label.setText("")
            return
        explanation = self._explanations.get(target)
        if explanation is not None:
            self._explanations.move_to_end(target)
            self._highlight(explanation)
        else:
            self.why_label.setText("<span style='color:gray'>Finding the words…</span>")
            self.explain_timer.start()

    def _on_why_toggled(self, checked: bool) -> None:
        self._show_explanation()

    def _explain_row(self) -> None:
        target = self._explain_target()
        if target is None:
            return
        request = self._explain_request
        nlp, lock = self._session.nlp, self._session.nlp_lock
        _, text, label = target

        def run() -> Explanation:
            with lock:  # labeling and the Try panel use the same pipeline
                return explain(nlp, text, label)

        self._tasks.start(
            run,
            on_done=lambda explanation: self._on_explained(request, target, explanation),
            on_failed=lambda error, tb: self._on_explain_failed(request, error),
        )

    def _on_explained(
        self, request: int, target: tuple[int, str, str], explanation: Explanation
    ) -> None:
        self._explanations[target] = explanation
        while len(self._explanations) > EXPLANATIONS_KEPT:
            self._explanations.popitem(last=False)
        if request == self._explain_request and self.why_button.isChecked():
            self._highlight(explanation)

    def _on_explain_failed(self, request: int, error: BaseException) -> None:
        if request == self._explain_request:
            self.why_label.setText(f"Could not explain: {html.escape(str(error))}")

    def _highlight(self, explanation: Explanation) -> None:
        selections = []
        for token, weight in zip(explanation.tokens, explanation.normalized()):
            if abs(weight) < 0.05:
                continue
            red, green, blue = TOWARDS if weight > 0 else AGAINST
            selection = QTextEdit.ExtraSelection()
            selection.format = QTextCharFormat()
            selection.format.setBackground(QColor(red, green, blue, int(40 + 170 * abs(weight))))
            cursor = QTextCursor(self.text_view.document())
            cursor.setPosition(qt_position(explanation.text, token.start))
            cursor.setPosition(
                qt_position(explanation.text, token.end), QTextCursor.MoveMode.KeepAnchor
            )
            selection.cursor = cursor
            selections.append(selection)
        self.text_view.setExtraSelections(selections)
        words = ", ".join(html.escape(t.text) for t in explanation.top(5)) or "none"
        self.why_label.setText(
            f"Words for <b>{html.escape(explanation.label)}</b>: {words} "
            f"<span style='color:gray'>({explanation.method}, "
            f"{explanation.seconds:.1f} s)</span>"
        )


def qt_position(text: str, index: int) -> int:
    """Where character ``index`` of ``text`` is in a QPlainTextEdit showing it: Qt counts
    UTF-16 units (an emoji is two), and reads "\r\n" as one line break."""
    before = text[:index]
    return len(before.encode("utf-16-le")) // 2 - before.count("\r\n")
