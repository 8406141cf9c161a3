"""The analyst's session without a window: pipeline, table, predictions, corrections, filters.

``Session`` holds all the state the desktop app shows and every rule about it (what clears
predictions, what a filter shows, what an export writes), so tests drive it without Qt and a
script can do what the app does. The app's window (``spacy_bertcls_gui``) is panels that call
these methods and observe ``session.events``.

Long steps come in two halves so the app can run the slow half off the UI thread: ``read_file``
then ``set_table``; ``load_pipeline`` (the module function) then ``set_pipeline``;
``labeling_input`` then ``apply_chunk`` per chunk of ``labeling.label_chunks``;
``evaluation_input`` then ``set_evaluation``. The one-call forms (``open_file``,
``open_pipeline``, ``label``, ``evaluate``) do both halves, for scripts and tests. Everything
here runs on one thread; only the slow halves may run elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from spacy.language import Language

from ..audit import AUDIT_COLUMNS, SUSPECT, SUSPECT_RANK, AuditSummary
from ..decisions import DecisionRule, decision_rule
from ..errors import BertclsError
from ..evaluation import (
    EvaluationResult,
    MultiLabelResult,
    evaluate_multilabel,
    evaluate_predictions,
    plot_multilabel_pr_curves,
    plot_multilabel_reliability,
    plot_pr_curves,
    plot_reliability,
)
from ..evaluation.files import (
    gold_label_sets,
    uncalibrated_of,
    warn_trained_on,
    warn_trained_on_multilabel,
)
from ..fingerprint import text_hashes, trained_on
from ..labeling import MULTI_LABEL_SEP, LabeledChunk, LabelProgress, label_chunks, prob_column
from ..pipelines import PipelineInfo, find_textcat, load_pipeline, pipeline_info
from ..tables import first_row_number, read_table, require_columns, row_numbers
from ..tables.cells import cell_text, label_text, text_values
from .columns import guess_gold_column, guess_text_column
from .results import CORRECTED_LABEL, CORRECTED_LABELS, Results
from .rows import RowFilter, RowOrder, SortKey, TableLayout, wrong_rows
from .saved import SavedSession


class Event:
    """A list of callbacks called with the event's arguments, in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class SessionEvents:
    """What observers hear. Table-shaped changes come in pairs (``*_about_to_*`` first) so a
    Qt model can tell its views before the data changes, as Qt requires."""

    def __init__(self) -> None:
        self.table_about_to_reset = Event()  # a new file, new labels, results cleared
        self.table_reset = Event()
        self.order_about_to_change = Event()  # filter or sort: rows move, none change
        self.order_changed = Event()
        self.predictions_changed = Event()  # (rows: np.ndarray)
        self.corrections_changed = Event()  # (rows: np.ndarray)
        self.labels_changed = Event()
        self.pipeline_changed = Event()
        self.file_changed = Event()
        self.columns_changed = Event()  # text or gold column
        self.evaluation_changed = Event()


@dataclass
class ThresholdPreview:
    """What a decision threshold on ``label`` does to the labeled rows (see
    ``Session.threshold_preview``)."""

    label: str
    threshold: float
    changed: int  # labeled rows whose label changes
    predicted: int  # labeled rows given ``label``
    n_gold: int = 0  # labeled rows with a gold label, which precision and recall are over
    precision: float | None = None
    recall: float | None = None

    def format(self) -> str:
        text = f"{self.predicted:,} rows {self.label}, {self.changed:,} would change"
        if self.n_gold:
            p = "—" if self.precision is None else f"{self.precision:.3f}"
            r = "—" if self.recall is None else f"{self.recall:.3f}"
            text += f"; on {self.n_gold:,} gold rows precision {p}, recall {r}"
        return text


@dataclass
class Evaluation:
    """An evaluation of some table rows: the result, which file rows, and its figures. A
    multi-label pipeline's result is a ``MultiLabelResult`` (no confusion matrix)."""

    result: EvaluationResult | MultiLabelResult
    rows: np.ndarray  # the file row of each row passed to evaluate_predictions
    gold_column: str
    pr_figure: Figure
    reliability_figure: Figure
    #: For the report's header: trained-on rows and held-out scores, when there are any.
    details: dict[str, Any] = field(default_factory=dict)

    def table_rows(self, gold_label: str, predicted_label: str) -> np.ndarray:
        """The file rows in one confusion-matrix cell."""
        if isinstance(self.result, MultiLabelResult):
            raise BertclsError("A multi-label evaluation has no confusion matrix.")
        positions = self.result.confusion_rows(gold_label, predicted_label)
        return self.rows[np.asarray(positions, dtype=np.int64)]


