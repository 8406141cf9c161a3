"""Work that must not run on the UI thread: labeling a table, and one-off tasks.

``LabelWorker`` runs the core labeling loop (``spacy_bertcls.labeling.label_chunks``, as
``bertcls label`` does) with chunks sized to take a fraction of a second each, so a cancel
takes effect within a second, and hands every ``LabeledChunk`` to the table right away. ``Task``
runs any function on a thread pool and reports its result or exception by signal.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal
from spacy.language import Language

from spacy_bertcls.devices import CPU, use_device
from spacy_bertcls.labeling import LabelingCancelled, LabelProgress, label_chunks


class LabelWorker(QThread):
    """Labels ``texts`` (those of file ``rows``, from ``Session.labeling_input``) with ``nlp``
    on its own thread.

    Signals: ``chunk_ready(LabeledChunk)`` after every chunk, ``progress(done, total, rows_per_s,
    seconds_left)``, ``failed(exception, traceback_text)``. When ``run`` returns, ``state`` is
    ``"done"``, ``"cancelled"`` or ``"failed"`` and ``done_rows`` says how many rows were
    labeled; the rows of every emitted chunk stay labeled whatever the end. ``device``: the
    GPU the pipeline was loaded on, made this thread's current device (-1, the CPU: nothing
    to do).
    """

    chunk_ready = Signal(object)
    progress = Signal(int, int, float, float)
    failed = Signal(object, str)

    def __init__(
        self,
        nlp: Language,
        texts: list[str],
        rows: np.ndarray,
        *,
        nlp_lock: threading.Lock,
        target_seconds: float = 0.5,
        min_chunk: int = 16,
        max_chunk: int = 512,
        device: int = CPU,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._nlp = nlp
        self._device = device
        self._texts = texts
        self._rows = np.asarray(rows, dtype=np.int64)
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

    def _report(self, state: LabelProgress) -> None:
        left = float("nan") if state.seconds_left is None else state.seconds_left
        self.progress.emit(state.rows_done, len(self._rows), state.rows_per_second, left)

    def run(self) -> None:
        self.state = "running"
        started = time.perf_counter()
        try:
            if self._device != CPU:
                use_device(self._device)  # thinc and CuPy keep the current GPU per thread
            chunks = label_chunks(
                self._nlp,
                self._texts,
                self._rows,
                rows_total=len(self._rows),
                chunk_size=self._max_chunk,
                target_seconds=self._target_seconds,
                min_chunk_size=self._min_chunk,
                progress=self._report,
                should_stop=self._cancel.is_set,
            )
            while True:
                with self._lock:  # the Try panel predicts with the same pipeline
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                self.chunk_ready.emit(chunk)
                self.done_rows += len(chunk)
                self.elapsed = time.perf_counter() - started
            self.state = "done"
        except LabelingCancelled:
            self.state = "cancelled"
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


class JobWorker(QThread):
    """Runs one long core function, ``fn(progress=..., should_stop=...)``, on its own thread:
    an audit (``spacy_bertcls.session.run_audit``) or a retrain
    (``spacy_bertcls.retrain.retrain_pipeline``).

    Signals: ``progress_changed(report)`` with what the function reports, ``failed(exception,
    traceback_text)``. When ``run`` returns, ``state`` is ``"done"`` (``result`` holds the
    return value), ``"cancelled"`` (the function raised one of ``cancelled`` after ``cancel``)
    or ``"failed"``; ``elapsed`` is its wall time in seconds.
    """

    progress_changed = Signal(object)
    failed = Signal(object, str)

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        cancelled: tuple[type[BaseException], ...],
        parent: QObject | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(parent)
        self._fn = fn
        self._kwargs = kwargs
        self._cancelled = cancelled
        self._cancel = threading.Event()
        self.state = "idle"
        self.result: Any = None
        self.elapsed = 0.0

    def cancel(self) -> None:
        """Ask the function to stop at its next check (a chunk of texts, a training step)."""
        self._cancel.set()

    def run(self) -> None:
        self.state = "running"
        started = time.perf_counter()
        try:
            self.result = self._fn(
                **self._kwargs, progress=self.progress_changed.emit, should_stop=self._cancel.is_set
            )
            self.state = "done"
        except self._cancelled:
            self.state = "cancelled"
        except Exception as error:  # reported to the UI, which shows it
            self.state = "failed"
            self.failed.emit(error, traceback.format_exc())
        finally:
            self.elapsed = time.perf_counter() - started
