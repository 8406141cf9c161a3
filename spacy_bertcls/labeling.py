"""Labeling rows with a trained pipeline: texts -> `doc.cats` -> new columns -> file.

Any spaCy pipeline whose text classifier sets `doc.cats` works (components made by
"bert_textcat", "textcat" or "textcat_multilabel", or any other component that declares it
assigns `doc.cats`). The path of the data, and who calls what:

    texts -> `label_chunk` (`predict_proba`) -> `LabeledChunk` (row positions, probabilities,
        predicted label index, confidence, label names)
    `label_chunks`: the one labeling loop. It streams texts in, yields `LabeledChunk`s, times
        them, reports `LabelProgress` and stops on `should_stop()`; chunks have a fixed size or
        are sized to take a fraction of a second each (`target_seconds`).
    `LabeledChunk` -> `prediction_columns` / `with_predictions` -> the output columns: the one
        place they are made.

* `bertcls label` -> `label_file`: file chunks -> `label_chunks` -> `with_predictions` ->
  `TableWriter` (atomic; never over the input) -> `LabelSummary`.
* The desktop app: `spacy_bertcls_gui.workers.LabelWorker` runs `label_chunks` on its thread
  (adaptive chunk sizes, cancel) and sends each `LabeledChunk` to the table model, which
  stores its arrays; its export builds the columns with `with_predictions`.
* One in-memory table (e.g. a Ray Data `map_batches` function, texts in, columns out):
  `label_frame` = `label_chunk` + `with_predictions`.
* `spacy_bertcls.evaluation.files.evaluate_file` runs `predict_proba` on a table (or a
  `.spacy` file) with gold labels and scores it, for `bertcls evaluate`.

Added columns, for an exclusive classifier: `predicted_label` (decided by the pipeline's
`spacy_bertcls.decisions.DecisionRule`: the most probable label, or for two classes the positive
label when its probability reaches its tuned threshold), `confidence` (the probability of that
label) and one `prob_<label>` per label, as float32; a row's probabilities sum to 1. For a
multi-label classifier: `predicted_labels` (every label whose probability reaches its threshold,
joined by `MULTI_LABEL_SEP`, the separator `bertcls convert --multi-label-sep` reads back; an
empty cell when none does) and the `prob_<label>` columns, each independent. Rows with an empty (or blank) text are
not sent to the model: their `predicted_label` is a missing cell (not "", which CSV and XLSX
cannot tell from missing but Parquet and JSON lines can) and their numbers NaN, so the file
reads back the same in every format.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import spacy

from .decisions import DecisionRule, decision_rule
from .errors import BertclsError
from .outputs import check_not_same_file
from .pipelines import pipeline_labels
from .tables import (
    TableWriter,
    count_rows,
    iter_table_chunks,
    require_columns,
)
from .tables.cells import text_values

PREDICTED_LABEL = "predicted_label"
PREDICTED_LABELS = "predicted_labels"
CONFIDENCE = "confidence"
# Between the labels of a multi-label row in `predicted_labels`: what `convert` is told to read.
MULTI_LABEL_SEP = ";"


def prob_column(label: str) -> str:
    """The name of the output column holding the probability of `label`."""
    return f"prob_{label}"


def predict_proba(
    nlp: spacy.Language, texts: Sequence[str], *, batch_size: int = 256
) -> np.ndarray:
    """Class probabilities, shape (len(texts), n_labels), float32, in `pipeline_labels` order.

    Empty or whitespace-only texts are not sent to the model and get a row of NaN.
    """
    labels = pipeline_labels(nlp)
    probs = np.full((len(texts), len(labels)), np.nan, dtype=np.float32)
    rows = [i for i, text in enumerate(texts) if text.strip()]
    _check_lengths(nlp, texts, rows)
    docs = nlp.pipe((texts[i] for i in rows), batch_size=batch_size)
    for i, doc in zip(rows, docs):
        probs[i] = [doc.cats.get(label, np.nan) for label in labels]
    return probs


def _check_lengths(nlp: spacy.Language, texts: Sequence[str], rows: list[int]) -> None:
    too_long = next((i for i in rows if len(texts[i]) > nlp.max_length), None)
    if too_long is not None:
        raise BertclsError(
            f"Text {too_long + 1} of this batch has {len(texts[too_long]):,} characters, more "
            f"than the pipeline's max_length ({nlp.max_length:,}). Such a cell usually means a "
            "broken file (e.g. a missing closing quote); fix it or shorten the text."
        )


@dataclass
class LabeledChunk:
    """Predictions for some rows: what `label_chunks` yields and the app's table stores.

    `rows` are the positions of the rows (in the file or the table the texts came from);
    `probs` has one row per position and one column per label, in `labels` order. A row
    without a prediction (its text was empty) has `predicted` -1, `confidence` NaN and a
    row of NaN in `probs`. `prediction_columns` turns a chunk into the output columns.
    """

    rows: np.ndarray  # int64, (n,)
    probs: np.ndarray  # float32, (n, len(labels))
    predicted: np.ndarray  # int64, (n,): index into `labels`, or -1
    confidence: np.ndarray  # float32, (n,): probs[i, predicted[i]], or NaN
    labels: list[str]
    # Multi-label only: (n, len(labels)) bool, whether each label applies; `predicted` is then
    # the most probable label that applies (or the most probable one), to sort rows by.
    label_sets: np.ndarray | None = None

    @classmethod
    def from_probs(
        cls,
        rows: np.ndarray,
        probs: np.ndarray,
        labels: Sequence[str],
        rule: DecisionRule | None = None,
    ) -> LabeledChunk:
        """The chunk whose labels `rule` decides (default: the most probable label)."""
        probs = np.asarray(probs, dtype=np.float32)
        rule = rule or DecisionRule.make(labels, exclusive=True)
        predicted = rule.predicted_index(probs)
        picked = np.take_along_axis(probs, np.maximum(predicted, 0)[:, None], axis=1)[:, 0]
        return cls(
            rows=np.asarray(rows, dtype=np.int64),
            probs=probs,
            predicted=predicted,
            confidence=np.where(predicted >= 0, picked, np.nan).astype(np.float32),
            labels=list(labels),
            label_sets=None if rule.exclusive else rule.predicted_sets(probs),
        )

    def __len__(self) -> int:
        return len(self.rows)

    def label_counts(self) -> dict[str, int]:
        """How many rows got each label (labels no row got are left out)."""
        if self.label_sets is not None:
            counts = self.label_sets.sum(axis=0)
        else:
            counts = np.bincount(self.predicted[self.predicted >= 0], minlength=len(self.labels))
        return {label: int(n) for label, n in zip(self.labels, counts) if n}


def label_chunk(
    nlp: spacy.Language,
    texts: Sequence[str],
    rows: np.ndarray | Sequence[int] | None = None,
    *,
    batch_size: int = 256,
) -> LabeledChunk:
    """Predict `texts` (at positions `rows`, by default 0, 1, ...) in one go, with the labels
    the pipeline's decision rule gives."""
    rows = np.arange(len(texts)) if rows is None else rows
    probs = predict_proba(nlp, texts, batch_size=batch_size)
    return LabeledChunk.from_probs(rows, probs, pipeline_labels(nlp), decision_rule(nlp))