def run_evaluation(
    gold: list, probs: np.ndarray, labels: list[str], texts: list[str], rows: np.ndarray,
    gold_column: str, first_row: int = 2, trained: np.ndarray | None = None,
    rule: DecisionRule | None = None, uncalibrated_probs: np.ndarray | None = None,
) -> Evaluation:  # fmt: skip
    """Evaluate and draw the figures; safe on a worker thread (the plots avoid pyplot).

    first_row: the number a spreadsheet shows for file row 0, for the report's rows.
    trained: per row, whether the pipeline was trained on its text, to warn as
        ``bertcls evaluate`` does (``Session.trained_rows``).
    rule, uncalibrated_probs: the decision rule, and the probabilities before temperature
        scaling, as ``evaluate_predictions`` takes them.

    A multi-label ``rule`` scores with ``evaluate_multilabel`` (as ``bertcls evaluate
    --multi-label-sep`` does): each gold cell holds labels joined by ``MULTI_LABEL_SEP``.
    """
    numbers = row_numbers(first_row, rows)
    if rule is not None and not rule.exclusive:
        result = evaluate_multilabel(
            gold_label_sets(gold, MULTI_LABEL_SEP), probs, labels, rule.thresholds, texts=texts,
            row_numbers=numbers, uncalibrated_probs=uncalibrated_probs,
        )  # fmt: skip
        if trained is not None:
            warn_trained_on_multilabel(result, trained)
        figures = plot_multilabel_pr_curves(result), plot_multilabel_reliability(result)
        return Evaluation(result, rows, gold_column, *figures)
    result = evaluate_predictions(
        gold, probs, labels, texts=texts, row_numbers=numbers, rule=rule,
        uncalibrated_probs=uncalibrated_probs,
    )  # fmt: skip
    details = {}
    if trained is not None:
        details = warn_trained_on(result, trained, gold, probs, labels, texts, rule=rule)
    figures = plot_pr_curves(result), plot_reliability(result)
    return Evaluation(result, rows, gold_column, *figures, details=details)


