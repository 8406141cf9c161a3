"""Work that must not run on the UI thread: labeling a table, and one-off tasks.

``LabelWorker`` labels rows in chunks sized to take a fraction of a second each, so a cancel
takes effect within a second and every finished chunk reaches the table right away. ``Task``
runs any function on a thread pool and reports its result or exception by signal.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal
from spacy.language import Language

from spacy_bertcls.labeling import CONFIDENCE, PREDICTED_LABEL, label_frame, prob_column

from .table_model import ChunkResult


def chunk_result(labeled: pd.DataFrame, rows: np.ndarray, labels: Sequence[str]) -> ChunkResult:
    """Turn ``label_frame``'s output columns into the arrays the table model keeps."""
    probs = labeled[[prob_column(label) for label in labels]].to_numpy(dtype=float, na_value=np.nan)
    names = labeled[PREDICTED_LABEL].astype(object).where(labeled[PREDICTED_LABEL].notna(), None)
    predicted = pd.Index(list(labels)).get_indexer(names.to_numpy(dtype=object))
    empty = np.isnan(probs).all(axis=1) if probs.size else np.ones(len(rows), dtype=bool)
    predicted = np.where(empty, -1, predicted).astype(np.int64)
    confidence = pd.to_numeric(labeled[CONFIDENCE], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    return ChunkResult(rows=rows, predicted=predicted, confidence=confidence, probs=probs)


class LabelWorker(QThread):
    """Labels ``rows`` of ``texts`` with ``nlp`` on its own thread.

    Signals: ``chunk_ready(ChunkResult)`` after every chunk, ``progress(done, total, rows_per_s,
    seconds_left)``, ``failed(exception, traceback_text)``. When ``run`` returns, ``state`` is
    ``"done"``, ``"cancelled"`` or ``"failed"`` and ``done_rows`` says how many rows were
    labeled; the rows of every emitted chunk stay labeled whatever the end.
    """

    chunk_ready = Signal(object)
    progress = Signal(int, int, float, float)
    failed = Signal(object, str)

    def __init__(
        self,
        nlp: Language,
        texts: pd.Series,
        rows: np.ndarray,
        labels: Sequence[str],
        *,
        text_column: str,
        nlp_lock: threading.Lock,
        target_seconds: float = 0.5,
        min_chunk: int = 16,
        max_chunk: int = 512,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._nlp = nlp
        self._texts = texts
        self._rows = np.asarray(rows, dtype=np.int64)
        self._labels = list(labels)
        self._text_column = text_column
        self._lock = nlp_lock
        self._target_seconds = target_seconds
        self._min_chunk = min_chunk
        self._max_chunk = max_chunk
        self._cancel = threading.Event()
        self.state = "idle"
        self.done_rows = 0
        self.elapsed = 0.0

    @property
    def total_rows(self) -> int:
        return len(self._rows)

    def cancel(self) -> None:
        """Stop after the chunk in progress (a fraction of a second); its rows are kept."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        self.state = "running"
        total = len(self._rows)
        started = time.perf_counter()
        size = self._min_chunk * 2
        try:
            while self.done_rows < total:
                if self._cancel.is_set():
                    self.state = "cancelled"
                    return
                rows = self._rows[self.done_rows : self.done_rows + size]
                chunk = pd.DataFrame(
                    {self._text_column: self._texts.iloc[rows].to_numpy(dtype=object)}
                )
                chunk_started = time.perf_counter()
                with self._lock:
                    labeled = label_frame(
                        self._nlp,
                        chunk,
                        text_column=self._text_column,
                        batch_size=min(len(rows), 256),
                    )
                seconds = time.perf_counter() - chunk_started
                self.chunk_ready.emit(chunk_result(labeled, rows, self._labels))
                self.done_rows += len(rows)
                self.elapsed = time.perf_counter() - started
                rate = self.done_rows / self.elapsed if self.elapsed > 0 else 0.0
                left = (total - self.done_rows) / rate if rate > 0 else float("nan")
                self.progress.emit(self.done_rows, total, rate, left)
                per_row = seconds / max(len(rows), 1)
                wanted = int(self._target_seconds / per_row) if per_row > 0 else self._max_chunk
                # Grow gently (the first chunks include warm-up), shrink at once.
                size = max(self._min_chunk, min(self._max_chunk, wanted, size * 2))
            self.state = "done"
        except Exception as error:  # reported to the UI, which shows it and keeps the rows done
            self.state = "failed"
            self.failed.emit(error, traceback.format_exc())
        finally:
            self.elapsed = time.perf_counter() - started


class TaskSignals(QObject):
    """Signals of one :class:`Task`; created on the UI thread so they are delivered there."""

    done = Signal(object)
    failed = Signal(object, str)


class Task(QRunnable):
    """Runs ``fn(*args, **kwargs)`` on a thread pool; ``signals.done(result)`` or
    ``signals.failed(exception, traceback_text)`` arrive on the UI thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.signals = TaskSignals()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.setAutoDelete(False)

    def run(self) -> None:
        try:
            result = self._fn(*self._args, **self._kwargs)
        except Exception as error:
            self.signals.failed.emit(error, traceback.format_exc())
        else:
            self.signals.done.emit(result)


class TaskRunner:
    """Starts :class:`Task` s on a pool and keeps each alive until the pool is done with it.

    A task is referenced until its result has been handled, and then until the pool has no
    running thread: dropping the last reference while the pool thread is still returning from
    ``run`` would free the runnable under it.
    """

    def __init__(self, pool: QThreadPool) -> None:
        self._pool = pool
        self._running: dict[int, Task] = {}
        self._retired: list[Task] = []
        self._counter = 0

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        on_failed: Callable[[BaseException, str], None],
        **kwargs: Any,
    ) -> int:
        """Run ``fn(*args, **kwargs)``; ``on_done(result)`` or ``on_failed(error, traceback)``
        then runs on the UI thread. Returns the task's number."""
        self._counter += 1
        key = self._counter
        task = Task(fn, *args, **kwargs)
        self._running[key] = task
        task.signals.done.connect(lambda result: self._finish(key, on_done, result))
        task.signals.failed.connect(lambda error, tb: self._finish(key, on_failed, error, tb))
        self._pool.start(task)
        return key

    def busy(self) -> bool:
        return bool(self._running)

    def _finish(self, key: int, callback: Callable[..., None], *args: Any) -> None:
        task = self._running.pop(key, None)
        if task is not None:
            self._retired.append(task)
        if self._pool.activeThreadCount() == 0:
            self._retired.clear()
        callback(*args)
