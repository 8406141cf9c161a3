"""Label > Retrain: train the pipeline's head again with the corrections, as a new version.

``RetrainDialog`` says what will be trained (the pipeline's training corpus, found from its
config or chosen here, plus the corrected rows) and where the new version goes (a new folder
beside the pipeline: ``model-best-v2``, ...), runs ``spacy_bertcls.retrain.retrain_pipeline``
in a ``JobWorker`` with a progress bar and Cancel, and shows the scores before and after on
the dev split and on the file's gold column. "Use the new pipeline" switches the session to it
(the corrections stay); Label > Switch Back returns to the previous one (``RetrainMixin``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.retrain import (
    RetrainCancelled,
    RetrainProgress,
    RetrainResult,
    find_corpus,
    next_version_folder,
    retrain_pipeline,
)

from .labeling_run import load_on_device
from .workers import JobWorker

if TYPE_CHECKING:
    from .main_window import MainWindow

STAGE_TEXT = {
    "corpus": "merging the corrections into the training corpus",
    "score": "scoring",
    "initialize": "loading the encoder",
    "train": "training the head",
    "calibrate": "calibrating on the dev split",
}


class RetrainDialog(QDialog):
    """What a retrain uses, its progress, and its result (scores before and after)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Retrain with the corrections")
        self.setMinimumWidth(620)
        self.setMinimumHeight(420)  # the result table and its notes, without clipping
        self.job: JobWorker | None = None
        self.result: RetrainResult | None = None
        session = window.session
        pipeline = session.pipeline_path
        self.train: Path | None = find_corpus(pipeline, "train") if pipeline else None
        self.dev: Path | None = find_corpus(pipeline, "dev") if pipeline else None
        self.out = next_version_folder(pipeline) if pipeline else None

        self.pipeline_label = QLabel(str(pipeline))
        self.corrections_label = QLabel(f"{session.results.corrected_count():,} corrected rows")
        self.train_label, self.train_button = QLabel(), QPushButton("Choose…")
        self.dev_label, self.dev_button = QLabel(), QPushButton("Choose…")
        self.train_button.clicked.connect(lambda: self._choose_corpus("train"))
        self.dev_button.clicked.connect(lambda: self._choose_corpus("dev"))
        self.out_label = QLabel(str(self.out))
        for label in (self.pipeline_label, self.train_label, self.dev_label, self.out_label):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Pipeline:", self.pipeline_label)
        form.addRow("Corrections:", self.corrections_label)
        form.addRow("Training corpus:", _pair(self.train_label, self.train_button))
        form.addRow("Dev corpus:", _pair(self.dev_label, self.dev_button))
        form.addRow("New version:", self.out_label)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        self.result_label = QLabel(
            "The encoder stays frozen: only the head is trained, on features from the disk "
            "store when an earlier training or audit computed them. The pipeline folder is "
            "only read."
        )
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.start_button = QPushButton("Retrain")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use the new pipeline")
        self.use_button.setToolTip("Switch to the new version; the corrections stay")
        self.use_button.clicked.connect(self.use_new_pipeline)
        self.use_button.hide()
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.use_button, self.close_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label, 1)
        layout.addLayout(buttons)
        self._show_corpora()

    # ----------------------------------------------------------------- choosing

    def _show_corpora(self) -> None:
        for path, label in ((self.train, self.train_label), (self.dev, self.dev_label)):
            label.setText(str(path) if path else "not found from the pipeline's config: choose")
        self.start_button.setEnabled(self.job is None and self.result is None)
        self.cancel_button.setEnabled(False)

    def _choose_corpus(self, which: str) -> None:
        start = str((self.train or self.window_.session.pipeline_path or Path.cwd()).parent)
        path, _ = QFileDialog.getOpenFileName(
            self, f"Choose the {which} corpus", start, "spaCy corpora (*.spacy);;All files (*)"
        )
        if path:
            setattr(self, which, Path(path))
            self._show_corpora()

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        window = self.window_
        if window.is_busy():
            window._show_error("Busy", "Wait for the work running now, or cancel it, first.")
            return
        try:
            arguments = window.session.retrain_input()
        except BertclsError as error:
            window._report_failure("Cannot retrain", error)
            return
        job = JobWorker(
            retrain_pipeline,
            cancelled=(RetrainCancelled,),
            parent=self,
            out=self.out,
            train=self.train,
            dev=self.dev,
            **arguments,
        )
        job.progress_changed.connect(self._on_progress)
        job.failed.connect(lambda e, tb: window._report_failure("The retrain failed", e, tb))
        job.finished.connect(self._on_finished)
        self.job = job
        window.job = job  # the window is busy: no other pipeline or file meanwhile
        window._update_actions()
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self.progress.show()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.result_label.setText("Retraining…")
        job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling…")

    def _on_progress(self, state: RetrainProgress) -> None:
        text = STAGE_TEXT.get(state.stage, state.stage)
        if state.total:
            self.progress.setRange(0, state.total)
            self.progress.setValue(min(state.done, state.total))
            self.progress.setFormat(f"{text}: step {state.done:,} / {state.total:,}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(text)
        self.progress.setTextVisible(True)

    def _on_finished(self) -> None:
        job, self.job = self.job, None
        window = self.window_
        if window.job is job:
            window.job = None
        self.progress.hide()
        self.cancel_button.setEnabled(False)
        if job.state == "done":
            self.result = job.result
            window.last_retrain = {"seconds": job.elapsed, "result": job.result}
            self.result_label.setText(result_html(job.result, job.elapsed))
            self.use_button.show()
            self.use_button.setDefault(True)
            window.statusBar().showMessage(
                f"Retrained in {job.elapsed:.1f} s: {job.result.pipeline}", 15000
            )
        elif job.state == "cancelled":
            self.result_label.setText("Cancelled: nothing new was written.")
        else:
            self.result_label.setText("The retrain failed: nothing new was written.")
        self._show_corpora()
        window._update_actions()
        window._after_busy()

    def use_new_pipeline(self) -> None:
        if self.result is not None:
            self.window_.switch_pipeline_version(self.result.pipeline)
            self.accept()

    def reject(self) -> None:
        if self.job is not None:  # closing cancels; the window waits for the worker
            self.cancel()
            self.job.wait()
        super().reject()


def _pair(label: QLabel, button: QPushButton) -> QWidget:
    widget = QWidget()
    row = QHBoxLayout(widget)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(label, 1)
    row.addWidget(button)
    return widget


def result_html(result: RetrainResult, seconds: float) -> str:
    """The result as the dialog shows it: a table of scores before and after."""
    rows = []
    for what, before, after in (
        (f"dev split ({result.dev.name})", result.dev_before, result.dev_after),
        ("file's gold column", result.rows_before, result.rows_after),
    ):
        if before is None or after is None:
            continue
        rows.append(
            f"<tr><td>{html.escape(what)}</td><td align=right>{after.rows:,}</td>"
            f"<td align=right>{before.macro_f:.3f}</td><td align=right><b>{after.macro_f:.3f}"
            f"</b></td><td align=right>{before.accuracy:.3f}</td><td align=right><b>"
            f"{after.accuracy:.3f}</b></td></tr>"
        )
    notes = []
    if result.rows_trained_on:
        notes.append(
            f"{result.rows_trained_on:,} of the file's rows are in the training data now, so "
            "its scores flatter the model; the dev split's do not."
        )
    notes += [result.calibration] if result.calibration else []
    notes += result.notes
    return (
        f"<p><b>New version:</b> {html.escape(str(result.pipeline))}<br>"
        f"Trained in {seconds:.1f} s on {result.train_docs:,} texts, {result.relabeled:,} "
        f"relabeled and {result.added:,} added by corrections. "
        f"{html.escape(str(result.previous))} is unchanged.</p>"
        "<table cellspacing=6><tr><th align=left>scored on</th><th>rows</th>"
        "<th>macro F1 before</th><th>after</th><th>accuracy before</th><th>after</th></tr>"
        + "".join(rows)
        + "</table>"
        + "".join(f"<p style='color: gray'>{html.escape(note)}</p>" for note in notes)
    )


class RetrainMixin:
    def open_retrain_dialog(self) -> RetrainDialog | None:
        """Label > Retrain: the dialog, shown without blocking (tests drive it directly)."""
        if self.session.nlp is None or self.session.pipeline_path is None:
            self._show_error("No pipeline", "Load a trained pipeline first (File > Open Pipeline).")
            return None
        if not self.session.results.corrected_count():
            self._show_error(
                "No corrections",
                "Correct some rows first (View > Suspect Labels finds rows to check): a retrain "
                "trains on the pipeline's training data plus the corrected rows.",
            )
            return None
        self.retrain_dialog = RetrainDialog(self)
        self.retrain_dialog.show()
        return self.retrain_dialog

    def switch_pipeline_version(self, path: str | Path) -> None:
        """Use another version of the open pipeline (a retrained one, or the previous one):
        loaded in the background; the corrections stay."""
        path = Path(path)
        if self.is_busy():
            self._show_error("Busy", "Wait for the work running now, or cancel it, first.")
            return
        device = self.device

        def done(result: Any) -> None:
            self.pipeline_device = device
            self.session.switch_pipeline(path, *result)
            self.statusBar().showMessage(
                f"Using {path}; the corrections are kept. Label (Ctrl+L) to see its predictions",
                15000,
            )

        self._run_task(
            f"Loading pipeline {path}",
            load_on_device,
            path,
            device,
            on_done=done,
            failure_title="Could not load the pipeline",
        )

    def switch_back(self) -> None:
        """Label > Switch Back: the pipeline used before the current one."""
        if self.session.previous_pipelines:
            self.switch_pipeline_version(self.session.previous_pipelines[-1])