def prediction_columns(chunk: LabeledChunk) -> dict[str, Any]:
    """The output columns of a chunk, in order: `predicted_label` (text; missing where there
    is no prediction), `confidence` and one `prob_<label>` per label (float32; NaN there).
    A multi-label chunk has `predicted_labels` (the labels that apply, joined by
    `MULTI_LABEL_SEP`; missing where there is no prediction or no label applies) instead of
    the first two.

    A missing cell, not "", so that every format reads the same cell back (CSV and XLSX
    cannot tell "" from missing; Parquet and JSON lines can).
    """
    probs = np.asarray(chunk.probs, dtype=np.float32)
    prob_columns = {prob_column(label): probs[:, j] for j, label in enumerate(chunk.labels)}
    if chunk.label_sets is not None:
        joined = [
            MULTI_LABEL_SEP.join(label for label, on in zip(chunk.labels, row) if on) or None
            for row in chunk.label_sets
        ]
        return {PREDICTED_LABELS: pd.array(joined, dtype="str"), **prob_columns}
    names = np.array([*chunk.labels, None], dtype=object)  # index -1 -> None
    return {
        PREDICTED_LABEL: pd.array(names[chunk.predicted], dtype="str"),
        CONFIDENCE: np.asarray(chunk.confidence, dtype=np.float32),
        **prob_columns,
    }


def with_predictions(df: pd.DataFrame, chunk: LabeledChunk) -> pd.DataFrame:
    """A copy of `df` (the chunk's rows, in its order) with `prediction_columns(chunk)` after
    its own columns; columns of those names that `df` has already are replaced in place."""
    if len(df) != len(chunk):
        raise ValueError(f"{len(df)} rows but predictions for {len(chunk)}")
    out = df.copy()
    for name, values in prediction_columns(chunk).items():
        out[name] = values
    return out


