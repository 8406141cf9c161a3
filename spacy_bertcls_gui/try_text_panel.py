"""The Try a text tab: type or paste a text and see the pipeline's probabilities at once.

Typing restarts a 250 ms timer; when it fires, the text is classified on the worker pool (a
BERT forward pass for one text takes tens of milliseconds on a CPU, longer while a labeling
run holds the pipeline), and only the answer for the latest text is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from .charts import ProbabilityChart
from .workers import TaskRunner

DEBOUNCE_MS = 250

Predictor = Callable[[str], np.ndarray]


class TryTextPanel(QWidget):
    """``result_shown(text, probs)`` is emitted when a prediction reaches the chart."""

    result_shown = Signal(str, object)
    failed = Signal(object, str)

    def __init__(self, pool: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._predictor: Predictor | None = None
        self._labels: list[str] = []
        self._request = 0
        self._tasks = TaskRunner(pool)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Type or paste a text to classify it…")
        self.editor.textChanged.connect(self._schedule)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._predict)
        self.chart = ProbabilityChart()
        self.chart.set_probabilities([], None, "Load a pipeline, then type a text")
        self.result_label = QLabel("")
        self.editor.setMinimumHeight(80)
        self.editor.setMaximumHeight(220)
        layout = QVBoxLayout(self)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.result_label)
        layout.addWidget(self.chart)
        layout.addStretch(1)
        self.last_seconds: float | None = None

    def set_predictor(self, predictor: Predictor | None, labels: Sequence[str]) -> None:
        self._predictor = predictor
        self._labels = list(labels)
        self.chart.set_probabilities(self._labels, None, "Type a text to classify it")
        if self.editor.toPlainText().strip():
            self._schedule()

    def busy(self) -> bool:
        return self._tasks.busy() or self.timer.isActive()

    def _schedule(self) -> None:
        self.timer.start()

    def _predict(self) -> None:
        text = self.editor.toPlainText()
        if self._predictor is None:
            return
        if not text.strip():
            self.chart.set_probabilities(self._labels, None, "Type a text to classify it")
            self.result_label.setText("")
            return
        self._request += 1
        request = self._request
        predictor = self._predictor

        def timed(text: str = text) -> tuple[np.ndarray, float]:
            started = time.perf_counter()
            probs = predictor(text)
            return probs, time.perf_counter() - started

        self._tasks.start(
            timed,
            on_done=lambda result, r=request, t=text: self._on_done(r, t, result),
            on_failed=lambda error, tb, r=request: self._on_failed(r, error, tb),
        )

    def _on_done(self, request: int, text: str, result: tuple[np.ndarray, float]) -> None:
        if request != self._request:
            return  # the user typed on; a newer answer is coming
        probs, seconds = result
        self.last_seconds = seconds
        self.chart.set_probabilities(self._labels, probs, "Empty text: nothing to predict")
        if np.isnan(probs).all():
            self.result_label.setText("")
        else:
            best = int(np.nanargmax(probs))
            self.result_label.setText(
                f"predicted_label: <b>{self._labels[best]}</b>, confidence {probs[best]:.3f} "
                f"<span style='color:gray'>({seconds * 1000:.0f} ms)</span>"
            )
        self.result_shown.emit(text, probs)

    def _on_failed(self, request: int, error: Exception, tb: str) -> None:
        if request == self._request:
            self.failed.emit(error, tb)