def read_file(path: str | Path, *, sheet: str | None = None) -> pd.DataFrame:
    """``read_table``, refusing duplicate column names: the session picks columns by name
    (text, gold, filters, export), and a name standing for two columns would mix them up.
    Reading warnings go with the frame (``attrs["reading_notes"]``)."""
    path = Path(path)
    notes: list[str] = []
    frame = read_table(path, sheet=sheet, notes=notes)
    frame.attrs["reading_notes"] = notes
    names = [str(name) for name in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BertclsError(
            f"{path.name} has several columns named {', '.join(map(repr, repeated))}. The app "
            "needs one name per column: rename them in the file (the command line's bertcls "
            "label keeps duplicate names as they are)."
        )
    return frame


def run_audit(
    *, frame: pd.DataFrame, lock: Any = None, **options: Any
) -> tuple[pd.DataFrame, AuditSummary]:
    """``audit.audit_frame`` (options: its arguments); safe on a worker thread. ``lock``:
    held while the pipeline's encoder runs, which "Try a text" shares."""
    from contextlib import nullcontext

    from ..audit import audit_frame

    with lock if lock is not None else nullcontext():
        return audit_frame(frame, **options)


class Session:
    """One analyst's work: at most one pipeline and one table, and what was done to them."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        self.nlp: Language | None = None
        #: Held while the pipeline predicts: labeling and "Try a text" share it.
        self.nlp_lock = threading.Lock()
        self.pipeline_path: Path | None = None
        self.pipeline_info: PipelineInfo | None = None
        self.frame = pd.DataFrame()
        self.file_path: Path | None = None
        self.sheet: str | None = None
        self.first_row_number = 2
        self.text_column: str | None = None
        self.gold_column: str | None = None
        self.gold_codes: np.ndarray | None = None
        #: Multi-label: each row's gold label set (rows x labels); a row of False has none.
        self.gold_sets: np.ndarray | None = None
        self.results = Results()
        self.layout = TableLayout(self.frame, [])
        self.row_filter = RowFilter()
        self.sort: SortKey | None = None
        self._order = RowOrder()
        self.evaluation: Evaluation | None = None
        #: (predictions, corrections) taken from the file's own columns when it was opened.
        self.imported = (0, 0)
        self._trained: tuple[Any, np.ndarray] | None = None
        #: ``results.corrections_version`` when last exported, to tell unsaved work.
        self._exported_version = 0
        #: The last audit of the gold column (its columns are in ``frame``), or None.
        self.audit: AuditSummary | None = None
        #: Pipeline folders used before the current one, the latest last ("switch back").
        self.previous_pipelines: list[Path] = []

    # ================================================================= reading the state

    @property
    def labels(self) -> list[str]:
        return list(self.results.labels)

    @property
    def visible_rows(self) -> np.ndarray:
        """The file rows shown, in display order."""
        return self._order.order

    def view_row(self, row: int) -> int:
        """Where file row ``row`` is shown, or -1 if the filter hides it."""
        return int(self._order.view_rows(np.array([row]), len(self.frame))[0])

    def view_rows(self, rows: np.ndarray) -> np.ndarray:
        """Where file ``rows`` are shown, -1 where the filter hides them."""
        return self._order.view_rows(rows, len(self.frame))

    def row_number(self, row: int) -> int:
        """File row ``row`` numbered as a spreadsheet shows it (the header is row 1), as the
        reports number it."""
        return row + self.first_row_number

    def text(self, row: int) -> str:
        """The row's text as the model sees it ("" for an empty cell)."""
        if self.text_column is None:
            return ""
        return cell_text(self.frame[self.text_column].iat[row])

    @property
    def multi_label(self) -> bool:
        """Whether the pipeline predicts a set of labels per row (``exclusive_classes`` false)."""
        return self.results.multi_label

    @property
    def has_gold(self) -> bool:
        """Whether a gold column is chosen and read (labels, or multi-label label sets)."""
        return self.gold_codes is not None or self.gold_sets is not None

    def gold_label(self, row: int) -> str | None:
        """The gold cell of ``row`` read as a label (multi-label: its text), or None."""
        if self.gold_column is None or not self.has_gold:
            return None
        if self.gold_codes is None:
            return label_text(self.frame[self.gold_column].iat[row])
        code = self.gold_codes[row]
        if code >= 0:
            return self.results.labels[code]
        return label_text(self.frame[self.gold_column].iat[row])

    def trained_rows(self) -> np.ndarray:
        """A mask of rows whose text the pipeline was trained on (its fingerprint)."""
        key = (id(self.nlp), self.text_column, len(self.frame))
        if self._trained is None or self._trained[0] != key:
            mask = np.zeros(len(self.frame), dtype=bool)
            if self.nlp is not None and self.text_column in self.frame.columns:
                mask = trained_on(self.nlp, text_values(self.frame[self.text_column]))
            self._trained = (key, mask)
        return self._trained[1]

    def wrong_rows(self) -> np.ndarray:
        """A mask of rows whose prediction is not the gold label (multi-label: set)."""
        return wrong_rows(self.results, self.gold_codes, self.gold_sets)

    def at_stake(self) -> tuple[int, int]:
        """(predictions, corrections) that clearing the results would lose."""
        return self.results.labeled_count(), self.results.corrected_count()

    def clearing_question(self, action: str) -> str | None:
        """The question to ask before ``action`` clears the results; None when nothing is lost."""
        labeled, corrected = self.at_stake()
        if not (labeled or corrected):
            return None
        source = self.file_path.name if self.file_path else "this file"
        return (
            f"{action} clears the {labeled:,} predictions and {corrected:,} corrections of "
            f"{source} (export them first to keep them). Continue?"
        )

    def has_unexported_corrections(self) -> bool:
        return bool(self.results.corrected_count()) and (
            self._exported_version != self.results.corrections_version
        )

    # ================================================================= pipeline

    def set_pipeline(self, path: Path, nlp: Language, info: PipelineInfo) -> None:
        """Use a loaded pipeline; predictions and corrections start empty."""
        self.nlp, self.pipeline_path, self.pipeline_info = nlp, Path(path), info
        self.set_labels(info.labels)
        self.events.pipeline_changed.emit()

    def set_labels(self, labels: Sequence[str], *, multi_label: bool | None = None) -> None:
        """Classify into ``labels`` (``set_pipeline`` calls this; a script or a test may too,
        to look at predictions made elsewhere). Predictions and corrections start empty.
        multi_label: label sets per row; by default as the pipeline decides (``rule``)."""
        if multi_label is None:
            multi_label = not self.rule.exclusive if self.nlp is not None else False
        with self._resetting():
            self.results = Results(len(self.frame), labels, multi_label=multi_label)
            self._update_layout()
            if self.gold_column is None and self.frame.shape[1]:
                self.gold_column = self._guess_gold_column()
            self._read_gold()
            self.row_filter = self.row_filter.copy(predicted_label=None, gold_label=None)
            self.evaluation = None
        self.imported = self.import_exported_columns()
        self.events.labels_changed.emit()
        self.events.columns_changed.emit()
        self.events.evaluation_changed.emit()

    def open_pipeline(self, path: str | Path) -> None:
        nlp = load_pipeline(path)
        self.set_pipeline(Path(path), nlp, pipeline_info(nlp))

    # ================================================================= the table

    def set_table(
        self,
        path: Path,
        frame: pd.DataFrame,
        *,
        sheet: str | None = None,
        text_column: str | None = None,
        keep_results: bool = False,
    ) -> int:
        """Show a newly read file. ``keep_results`` carries predictions and corrections over to
        rows whose text is unchanged (a reload); returns how many rows kept them."""
        old_results = self.results
        # Rows are found again by the hash of their text, as session files find them.
        old_keys = self.row_keys() if keep_results and self.text_column else None
        old_gold, unexported = self.gold_column, self.has_unexported_corrections()
        columns = [str(column) for column in frame.columns]
        if text_column not in columns:
            text_column = self.text_column if keep_results and self.text_column in columns else None
        restored = 0
        with self._resetting():
            self.frame = frame.reset_index(drop=True)
            self.file_path, self.sheet = Path(path), sheet
            self.first_row_number = first_row_number(frame)
            self.text_column = text_column or guess_text_column(self.frame)
            self.results = self._empty_results()
            if keep_results and old_gold in columns:
                self.gold_column = old_gold
            else:
                self.gold_column = self._guess_gold_column()
            self._read_gold()
            self._update_layout()
            if old_keys is not None and self.text_column is not None:
                restored = self.results.take_over(
                    old_results, pd.Series(old_keys), pd.Series(self.row_keys())
                )
            self.row_filter, self.sort = RowFilter(), None
            self.evaluation = None
            self.audit = None  # a new file: its own audit columns, if any, are in the frame
            self._exported_version = -1 if unexported else self.results.corrections_version
        if not restored:
            self.imported = self.import_exported_columns()
        self.events.file_changed.emit()
        self.events.columns_changed.emit()
        self.events.evaluation_changed.emit()
        self.events.corrections_changed.emit(np.arange(0))
        return restored

    def open_file(self, path: str | Path, *, sheet: str | None = None, **kwargs: Any) -> int:
        return self.set_table(Path(path), read_file(path, sheet=sheet), sheet=sheet, **kwargs)

    def set_text_column(self, name: str | None) -> None:
        """Label ``name``; predictions made on another column are cleared (ask first:
        ``clearing_question``)."""
        if name is not None and name not in self.frame.columns:
            raise BertclsError(f"No column {name!r}; columns: {list(self.frame.columns)}")
        if name == self.text_column:
            return
        with self._resetting():
            self.text_column = name
            self.results = self._empty_results()
            self.evaluation = None
        self.events.columns_changed.emit()
        self.events.evaluation_changed.emit()

    def set_gold_column(self, name: str | None) -> None:
        """The column with the true labels, or None."""
        if name is not None and name not in self.frame.columns:
            raise BertclsError(f"No column {name!r}; columns: {list(self.frame.columns)}")
        self.gold_column = name
        self._read_gold()
        self.evaluation = None
        if self.row_filter.gold_label or self.row_filter.wrong_only:
            self.set_filter(self.row_filter.copy(gold_label=None, wrong_only=False))
        self.events.columns_changed.emit()
        self.events.predictions_changed.emit(np.arange(len(self.frame)))
        self.events.evaluation_changed.emit()

    # ================================================================= labeling

    def labeling_input(self, rows: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
        """The texts and file rows to label: ``rows``, or every row without a prediction."""
        if self.nlp is None:
            raise BertclsError("Load a trained pipeline first (File > Open Pipeline).")
        if self.file_path is None:
            raise BertclsError("Open a file to label first (File > Open File).")
        require_columns(self.frame.columns, [self.text_column or ""], source=str(self.file_path))
        rows = self.results.unlabeled_rows() if rows is None else np.asarray(rows, np.int64)
        return text_values(self.frame[self.text_column].iloc[rows]), rows

    def apply_chunk(self, chunk: LabeledChunk) -> None:
        """Store the predictions of one chunk. Rows do not move (no re-sort under the user's
        pointer while labeling runs); ``refresh`` sorts and filters on the new values."""
        self.results.apply_chunk(chunk)
        self.events.predictions_changed.emit(chunk.rows)

    def label(
        self,
        rows: np.ndarray | None = None,
        *,
        progress: Callable[[LabelProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> int:
        """Label ``rows`` (default: those without a prediction) here and now; returns how many."""
        texts, rows = self.labeling_input(rows)
        assert self.nlp is not None
        done = 0
        for chunk in label_chunks(
            self.nlp, texts, rows, rows_total=len(rows), progress=progress, should_stop=should_stop
        ):
            self.apply_chunk(chunk)
            done += len(chunk)
        self.refresh()
        return done

    # ================================================================= filters and sorting

    def set_filter(self, row_filter: RowFilter) -> None:
        self.row_filter = row_filter
        self.refresh()

    def set_sort(self, sort: SortKey | None) -> None:
        self.sort = sort
        self.refresh()

    def refresh(self) -> None:
        """Apply the filter and the sort to the current values."""
        self.events.order_about_to_change.emit()
        self._compute_order()
        self.events.order_changed.emit()

    # ================================================================= corrections

    def correct(self, rows: Sequence[int] | np.ndarray, label: str | Collection[str] | None) -> int:
        """Set (None: clear) the corrected label of file ``rows``; one undo step.

        Multi-label: ``label`` may be a collection of labels, the rows' whole label set (empty:
        no label applies); one label is the set of that label alone.
        """
        labels = [label] if isinstance(label, str) else label
        if labels is not None and not isinstance(label, str) and not self.multi_label:
            raise BertclsError(
                f"{self.pipeline_name()} gives one label per row (exclusive classes): correct "
                f"to one label, not the set {sorted(labels)}."
            )
        unknown = [name for name in labels or () if name not in self.results.codes]
        if unknown:
            raise BertclsError(f"{unknown[0]!r} is not a label of the pipeline: {self.labels}")
        if not self.multi_label:
            changed = self.results.set_corrections(rows, label or None)
        elif label is None or label == "":
            changed = self.results.set_label_sets(rows, None)
        else:
            changed = self.results.set_label_sets(rows, self._label_set(labels))
        if changed.size:
            self.events.corrections_changed.emit(changed)
        return int(changed.size)

    def toggle_label(self, rows: Sequence[int] | np.ndarray, label: str) -> int:
        """Multi-label: switch ``label`` in the label sets of file ``rows`` (their corrections,
        or their predictions where not corrected yet): off when every row has it, else on
        for all. One undo step; returns how many rows changed."""
        if not self.multi_label:
            raise BertclsError(
                f"{self.pipeline_name()} gives one label per row (exclusive classes): there "
                "is no label set to switch a label in; correct to a label instead."
            )
        if label not in self.results.codes:
            raise BertclsError(f"{label!r} is not a label of the pipeline: {self.labels}")
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        sets = self.results.current_sets(rows)
        j = self.results.codes[label]
        sets[:, j] = not sets[:, j].all()
        changed = self.results.set_label_sets(rows, sets)
        if changed.size:
            self.events.corrections_changed.emit(changed)
        return int(changed.size)

    def accept_predictions(self, rows: Sequence[int] | np.ndarray) -> int:
        """Make each row's prediction its correction (confirmed training data); rows without
        a prediction are left alone. Returns how many rows changed."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[self.results.predicted[rows] >= 0]
        if self.multi_label:
            changed = self.results.set_label_sets(rows, self.results.predicted_sets[rows])
            if changed.size:
                self.events.corrections_changed.emit(changed)
            return int(changed.size)
        predicted = self.results.predicted[rows]
        return sum(
            self.correct(rows[predicted == code], self.results.labels[int(code)])
            for code in np.unique(predicted)
        )

    def pipeline_name(self) -> str:
        return self.pipeline_path.name if self.pipeline_path else "This pipeline"

    def _label_set(self, labels: Collection[str]) -> np.ndarray:
        chosen = np.zeros(len(self.labels), dtype=bool)
        chosen[[self.results.codes[name] for name in labels]] = True
        return chosen

    def undo(self) -> int:
        rows = self.results.undo()
        if rows.size:
            self.events.corrections_changed.emit(rows)
        return int(rows.size)

    def redo(self) -> int:
        rows = self.results.redo()
        if rows.size:
            self.events.corrections_changed.emit(rows)
        return int(rows.size)

    def corrections(self) -> pd.DataFrame:
        """The corrected rows as training data: ``text`` and ``label``, and ``row``, the file
        row as a spreadsheet shows it (``bertcls convert`` ignores it). Multi-label: ``label``
        holds each row's list of labels (``write_corrections`` joins them)."""
        rows = np.flatnonzero(self.results.corrected >= 0)
        if self.text_column is None:
            return pd.DataFrame({"row": [], "text": [], "label": []})
        # The texts exactly as the model saw them (as labeling reads them).
        texts = text_values(self.frame[self.text_column].iloc[rows])
        if self.multi_label:
            labels = [self.results.corrected_labels(row) for row in rows]
        else:
            labels = [self.results.labels[code] for code in self.results.corrected[rows]]
        return pd.DataFrame({"row": rows + self.first_row_number, "text": texts, "label": labels})

    def mark_corrections_exported(self, version: int) -> None:
        """The corrections as they were at ``results.corrections_version`` are written."""
        self._exported_version = version

    # ================================================================= evaluation

    def evaluation_input(self) -> tuple[Any, ...]:
        """The arguments of ``run_evaluation`` for the labeled rows against the gold column."""
        if self.gold_column is None:
            raise BertclsError("Choose the column with the true labels (gold column) first.")
        rows = np.flatnonzero(self.results.labeled)
        if rows.size == 0:
            raise BertclsError("Label the file (Label > Label) before evaluating.")
        gold = self.frame[self.gold_column].to_numpy(dtype=object)[rows].tolist()
        texts = text_values(self.frame[self.text_column].iloc[rows])
        probs = self.results.probs[rows].copy()
        before = uncalibrated_of(self.nlp, probs) if self.nlp is not None else None
        return (gold, probs, self.labels, texts, rows, self.gold_column, self.first_row_number,
                self.trained_rows()[rows], self.rule, before)  # fmt: skip

    def set_evaluation(self, evaluation: Evaluation | None) -> None:
        self.evaluation = evaluation
        self.events.evaluation_changed.emit()

    def evaluate(self) -> Evaluation:
        evaluation = run_evaluation(*self.evaluation_input())
        self.set_evaluation(evaluation)
        return evaluation

    # ================================================================= decisions

    @property
    def rule(self) -> DecisionRule:
        """How the pipeline decides labels (`spacy_bertcls.decisions`); the argmax without one."""
        if self.nlp is None:
            return DecisionRule.make(self.labels, exclusive=True)
        return decision_rule(self.nlp)

    def threshold_preview(self, label: str, threshold: float) -> ThresholdPreview:
        """What deciding ``label`` at ``threshold`` would do to the labeled rows: how many change
        label, and the precision and recall of ``label`` against the gold column (None without
        one). Nothing changes; ``set_threshold`` applies it."""
        rule = self.rule.with_threshold(label, threshold)
        rows = np.flatnonzero(self.results.labeled)
        probs = self.results.probs[rows]
        j = self.labels.index(label)
        decided = rule.predicted_sets(probs)[:, j]
        before = self.rule.predicted_sets(probs)[:, j]
        preview = ThresholdPreview(
            label, threshold, int((decided != before).sum()), int(decided.sum())
        )
        if self.has_gold:
            known, truth = self._gold_truth(rows, j)
            truth = truth[known]
            hit = decided[known]
            preview.n_gold = int(known.sum())
            if hit.any():
                preview.precision = float((hit & truth).sum() / hit.sum())
            if truth.any():
                preview.recall = float((hit & truth).sum() / truth.sum())
        return preview

    def pr_curve(self, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(precision, recall, thresholds) of ``label`` over the labeled rows with a gold label
        (scikit-learn's precision_recall_curve), or None without gold rows of both kinds."""
        from sklearn.metrics import precision_recall_curve

        if not self.has_gold:
            return None
        j = self.labels.index(label)
        # Labeled rows without a text have no probabilities (NaN): no point on any curve.
        scored = np.flatnonzero(self.results.labeled & ~np.isnan(self.results.probs[:, j]))
        known, truth = self._gold_truth(scored, j)
        rows, truth = scored[known], truth[known]
        if not truth.any() or truth.all():
            return None
        return precision_recall_curve(truth, self.results.probs[rows, j])

    def set_threshold(self, label: str, threshold: float) -> int:
        """Decide ``label`` at ``threshold`` from now on: stored in the pipeline in memory (so
        labeling more rows uses it too; File > Save Pipeline As keeps it) and applied to the
        labeled rows. Returns how many rows changed label."""
        if self.nlp is None:
            raise BertclsError("Load a trained pipeline first (File > Open Pipeline).")
        _, component = find_textcat(self.nlp)
        if not hasattr(component, "set_calibration"):
            raise BertclsError(
                "This pipeline's text classifier is not bert_textcat: it has no decision "
                "thresholds to set."
            )
        rule = self.rule.with_threshold(label, threshold)
        changed = self.threshold_preview(label, threshold).changed
        component.set_calibration(
            component.temperature,
            rule.tuned,
            component.cfg["calibration"],
            bias=component.logit_bias,
        )
        self.pipeline_info = pipeline_info(self.nlp)
        rows = np.flatnonzero(self.results.labeled)
        self.results.apply_chunk(
            LabeledChunk.from_probs(rows, self.results.probs[rows], self.labels, rule)
        )
        self.evaluation = None
        self.events.predictions_changed.emit(rows)
        self.events.evaluation_changed.emit()
        self.events.pipeline_changed.emit()
        self.refresh()
        return changed

    def save_pipeline(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Write the pipeline as it is now (e.g. with thresholds set here) to a new folder
        ``out``, atomically; never over the folder it was loaded from."""
        from ..outputs import check_out_folder, staged_folder

        if self.nlp is None or self.pipeline_path is None:
            raise BertclsError("Load a trained pipeline first (File > Open Pipeline).")
        out = Path(out)
        check_out_folder(self.pipeline_path, out, overwrite=overwrite)
        with staged_folder(out) as stage:
            self.nlp.to_disk(stage)
        return out

    def review_rows(self, below: float) -> np.ndarray:
        """The labeled rows whose confidence is under ``below``, in file order: the rows to
        send to a person ("send to review")."""
        labeled = self.results.labeled & ~np.isnan(self.results.confidence)
        return np.flatnonzero(labeled & (self.results.confidence < below))

    def review_frame(self, below: float) -> pd.DataFrame:
        """``labeled_frame`` of ``review_rows(below)``: what Export Rows to Review writes."""
        return self.results.with_columns(self.frame, self.review_rows(below))

    # ================================================================= exports

    def labeled_frame(self, *, visible_only: bool = False) -> pd.DataFrame:
        """The file's columns plus the prediction columns ``bertcls label`` writes, and
        ``corrected_label`` when anything was corrected: what the export writes. Only the
        shown rows, in file order, with ``visible_only``."""
        rows = np.sort(self.visible_rows) if visible_only else None
        return self.results.with_columns(self.frame, rows)

    # ================================================================= resuming work

    def row_keys(self) -> np.ndarray:
        """A 64-bit hash of each row's text (as the model sees it), to find rows again."""
        if self.text_column is None or self.text_column not in self.frame.columns:
            return np.zeros(len(self.frame), dtype=np.uint64)
        return text_hashes(text_values(self.frame[self.text_column]))

    def restore(self, saved: SavedSession) -> int:
        """Take over a saved session's results, filter and sort (the pipeline and the file
        are open already). Rows are found by their text, so a file edited since keeps the
        results of its unchanged rows. Returns how many rows got their results back."""
        if saved.results is None or saved.labels != self.labels:
            return 0
        if saved.results.multi_label != self.multi_label:
            return 0
        keys = self.row_keys()
        same_rows = len(keys) == len(saved.row_keys) and bool((keys == saved.row_keys).all())
        with self._resetting():
            if saved.gold_column in self.frame.columns:
                self.gold_column = saved.gold_column
                self._read_gold()
            if same_rows:
                self.results = saved.results
                restored = len(keys)
            else:
                self.results = self._empty_results()
                restored = self.results.take_over(
                    saved.results, pd.Series(saved.row_keys), pd.Series(keys)
                )
            row_filter = saved.row_filter
            if not same_rows:
                row_filter = row_filter.copy(rows=None, rows_description="")
            self.row_filter, self.sort = row_filter, saved.sort
            self.evaluation = None
        self._exported_version = -1 if self.results.corrected_count() else 0
        self.events.columns_changed.emit()
        self.events.evaluation_changed.emit()
        self.events.corrections_changed.emit(np.arange(0))
        return restored

    def import_exported_columns(self) -> tuple[int, int]:
        """Take predictions and corrections from the file's own columns, when it is a table
        this app or ``bertcls label`` wrote with the same labels (``prob_<label>`` for every
        label, ``corrected_label``; multi-label ``corrected_labels``, where a blank cell is
        read as no correction). Returns (predictions, corrections) taken."""
        labels, frame = self.labels, self.frame
        wanted = [prob_column(label) for label in labels]
        if not labels or not set(wanted) <= set(map(str, frame.columns)):
            return 0, 0
        probs = frame[wanted].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        rows = np.flatnonzero(~np.isnan(probs).all(axis=1))
        corrected = np.full(len(frame), -1, dtype=np.int64)
        sets = None
        if self.multi_label and CORRECTED_LABELS in frame.columns:
            sets, known = self.results.sets_of(frame[CORRECTED_LABELS].tolist())
            corrected = np.where(known, sets.sum(axis=1), -1).astype(np.int64)
        elif not self.multi_label and CORRECTED_LABEL in frame.columns:
            corrected = self.results.codes_of(frame[CORRECTED_LABEL].tolist())
        with self._resetting():
            self.results.apply_chunk(LabeledChunk.from_probs(rows, probs[rows], labels, self.rule))
            self.results.corrected[:] = corrected
            if sets is not None:
                self.results.corrected_sets[:] = sets
        if (corrected >= 0).any():
            self.events.corrections_changed.emit(np.flatnonzero(corrected >= 0))
        return len(rows), int((corrected >= 0).sum())

    # ================================================================= suspect labels

    def audit_input(self) -> dict[str, Any]:
        """The arguments of ``run_audit`` for the open file's gold column and the pipeline's
        encoder: the audit itself is ``spacy_bertcls.audit.audit_frame``, as ``bertcls audit``
        runs it."""
        if self.nlp is None or self.pipeline_path is None:
            raise BertclsError("Load a trained pipeline first (File > Open Pipeline).")
        if self.file_path is None:
            raise BertclsError("Open a file with a gold column first (File > Open File).")
        if self.gold_column is None:
            raise BertclsError(
                "Choose the column with the true labels (gold column) first: the audit looks "
                "for rows whose gold label is probably wrong."
            )
        require_columns(self.frame.columns, [self.text_column or ""], source=str(self.file_path))
        from ..audit import pipeline_feature_model

        model, head_settings = pipeline_feature_model(self.nlp, self.pipeline_path)
        # The columns of an earlier audit (or of a file `bertcls audit` wrote) are replaced.
        frame = self.frame.drop(columns=[c for c in AUDIT_COLUMNS if c in self.frame.columns])
        return {
            "frame": frame, "text_column": self.text_column, "label_column": self.gold_column,
            "model": model, "head_settings": head_settings, "lock": self.nlp_lock,
        }  # fmt: skip

    def set_audit(self, audited: pd.DataFrame, summary: AuditSummary) -> None:
        """Show an audit's columns (``audit.AUDIT_COLUMNS``) beside the file's; exports carry
        them as ``bertcls audit`` writes them."""
        if len(audited) != len(self.frame) or not audited.index.equals(self.frame.index):
            raise BertclsError("The file changed while it was audited: audit it again.")
        with self._resetting():
            self.frame = audited
            self.audit = summary
            self._update_layout()
        self.events.columns_changed.emit()

    def audit_suspects(self, **options: Any) -> AuditSummary:
        """Audit the gold column here and now (``run_audit`` then ``set_audit``)."""
        audited, summary = run_audit(**self.audit_input(), **options)
        self.set_audit(audited, summary)
        return summary

    def suspect_rows(self) -> np.ndarray:
        """The file rows an audit found suspect, most likely wrong first (none before one)."""
        if SUSPECT not in self.frame.columns or SUSPECT_RANK not in self.frame.columns:
            return np.arange(0, dtype=np.int64)
        suspect = self.frame[SUSPECT].fillna(False).to_numpy(dtype=bool)
        rows = np.flatnonzero(suspect)
        rank = pd.to_numeric(self.frame[SUSPECT_RANK], errors="coerce").to_numpy(float)[rows]
        return rows[np.argsort(rank, kind="stable")].astype(np.int64)

    def show_suspects(self) -> np.ndarray:
        """Show only the suspect rows, ranked by ``suspect_rank`` (1 = most likely wrong)."""
        rows = self.suspect_rows()
        self.row_filter = self.row_filter.copy(
            rows=rows, rows_description=f"{len(rows):,} suspect labels, most likely wrong first"
        )
        self.set_sort(SortKey(SUSPECT_RANK))
        return rows

    # ================================================================= retraining

    def retrain_input(self) -> dict[str, Any]:
        """The arguments of ``retrain.retrain_pipeline`` for the corrections made here: the
        pipeline folder, the corrected rows, and the file's gold column to score on."""
        if self.nlp is None or self.pipeline_path is None:
            raise BertclsError("Load a trained pipeline first (File > Open Pipeline).")
        corrections = self.corrections()
        if corrections.empty:
            raise BertclsError(
                "Correct some rows first: a retrain trains on the pipeline's training data plus "
                "the corrected rows."
            )
        arguments: dict[str, Any] = {"pipeline": self.pipeline_path, "corrections": corrections}
        if self.gold_codes is not None and self.text_column is not None:
            rows = np.flatnonzero(self.gold_codes >= 0)
            arguments["score_texts"] = text_values(self.frame[self.text_column].iloc[rows])
            arguments["score_labels"] = [self.results.labels[c] for c in self.gold_codes[rows]]
        return arguments

    def retrain(self, **options: Any):
        """Retrain here and now (``retrain.retrain_pipeline``); the pipeline in use stays."""
        from ..retrain import retrain_pipeline

        return retrain_pipeline(**self.retrain_input(), **options)

    def switch_pipeline(self, path: Path, nlp: Language, info: PipelineInfo) -> None:
        """Use another version of the pipeline (a retrained one, or back to the previous):
        the corrections stay, the predictions are cleared (they came from the other one).
        Its labels must be the same."""
        if list(info.labels) != self.labels:
            raise BertclsError(
                f"{path} has the labels {list(info.labels)}, not {self.labels}: open it with "
                "File > Open Pipeline instead (that starts the corrections afresh)."
            )
        old = self.results
        old_path, corrected = self.pipeline_path, old.corrected.copy()
        with self._resetting():
            self.nlp, self.pipeline_path, self.pipeline_info = nlp, Path(path), info
            self.results = Results(len(self.frame), self.labels, multi_label=old.multi_label)
            self.results.corrected[:] = corrected
            self.results.corrected_sets[:] = old.corrected_sets
            self.evaluation = None
        if old_path is not None and old_path != Path(path):
            if self.previous_pipelines and self.previous_pipelines[-1] == Path(path):
                self.previous_pipelines.pop()  # switching back
            else:
                self.previous_pipelines.append(old_path)
        self.events.pipeline_changed.emit()
        self.events.predictions_changed.emit(np.arange(len(self.frame)))
        self.events.corrections_changed.emit(np.flatnonzero(corrected >= 0))
        self.events.evaluation_changed.emit()

    # ================================================================= internals

    @contextmanager
    def _resetting(self) -> Iterator[None]:
        self.events.table_about_to_reset.emit()
        try:
            yield
        finally:
            self._order.forget()
            self._compute_order()
            self.events.table_reset.emit()

    def _compute_order(self) -> None:
        self._order.compute(
            self.frame, self.layout, self.results, self.gold_codes, self.text_column,
            self.row_filter, self.sort, self.gold_sets,
            self.rule if self.multi_label else None,
        )  # fmt: skip

    def _update_layout(self) -> None:
        self.layout = TableLayout(self.frame, self.results.labels, multi_label=self.multi_label)

    def _read_gold(self) -> None:
        """Read the gold column as label codes (``gold_codes``) or, multi-label, as label
        sets (``gold_sets``); both None without a gold column."""
        self.gold_codes = self.gold_sets = None
        if not self.gold_column or self.gold_column not in self.frame.columns or not self.labels:
            return
        cells = self.frame[self.gold_column].tolist()
        if self.multi_label:
            self.gold_sets = self.results.sets_of(cells)[0]
        else:
            self.gold_codes = self.results.codes_of(cells)

    def _gold_truth(self, rows: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
        """For file ``rows``: (which have a usable gold label or set, whether label ``j`` is
        in it)."""
        if self.gold_sets is not None:
            return self.gold_sets[rows].any(axis=1), self.gold_sets[rows, j]
        gold = self.gold_codes[rows]
        return gold >= 0, gold == j

    def _guess_gold_column(self) -> str | None:
        sep = MULTI_LABEL_SEP if self.multi_label else None
        return guess_gold_column(self.frame, self.labels, self.text_column, sep=sep)

    def _empty_results(self) -> Results:
        """No predictions and no corrections, for the same labels, one per row."""
        return Results(len(self.frame), self.labels, multi_label=self.multi_label)