def label_frame(
    nlp: spacy.Language, df: pd.DataFrame, *, text_column: str, batch_size: int = 256
) -> pd.DataFrame:
    """A copy of `df` with the prediction columns added after the original ones.

    One table in memory, texts in and columns out: e.g. what a Ray Data `map_batches`
    function calls on each batch. Refuses a table that has those columns already.
    """
    require_columns(df.columns, [text_column], source="The table")
    _check_no_clash(df.columns, pipeline_labels(nlp))
    chunk = label_chunk(nlp, text_values(df[text_column]), batch_size=batch_size)
    return with_predictions(df, chunk)


def _check_no_clash(columns: pd.Index, labels: list[str]) -> None:
    new_columns = [
        PREDICTED_LABEL,
        PREDICTED_LABELS,
        CONFIDENCE,
        *(prob_column(label) for label in labels),
    ]
    clash = [name for name in new_columns if name in set(map(str, columns))]
    if clash:
        raise BertclsError(
            f"The input already has the column(s) {clash}, which labeling adds (is it an "
            "already labeled file?). Rename or remove those columns, or label the original file."
        )


@dataclass
class LabelProgress:
    """Where a labeling run stands, reported after each chunk."""

    rows_done: int
    rows_total: int | None
    rows_per_second: float
    seconds_left: float | None


class LabelingCancelled(Exception):
    """Raised by `label_chunks` when `should_stop()` says so (before labeling a chunk)."""


