"""Labeling and evaluating from the window: the worker, its progress bar and Cancel, what
happens when a run ends (sort on the new values, evaluate against the gold column), and the
Evaluation tab's requests, and the device labeling runs on (Label > Device). A mixin of
``MainWindow``; the labeling itself is ``spacy_bertcls.labeling.label_chunks`` run by
``LabelWorker``, the evaluation ``spacy_bertcls.session.run_evaluation`` run as a task; results
go to the session."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
from spacy.language import Language

from spacy_bertcls.devices import CPU, check_gpu, check_pipeline_device, use_device
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import MultiLabelResult
from spacy_bertcls.labeling import LabeledChunk
from spacy_bertcls.pipelines import PipelineInfo, load_pipeline, pipeline_info
from spacy_bertcls.session import Evaluation, run_evaluation

from .workers import LabelWorker

#: The settings key of the device chosen in Label > Device (-1 the CPU, as ``--device``).
DEVICE_KEY = "labeling/device"


@functools.cache
def cuda_devices() -> tuple[str, ...]:
    """The names of the CUDA GPUs torch sees (none without CUDA), numbered from 0."""
    import torch

    if not torch.cuda.is_available():
        return ()
    return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def device_name(device: int) -> str:
    if device == CPU:
        return "the CPU"
    names = cuda_devices()
    return f"GPU {device} ({names[device]})" if device < len(names) else f"GPU {device}"


def load_on_device(path: str | Path, device: int) -> tuple[Language, PipelineInfo]:
    """Load a pipeline to label on ``device``, in spaCy's order: choose the device, then load,
    so the weights go there (as ``bertcls label --device``). For a worker thread: thinc keeps
    the current device per thread, so it is chosen in the thread that loads."""
    use_device(device)
    nlp = load_pipeline(path)
    check_pipeline_device(nlp, device)
    return nlp, pipeline_info(nlp)


def format_seconds(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LabelingMixin:
    # ----------------------------------------------------------------- the device

    @property
    def device(self) -> int:
        """The device chosen in Label > Device: the CPU (-1) unless a GPU of this machine."""
        try:
            device = int(self.settings.value(DEVICE_KEY, CPU))
        except (TypeError, ValueError):
            return CPU
        return device if 0 <= device < len(cuda_devices()) else CPU

    def choose_device(self, device: int) -> None:
        """Label on ``device`` from the next pipeline loaded (spaCy puts a pipeline's weights
        on a device when it loads it); offers to reload the one loaded now."""
        try:
            check_gpu(device, option="Device", task="label")
        except BertclsError as error:
            self._report_failure("Cannot label on this device", error)
            self._show_device()
            return
        self.settings.setValue(DEVICE_KEY, device)
        self._show_device()
        session = self.session
        where = device_name(device)
        if session.nlp is None or device == self.pipeline_device:
            self.statusBar().showMessage(f"Labeling runs on {where}", 8000)
            return
        question = (
            f"The pipeline was loaded on {device_name(self.pipeline_device)}. A pipeline runs "
            f"on the device it was loaded on: reload {session.pipeline_path} on {where} now?"
        )
        if not self.is_busy() and self._ask("Reload the pipeline?", question):
            self.load_pipeline(session.pipeline_path)
        else:
            self.statusBar().showMessage(
                f"Pipelines loaded from now on run on {where}; the one loaded now stays on "
                f"{device_name(self.pipeline_device)}",
                10000,
            )

    def _show_device(self) -> None:
        action = self.device_actions.get(self.device)
        if action is not None:
            action.setChecked(True)

    # ----------------------------------------------------------------- labeling

    def is_labeling(self) -> bool:
        """True from Label until the run's end has been handled (its last chunk shown)."""
        return self._labeling

    def start_labeling(self) -> None:
        """Label the rows that have no prediction yet (all rows if every row has one)."""
        if self.is_labeling():
            return
        session = self.session
        if session.nlp is None:
            self._show_error("No pipeline", "Load a trained pipeline first (File > Open Pipeline).")
            return
        if session.file_path is None:
            self._show_error("No file", "Open a file to label first (File > Open File).")
            return
        rows = None
        if not session.results.unlabeled_rows().size:
            if not self._ask("Label again?", "Every row is labeled. Label all rows again?"):
                return
            rows = np.arange(len(session.frame))
        try:
            texts, rows = session.labeling_input(rows)
        except BertclsError as error:
            self._report_failure("Missing text column", error)
            return
        device = self.pipeline_device
        try:
            check_pipeline_device(session.nlp, device)
        except BertclsError as error:
            self._report_failure("Cannot label on this device", error)
            return
        worker = LabelWorker(session.nlp, texts, rows, nlp_lock=session.nlp_lock, device=device)
        worker.chunk_ready.connect(self._on_chunk)
        worker.progress.connect(self._on_progress)
        worker.failed.connect(lambda error, tb: self._report_failure("Labeling failed", error, tb))
        worker.finished.connect(self._on_labeling_finished)
        self.worker = worker
        self._labeling = True
        self.progress.setRange(0, len(rows))
        self.progress.setValue(0)
        self.progress.setFormat(f"0 / {len(rows):,} rows")  # Qt's %v / %m has no separators
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.speed_label.setText("starting…")
        on = f" on {device_name(device)}" if device != CPU else ""
        self.statusBar().showMessage(f"Labeling {len(rows):,} rows{on}…")
        self.last_run = {"rows": len(rows), "started": time.perf_counter()}
        worker.start()
        self._update_actions()

    def cancel_labeling(self) -> None:
        """Stop labeling after the current chunk; labeled rows are kept."""
        if self.is_labeling():
            assert self.worker is not None
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.speed_label.setText("cancelling…")

    def _on_chunk(self, chunk: LabeledChunk) -> None:
        self.session.apply_chunk(chunk)

    def _on_progress(self, done: int, total: int, rate: float, left: float) -> None:
        self.progress.setValue(done)
        self.progress.setFormat(f"{done:,} / {total:,} rows")
        self.speed_label.setText(f"{rate:,.0f} rows/s · {format_seconds(left)} left")

    def _on_labeling_finished(self) -> None:
        worker = self.worker
        if worker is None:
            return
        self._labeling = False
        self.progress.hide()
        self.cancel_button.hide()
        self.speed_label.setText("")
        self.session.refresh()  # sort and filter on the new values
        seconds = worker.elapsed
        rate = worker.done_rows / seconds if seconds > 0 else 0.0
        self.last_run.update(state=worker.state, done=worker.done_rows, seconds=seconds, rate=rate)
        left = len(self.session.results.unlabeled_rows())
        if worker.state == "done":
            message = f"Labeled {worker.done_rows:,} rows in {seconds:.1f} s ({rate:,.0f} rows/s)"
        elif worker.state == "cancelled":
            message = (
                f"Cancelled: kept the {worker.done_rows:,} rows labeled in this run; "
                f"{left:,} rows left (Label continues with them)"
            )
        else:
            message = f"Labeling stopped by an error; kept the {worker.done_rows:,} rows labeled"
        self.statusBar().showMessage(message, 15000)
        self._update_actions()
        self._update_status()
        self._show_row_details(self.table_panel.current_row())
        if worker.state == "done" and self.session.gold_column:
            self._run_message = message
            self.evaluate()
        self._after_busy()

    def _wait_for_worker(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()

    # ================================================================= evaluation

    def evaluate(self) -> None:
        """Score the labeled rows against the gold column in the background."""
        try:
            arguments = self.session.evaluation_input()
        except BertclsError as error:
            title = "No gold column" if self.session.gold_column is None else "Nothing labeled"
            self._show_error(title, str(error))
            return
        self.evaluation_panel.summary.setText("Evaluating…")
        self._run_task(
            "Evaluating",
            run_evaluation,
            *arguments,
            on_done=self.session.set_evaluation,
            failure_title="Could not evaluate",
        )

    @property
    def evaluation(self) -> Evaluation | None:
        return self.session.evaluation

    def _on_evaluation_changed(self) -> None:
        evaluation = self.session.evaluation
        self._update_actions()
        if evaluation is None:
            message = "Choose a gold column to evaluate."
            if self.session.gold_column:
                message = "Label the file, then click Evaluate."
            self.evaluation_panel.clear(message)
            return
        self.evaluation_panel.set_evaluation(evaluation, self.session)
        result = evaluation.result
        if isinstance(result, MultiLabelResult):
            message = (
                f"Evaluated {result.n_scored:,} rows: micro F1 {result.micro['f1']:.3f}, "
                f"subset accuracy {result.subset_accuracy:.3f}"
            )
        else:
            message = (
                f"Evaluated {result.n_evaluated:,} rows: accuracy {result.accuracy:.3f}, "
                f"macro F1 {result.macro['f1']:.3f}"
            )
        if self._run_message:  # the run that triggered this evaluation: keep its summary too
            message = f"{self._run_message} · {message}"
            self._run_message = ""
        self.statusBar().showMessage(message, 15000)

    def show_confusion_cell(self, gold_label: str, predicted_label: str) -> None:
        """Filter the table to exactly the rows of one confusion-matrix cell."""
        evaluation = self.session.evaluation
        if evaluation is None:
            return
        rows = evaluation.table_rows(gold_label, predicted_label)
        self.clear_filters()
        self.views.setCurrentIndex(0)
        self.set_row_filter(
            rows,
            f"{len(rows):,} rows with {evaluation.gold_column} = {gold_label} "
            f"and predicted_label = {predicted_label}",
        )
