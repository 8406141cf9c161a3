"""The Suspect labels view: rows whose gold label is probably wrong, most likely first.

A mixin of ``MainWindow``. View > Suspect Labels (or the filter bar's button) audits the gold
column once with the open pipeline's encoder (``spacy_bertcls.session.run_audit``, which runs
``spacy_bertcls.audit.audit_frame`` as ``bertcls audit`` does) in a ``JobWorker`` with the
status bar's progress bar and Cancel; the session then holds the audit's columns
(``suggested_label``, ``label_quality``, ``suspect_rank``, ...) beside the file's, and the
table shows only the suspect rows ranked by ``suspect_rank``. The analyst corrects them with
the table's usual keys (1-9, A, 0) or the context menu's Accept suggested_label.
"""

from __future__ import annotations

from spacy_bertcls.audit import AuditCancelled, AuditProgress
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.session.session import run_audit

from .labeling_run import format_seconds
from .workers import JobWorker


class SuspectsMixin:
    def is_running_job(self) -> bool:
        """True while an audit or a retrain runs (until its end has been handled)."""
        return self.job is not None

    def cancel_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.speed_label.setText("cancelling…")

    def show_suspect_labels(self) -> None:
        """Show the suspect rows of the last audit, or audit the gold column first."""
        self.views.setCurrentIndex(0)
        if self.session.audit is not None:
            self._show_suspects()
        else:
            self.start_audit()

    def start_audit(self) -> None:
        """Audit the gold column in the background, then show the suspect rows."""
        if self.is_busy():
            self._show_error("Busy", "Wait for the work running now, or cancel it, first.")
            return
        try:
            arguments = self.session.audit_input()
        except BertclsError as error:
            self._report_failure("Cannot look for suspect labels", error)
            return
        job = JobWorker(run_audit, cancelled=(AuditCancelled,), parent=self, **arguments)
        job.progress_changed.connect(self._on_audit_progress)
        job.failed.connect(lambda e, tb: self._report_failure("The audit failed", e, tb))
        job.finished.connect(self._on_audit_finished)
        message = f"Auditing the gold column {self.session.gold_column!r}"
        self._start_job(job, message, len(self.session.frame))

    def _start_job(self, job: JobWorker, message: str, total: int) -> None:
        self.job = job
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.progress.setFormat(message)
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.speed_label.setText("starting…")
        self.statusBar().showMessage(f"{message}…")
        job.start()
        self._update_actions()

    def _end_job(self) -> JobWorker:
        job, self.job = self.job, None
        self.progress.hide()
        self.cancel_button.hide()
        self.speed_label.setText("")
        self._update_actions()
        return job

    def _on_audit_progress(self, state: AuditProgress) -> None:
        total = state.rows_total or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(state.rows_done)
        self.progress.setFormat(f"encoding {state.rows_done:,} / {total:,} texts")
        left = float("nan") if state.seconds_left is None else state.seconds_left
        self.speed_label.setText(
            f"{state.rows_per_second:,.0f} texts/s · {format_seconds(left)} left"
        )

    def _on_audit_finished(self) -> None:
        job = self._end_job()
        if job.state == "cancelled":
            self.statusBar().showMessage("Audit cancelled; nothing changed", 10000)
        elif job.state == "done":
            try:
                self.session.set_audit(*job.result)
            except BertclsError as error:
                self._report_failure("Cannot show the audit", error)
            else:
                self._show_suspects()
        self._after_busy()

    def _show_suspects(self) -> None:
        summary = self.session.audit
        self.table_panel.clear_filters()
        rows = self.session.show_suspects()
        self.table_panel.show_sort_indicator("suspect_rank")
        self.table_panel.show_filter()
        if rows.size:
            self.table_panel.show_row(int(rows[0]))
        self.statusBar().showMessage(
            f"{rows.size:,} suspect labels of {summary.rows_audited:,} rows audited: "
            "most likely wrong first; suggested_label is the audit's guess",
            15000,
        )