def label_chunks(
    nlp: spacy.Language,
    texts: Iterable[str],
    rows: Iterable[int] | None = None,
    *,
    rows_total: int | None = None,
    chunk_size: int = 2048,
    target_seconds: float | None = None,
    min_chunk_size: int = 16,
    batch_size: int = 256,
    progress: Callable[[LabelProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[LabeledChunk]:
    """Label a stream of texts chunk by chunk; every labeling loop (CLI, app) is this one.

    texts: the texts, read lazily: only one chunk of them is held at a time.
    rows: their positions, yielded back in `LabeledChunk.rows`; by default 0, 1, 2, ...
    rows_total: how many texts there are (if known), for the time left in `progress`.
    chunk_size: the most texts per chunk (all chunks but the last have this many, unless
        `target_seconds` is set).
    target_seconds: if set, chunks are sized to take about this long each (between
        `min_chunk_size` and `chunk_size` texts), so that a cancel takes effect quickly.
    batch_size: texts per `nlp.pipe` batch.
    progress: called with a `LabelProgress` after the consumer has taken each chunk.
    should_stop: asked before each chunk; when it returns True, `LabelingCancelled` is raised
        (a consumer may also just stop iterating).
    """
    if chunk_size < 1:
        raise BertclsError(f"chunk_size must be 1 or more, not {chunk_size}.")
    min_chunk_size = max(1, min(min_chunk_size, chunk_size))
    texts = iter(texts)
    positions = itertools.count() if rows is None else iter(rows)
    # Adaptive sizes start small: the first chunks include the model's warm-up.
    size = chunk_size if target_seconds is None else min(chunk_size, 2 * min_chunk_size)
    rows_done = 0
    started = time.perf_counter()
    while True:
        batch = list(itertools.islice(texts, size))
        if not batch:
            return
        if should_stop is not None and should_stop():
            raise LabelingCancelled
        chunk_started = time.perf_counter()
        chunk = label_chunk(
            nlp, batch, np.fromiter(positions, np.int64, len(batch)), batch_size=batch_size
        )
        seconds = time.perf_counter() - chunk_started
        yield chunk
        rows_done += len(chunk)
        if progress is not None:
            progress(_progress(rows_done, rows_total, time.perf_counter() - started))
        if target_seconds is not None:
            wanted = int(target_seconds * len(chunk) / seconds) if seconds > 0 else chunk_size
            # Grow gently (one slow chunk may be an outlier), shrink at once.
            size = max(min_chunk_size, min(chunk_size, wanted, 2 * size))


def _progress(rows_done: int, rows_total: int | None, seconds: float) -> LabelProgress:
    rate = rows_done / seconds if seconds > 0 else 0.0
    left = None
    if rows_total is not None and rate > 0:
        left = max(rows_total - rows_done, 0) / rate
    return LabelProgress(rows_done, rows_total, rate, left)


@dataclass
class LabelSummary:
    """What a `label_file` run did."""

    rows: int  # rows read (all of them, or those done before a cancel)
    rows_labeled: int  # rows with a text, sent to the model
    rows_empty: int  # rows with an empty text
    seconds: float
    rows_per_second: float
    label_counts: dict[str, int] = field(default_factory=dict)
    output: Path | None = None
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)  # what reading the input warned about

    def format(self) -> str:
        """A readable multi-line summary (printed by the CLI)."""
        if self.cancelled:
            head = f"Cancelled after {self.rows:,} rows; {self.output} was not written."
        else:
            head = f"Labeled {self.rows:,} rows -> {self.output}"
        lines = [
            head,
            f"  {self.rows_labeled:,} with a text, {self.rows_empty:,} empty (left unlabeled)",
            f"  {self.seconds:.1f} s, {self.rows_per_second:,.0f} rows/s",
        ]
        total = sum(self.label_counts.values()) or 1
        for label, n in sorted(self.label_counts.items(), key=lambda item: -item[1]):
            lines.append(f"  {label}: {n:,} ({n / total:.1%})")
        lines.extend(f"  warning: {note}" for note in self.notes)
        return "\n".join(lines)

    def add(self, chunk: LabeledChunk) -> None:
        """Count a chunk's rows and labels."""
        empty = int((chunk.predicted < 0).sum())
        self.rows += len(chunk)
        self.rows_empty += empty
        self.rows_labeled += len(chunk) - empty
        for label, n in chunk.label_counts().items():
            self.label_counts[label] = self.label_counts.get(label, 0) + n


def label_file(
    nlp: spacy.Language,
    path: str | Path,
    *,
    text_column: str,
    out: str | Path,
    sheet: str | int | None = None,
    encoding: str | None = None,
    chunk_size: int = 2048,
    batch_size: int = 256,
    progress: Callable[[LabelProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LabelSummary:
    """Label every row of a table file and write the rows with predictions to `out`.

    The input is streamed in chunks of `chunk_size` rows and `out` is written atomically
    (format from its suffix): it appears only when every row is done. `progress` is called
    after each chunk. When `should_stop()` returns True (checked before each chunk) the run
    stops, `out` is not created and the summary has `cancelled=True`.
    """
    path, out = Path(path), Path(out)
    check_not_same_file(path, out)
    writer = TableWriter(out)  # refuses an unsupported output suffix before any work
    notes: list[str] = []
    frames = iter_table_chunks(
        path, chunk_size=chunk_size, sheet=sheet, encoding=encoding, notes=notes
    )
    try:
        first = next(frames)
        require_columns(first.columns, [text_column], source=str(path))
        if first.empty:
            raise BertclsError(f"{path} has a header but no rows to label.")
        _check_no_clash(first.columns, pipeline_labels(nlp))
        writer.check_columns(first.columns)  # e.g. duplicate names for Parquet, before any work
        rows_total = count_rows(path, sheet=sheet, encoding=encoding)
        summary = LabelSummary(0, 0, 0, 0.0, 0.0, output=writer.path, notes=notes)
        pending: deque[pd.DataFrame] = deque()  # rows read, not yet written (about a chunk)

        def texts() -> Iterator[str]:
            for frame in itertools.chain([first], frames):
                pending.append(frame)
                yield from text_values(frame[text_column])

        start = time.perf_counter()
        try:
            with writer:
                chunks = label_chunks(
                    nlp,
                    texts(),
                    rows_total=rows_total,
                    chunk_size=chunk_size,
                    batch_size=batch_size,
                    progress=progress,
                    should_stop=should_stop,
                )
                for chunk in chunks:
                    writer.write(with_predictions(_take_rows(pending, len(chunk)), chunk))
                    summary.add(chunk)
        except LabelingCancelled:
            summary.cancelled = True
        summary.seconds = time.perf_counter() - start
        summary.rows_per_second = summary.rows / summary.seconds if summary.seconds else 0.0
        return summary
    finally:
        close = getattr(frames, "close", None)  # release the input file on errors too
        if close is not None:
            close()


def _take_rows(frames: deque[pd.DataFrame], n: int) -> pd.DataFrame:
    """The first `n` rows of the queued frames, removed from the queue."""
    parts = []
    while n > 0:
        frame = frames[0]
        if len(frame) <= n:
            parts.append(frames.popleft())
        else:
            parts.append(frame.iloc[:n])
            frames[0] = frame.iloc[n:]
        n -= len(parts[-1])
    return parts[0] if len(parts) == 1 else pd.concat(parts)
