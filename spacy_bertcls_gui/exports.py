"""Writing the session's work out: the labeled table, the rows to review, corrections as
training data, the evaluation report, the pipeline with the thresholds set here, and session
files (save and reopen). A mixin of ``MainWindow``: each method asks where (a dialog tests can
answer), then runs the core writer off the UI thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import MultiLabelResult, write_multilabel_report, write_report
from spacy_bertcls.outputs import check_not_same_file
from spacy_bertcls.session import (
    CORRECTION_SUFFIXES,
    changed_by_formula_guard,
    read_file,
    write_corrections,
)
from spacy_bertcls.session.saved import SESSION_SUFFIX, SavedSession, load_session, save_session
from spacy_bertcls.tables import WRITABLE_SUFFIXES, write_table

from .labeling_run import load_on_device

TABLE_EXPORT_FILTERS = (
    "CSV (*.csv);;Excel (*.xlsx);;Parquet (*.parquet);;TSV (*.tsv);;JSON lines (*.jsonl)"
)
SESSION_FILTER = f"bertcls session (*{SESSION_SUFFIX})"
#: The settings key of the last confidence asked for by Export Rows to Review.
REVIEW_CONFIDENCE_KEY = "export/reviewConfidence"
DEFAULT_REVIEW_CONFIDENCE = 0.8


class ExportsMixin:
    # ----------------------------------------------------------------- dialogs tests replace

    def _choose_export_rows(self, total: int, shown: int) -> str | None:
        """ "all" or "shown" rows, or None to cancel: asked when a filter hides rows."""
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(self)
        box.setWindowTitle("Export which rows?")
        box.setText(f"The filters show {shown:,} of the {total:,} rows.")
        all_button = box.addButton(f"All {total:,} rows", QMessageBox.ButtonRole.AcceptRole)
        shown_button = box.addButton(f"The {shown:,} shown rows", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return "all" if clicked is all_button else "shown" if clicked is shown_button else None

    def _get_review_confidence(self) -> float | None:
        """The confidence under which rows go to review, or None to cancel."""
        from PySide6.QtWidgets import QInputDialog

        start = float(self.settings.value(REVIEW_CONFIDENCE_KEY, DEFAULT_REVIEW_CONFIDENCE))
        value, ok = QInputDialog.getDouble(
            self, "Export rows to review",
            "Export the labeled rows whose confidence is under:", start, 0.01, 1.0, 2,
        )  # fmt: skip
        if not ok:
            return None
        self.settings.setValue(REVIEW_CONFIDENCE_KEY, value)
        return value

    # ----------------------------------------------------------------- the labeled table

    def export_table(self, path: str | Path | None = None) -> None:
        """Write the labeled table (CSV, Excel, Parquet, ...) via ``tables.write_table``."""
        session = self.session
        if session.file_path is None or session.nlp is None or not session.results.labeled_count():
            self._show_error("Nothing to export", "Open a pipeline and a file, and label it first.")
            return
        total, shown = len(session.frame), len(session.visible_rows)
        visible_only = False
        if shown < total:
            choice = self._choose_export_rows(total, shown)
            if choice is None:
                return
            visible_only = choice == "shown"
        if path is None:
            source = session.file_path
            suggestion = str(source.with_name(f"{source.stem}_labeled.csv"))
            chosen = self._get_save_path("Export labeled table", suggestion, TABLE_EXPORT_FILTERS)
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if path.suffix.lower() not in WRITABLE_SUFFIXES:
            self._show_error(
                "Cannot export",
                f"{path.name}: choose one of {', '.join(WRITABLE_SUFFIXES)} as the file type.",
            )
            return
        overwrite_source = False
        try:
            check_not_same_file(session.file_path, path)
        except BertclsError:
            question = (
                f"{path} is the file you opened. Overwrite the source file with the labeled "
                "table? The original contents are replaced (the write is atomic)."
            )
            if not self._ask("Overwrite the source file?", question):
                self.statusBar().showMessage("Export cancelled; the source file is unchanged", 8000)
                return
            overwrite_source = True
        frame = session.labeled_frame(visible_only=visible_only)

        def written(_: Any) -> None:
            if overwrite_source:
                self._written_over_source(path)
            self.statusBar().showMessage(f"Exported {len(frame):,} rows to {path}", 10000)

        self._run_task(
            f"Writing {path.name}", write_table, frame, path,
            on_done=written, failure_title="Could not export the table",
        )  # fmt: skip

    # ----------------------------------------------------------------- rows to review

    def export_review_rows(
        self, path: str | Path | None = None, below: float | None = None
    ) -> None:
        """Write the labeled rows whose confidence is under ``below`` (asked for) as the labeled
        table is written (``Session.review_frame``): the rows a person should check."""
        session = self.session
        if session.file_path is None or session.nlp is None or not session.results.labeled_count():
            self._show_error("Nothing to export", "Open a pipeline and a file, and label it first.")
            return
        if below is None:
            below = self._get_review_confidence()
            if below is None:
                return
        frame = session.review_frame(below)
        if frame.empty:
            message = f"No labeled row has a confidence under {below:g}: nothing was written."
            self.statusBar().showMessage(message, 10000)
            self._show_info("No rows to review", message)
            return
        if path is None:
            source = session.file_path
            suggestion = str(source.with_name(f"{source.stem}_review.csv"))
            chosen = self._get_save_path("Export rows to review", suggestion, TABLE_EXPORT_FILTERS)
            if not chosen:
                return
            path = chosen
        path = Path(path)
        try:
            if path.suffix.lower() not in WRITABLE_SUFFIXES:
                raise BertclsError(
                    f"{path.name}: choose one of {', '.join(WRITABLE_SUFFIXES)} as the file type."
                )
            check_not_same_file(
                session.file_path, path, example=f"{session.file_path.stem}_review.csv"
            )
        except BertclsError as error:
            self._report_failure("Cannot export the rows to review", error)
            return
        count = len(frame)
        self._run_task(
            f"Writing {path.name}", write_table, frame, path,
            on_done=lambda _: self.statusBar().showMessage(
                f"Exported {count:,} rows under confidence {below:g} to {path}", 10000
            ),
            failure_title="Could not export the rows to review",
        )  # fmt: skip

    # ----------------------------------------------------------------- the pipeline

    def save_pipeline_as(self, path: str | Path | None = None) -> None:
        """Write the pipeline as it is now (with the thresholds set in Label > Decision
        Threshold) to a new folder, which ``bertcls label`` and File > Open Pipeline load."""
        session = self.session
        if session.nlp is None or session.pipeline_path is None:
            self._show_error("No pipeline", "Load a trained pipeline first (File > Open Pipeline).")
            return
        if path is None:
            source = session.pipeline_path
            suggestion = str(source.with_name(f"{source.name}-thresholds"))
            chosen = self._get_save_path(
                "Save the pipeline as a new folder", suggestion, "Pipeline folder (*)"
            )
            if not chosen:
                return
            path = chosen
        out = Path(path)
        decision = session.pipeline_info.decision if session.pipeline_info else ""

        def job() -> Path:
            with session.nlp_lock:  # not while "Try a text" or labeling predicts with it
                return session.save_pipeline(out)

        def written(folder: Path) -> None:
            how = f" (decides: {decision})" if decision else ""
            self.statusBar().showMessage(f"Saved the pipeline to {folder}{how}", 15000)

        self._run_task(
            f"Saving the pipeline to {out}", job,
            on_done=written, failure_title="Could not save the pipeline",
        )  # fmt: skip

    # ----------------------------------------------------------------- corrections

    def export_corrections(self, path: str | Path | None = None) -> None:
        """Write the corrected rows as training data: ``text,label`` (+ ``row``) or ``.spacy``."""
        session = self.session
        corrections = session.corrections()
        if corrections.empty:
            self._show_info(
                "No corrections",
                "Correct some rows first: press a number key on a row, use the Details panel, "
                "or right-click selected rows.",
            )
            return
        if path is None:
            suggestion = str((session.file_path or Path.cwd() / "x").with_name("corrections.spacy"))
            filters = ";;".join(
                f"{name} (*{suffix})" for suffix, name in CORRECTION_SUFFIXES.items()
            )
            chosen = self._get_save_path("Export corrections as training data", suggestion, filters)
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if session.file_path is not None:
            try:
                check_not_same_file(session.file_path, path)
            except BertclsError as error:
                self._report_failure("Cannot export corrections", error)
                return
        count = len(corrections)
        version = session.results.corrections_version
        guarded = changed_by_formula_guard(corrections["text"]) if path.suffix == ".csv" else 0

        def written(_: Any) -> None:
            session.mark_corrections_exported(version)
            self.statusBar().showMessage(f"Exported {count:,} corrections to {path}", 10000)
            if guarded:
                self._show_info(
                    "Formula guard in the CSV file",
                    f"{guarded:,} of the {count:,} texts start with = + - or @, so their cells "
                    "begin with ' in the file: spreadsheet programs would otherwise run them "
                    "as formulas. bertcls convert and this app remove that ' when they read "
                    "the file, so training sees the exact texts; other tools may not.",
                )

        self._run_task(
            f"Writing {path.name}", write_corrections, corrections, path, session.labels,
            session.nlp, on_done=written, failure_title="Could not export the corrections",
        )  # fmt: skip

    # ----------------------------------------------------------------- the report

    def export_report(self, path: str | Path | None = None) -> None:
        """Write the HTML report (plus JSON and PNG plots) of the current evaluation."""
        session = self.session
        evaluation = session.evaluation
        if evaluation is None:
            self._show_error("No evaluation", "Evaluate against a gold column first.")
            return
        source = session.file_path
        if path is None:
            stem = source.stem if source else "evaluation"
            suggestion = str((source or Path.cwd() / "x").with_name(f"{stem}_report.html"))
            chosen = self._get_save_path("Export evaluation report", suggestion, "HTML (*.html)")
            if not chosen:
                return
            path = chosen
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_suffix(".html")
        details = {
            "pipeline": str(session.pipeline_path),
            "data": str(source),
            "text_column": session.text_column,
            "gold_column": evaluation.gold_column,
            "rows labeled": f"{len(evaluation.rows):,} of {len(session.frame):,}",
            "written by": "bertcls-gui",
            **evaluation.details,
        }
        name = session.pipeline_path.name if session.pipeline_path else "pipeline"
        title = f"Evaluation of {name}" + (f" on {source.name}" if source else "")
        multi_label = isinstance(evaluation.result, MultiLabelResult)
        self._run_task(
            f"Writing {path.name}",
            write_multilabel_report if multi_label else write_report,
            evaluation.result,
            path,
            json_path=path.with_suffix(".json"),
            plots_dir=path.with_name(f"{path.stem}_plots"),
            title=title,
            details=details,
            on_done=lambda written: self.statusBar().showMessage(
                f"Wrote {', '.join(str(p) for p in written.values())}", 10000
            ),
            failure_title="Could not write the report",
        )

    # ----------------------------------------------------------------- session files

    def save_session(self, path: str | Path | None = None) -> None:
        """Save everything to reopen later: paths, predictions, corrections, filters, view."""
        session = self.session
        if session.file_path is None:
            self._show_error("Nothing to save", "Open a file first.")
            return
        if path is None:
            source = session.file_path
            suggestion = str(source.with_name(source.stem + SESSION_SUFFIX))
            path = self._get_save_path("Save session", suggestion, SESSION_FILTER)
            if not path:
                return
        version = session.results.corrections_version
        view = self._view_state()
        try:
            written = save_session(session, path, view)
        except (BertclsError, OSError) as error:
            self._report_failure("Could not save the session", error)
            return
        session.mark_corrections_exported(version)
        self.settings.setValue("paths/lastSession", str(written))
        self.statusBar().showMessage(f"Saved the session to {written}", 10000)

    def open_session_dialog(self) -> None:
        path = self._get_open_path("Open a session", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Reopen a saved session: load its pipeline and file, then its results and view."""
        if self._refuse_while_labeling("opening a session"):
            return
        if not self._confirm_clearing("Open a session?", "Opening a session"):
            return

        device = self.device

        def job() -> tuple[SavedSession, Any, Any]:
            saved = load_session(path)
            nlp = info = None
            if saved.pipeline_path:
                nlp, info = load_on_device(saved.pipeline_path, device)
            frame = read_file(saved.file_path, sheet=saved.sheet)
            return saved, (nlp, info, device), frame

        self._run_task(
            f"Opening session {Path(path).name}", job,
            on_done=lambda result: self._session_loaded(*result),
            failure_title="Could not open the session",
        )  # fmt: skip

    def _session_loaded(self, saved: SavedSession, pipeline: Any, frame: Any) -> None:
        session = self.session
        nlp, info, device = pipeline
        file_path = Path(saved.file_path)
        self._watch(file_path, self._stat(file_path))
        session.set_table(file_path, frame, sheet=saved.sheet, text_column=saved.text_column)
        if nlp is not None:
            self.pipeline_device = device
            session.set_pipeline(Path(saved.pipeline_path), nlp, info)
        restored = session.restore(saved)
        self.table_panel.show_filter()
        self._restore_view_state(saved.view)
        message = f"Reopened the session: {restored:,} of {saved.n_rows:,} rows restored"
        if restored < saved.n_rows and saved.results is not None:
            message += " (the file changed since; rows are matched by their text)"
        self.statusBar().showMessage(message, 15000)
        self._update_actions()
        self._update_status()

    def _view_state(self) -> dict[str, Any]:
        table = self.table
        header = table.horizontalHeader()
        return {
            "current_row": self.table_panel.current_row(),
            "scroll": table.verticalScrollBar().value(),
            "tab": self.views.currentIndex(),
            "sort_indicator": [
                header.sortIndicatorSection(),
                int(header.sortIndicatorOrder().value),
            ],
        }

    def _restore_view_state(self, view: dict[str, Any]) -> None:
        from PySide6.QtCore import Qt

        section, order = view.get("sort_indicator", [-1, 0])
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(int(section), Qt.SortOrder(int(order)))
        header.blockSignals(False)
        row = int(view.get("current_row", -1))
        if row >= 0 and self.session.view_row(row) >= 0:
            self.table_panel.show_row(row)
        self.table.verticalScrollBar().setValue(int(view.get("scroll", 0)))
        self.views.setCurrentIndex(int(view.get("tab", 0)))
