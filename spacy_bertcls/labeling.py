"""Labeling rows with a trained pipeline: texts -> `doc.cats` -> new columns -> file.

The CLI and the desktop app both call `load_pipeline` and `label_file`; the app runs
`label_file` in a worker thread, so it reports progress through a callback and stops when
`should_stop()` says so. Any spaCy pipeline whose text classifier sets `doc.cats` works
(components made by "bert_textcat", "textcat" or "textcat_multilabel", or any other component
that declares it assigns `doc.cats`).

Added columns: `predicted_label` (the most probable label), `confidence` (its probability) and
one `prob_<label>` per label. For an exclusive classifier the probabilities of a row sum to 1;
for a multi-label one each is independent. Rows with an empty text are not sent to the model:
their label is "" and their probabilities NaN.

`spacy_bertcls.evaluation.files.evaluate_file` runs the same prediction on a table (or a
`.spacy` file) with gold labels and scores it, for `bertcls evaluate`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import spacy

from .errors import BertclsError
from .outputs import check_not_same_file
from .tables import (
    TableWriter,
    count_rows,
    iter_table_chunks,
    require_columns,
)
from .tables.cells import text_values

PREDICTED_LABEL = "predicted_label"
CONFIDENCE = "confidence"
TEXTCAT_FACTORIES = ("bert_textcat", "textcat", "textcat_multilabel")


def prob_column(label: str) -> str:
    """The name of the output column holding the probability of `label`."""
    return f"prob_{label}"


def load_pipeline(path: str | Path) -> spacy.Language:
    """Load a trained spaCy pipeline directory that contains a text classifier."""
    path = Path(path)
    if not path.exists():
        raise BertclsError(
            f"The pipeline {path} does not exist. Pass the directory `spacy train` wrote, "
            "e.g. training/model-best."
        )
    if not path.is_dir():
        raise BertclsError(
            f"The pipeline {path} is a file; pass the directory that holds config.cfg and "
            "meta.json (e.g. training/model-best)."
        )
    missing = [name for name in ("config.cfg", "meta.json") if not (path / name).is_file()]
    if missing:
        raise BertclsError(
            f"{path} is not a spaCy pipeline: it has no {' and no '.join(missing)}. Pass a "
            "directory saved by `spacy train` (model-best or model-last) or `nlp.to_disk`."
        )
    try:
        nlp = spacy.load(path)
    except (OSError, ValueError) as error:
        # Unknown factories, bad configs and missing weights all surface as these.
        raise BertclsError(f"Could not load the pipeline {path}: {error}") from error
    find_textcat(nlp)
    return nlp


def find_textcat(nlp: spacy.Language) -> tuple[str, Any]:
    """The (name, component) of the pipeline's text classifier (the first, if several)."""
    for name, component in nlp.pipeline:
        meta = nlp.get_pipe_meta(name)
        if meta.factory in TEXTCAT_FACTORIES or "doc.cats" in meta.assigns:
            return name, component
    names = ", ".join(nlp.pipe_names) or "none"
    raise BertclsError(
        f"The pipeline has no text classifier (its components: {names}). Expected one made by "
        f"{', '.join(TEXTCAT_FACTORIES)}; train one with `bertcls train` or `spacy train`."
    )


def pipeline_labels(nlp: spacy.Language) -> list[str]:
    """The text classifier's labels, in the order of the probability columns."""
    name, component = find_textcat(nlp)
    labels = list(getattr(component, "labels", ()))
    if not labels:
        raise BertclsError(f"The text classifier {name!r} has no labels; was it trained?")
    return labels


def pipeline_info(nlp: spacy.Language) -> dict[str, Any]:
    """What `bertcls info` shows about a pipeline: its text classifier, labels and scores.

    RETURNS: plain values, and dicts of plain values for "settings" (the classifier's config
        without its model block) and "scores" (the numbers `spacy train` stored in meta.json).
    """
    name, component = find_textcat(nlp)
    config = nlp.config["components"][name]
    settings = {
        key: value
        for key, value in config.items()
        if not isinstance(value, dict) and key != "factory"
    }
    factory = nlp.get_pipe_meta(name).factory
    performance = nlp.meta.get("performance") or {}
    bert = {}
    if factory == "bert_textcat":
        bert = {
            "encoder": config["model"]["encoder"],
            "encoder_training": "frozen" if config["freeze_encoder"] else "fine-tuned",
            "class_weights_used": component.class_weights,
        }
    return {
        "pipeline": f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
        "version": nlp.meta.get("version"),
        "spacy_version": nlp.meta.get("spacy_version"),
        "components": list(nlp.pipe_names),
        "text_classifier": name,
        "factory": factory,
        "labels": pipeline_labels(nlp),
        "exclusive_classes": settings.get("exclusive_classes", factory != "textcat_multilabel"),
        **bert,
        "settings": settings,
        "scores": {
            key: value
            for key, value in performance.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
    }


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


def label_frame(
    nlp: spacy.Language, df: pd.DataFrame, *, text_column: str, batch_size: int = 256
) -> pd.DataFrame:
    """A copy of `df` with the prediction columns added after the original ones."""
    require_columns(df.columns, [text_column], source="The table")
    labels = pipeline_labels(nlp)
    new_columns = [PREDICTED_LABEL, CONFIDENCE, *(prob_column(label) for label in labels)]
    _check_no_clash(df.columns, new_columns)
    probs = predict_proba(nlp, text_values(df[text_column]), batch_size=batch_size)
    labeled = ~np.isnan(probs).all(axis=1)
    filled = np.nan_to_num(probs, nan=-np.inf)
    best = filled.argmax(axis=1)
    out = df.copy()
    out[PREDICTED_LABEL] = pd.array(
        [labels[b] if ok else "" for b, ok in zip(best, labeled)], dtype="str"
    )
    out[CONFIDENCE] = np.where(labeled, filled.max(axis=1), np.nan).astype(np.float32)
    for j, label in enumerate(labels):
        out[prob_column(label)] = probs[:, j]
    return out


def _check_no_clash(columns: pd.Index, new_columns: list[str]) -> None:
    clash = [name for name in new_columns if name in set(map(str, columns))]
    if clash:
        raise BertclsError(
            f"The input already has the column(s) {clash}, which labeling adds (is it an "
            "already labeled file?). Rename or remove those columns, or label the original file."
        )


@dataclass
class LabelProgress:
    """Where a `label_file` run stands, reported after each chunk."""

    rows_done: int
    rows_total: int | None
    rows_per_second: float
    seconds_left: float | None


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
        """A readable multi-line summary (printed by the CLI, shown by the app)."""
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


class _Cancelled(Exception):
    """Raised inside the writer's `with` block so that it discards the temporary file."""


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
    chunks = iter_table_chunks(
        path, chunk_size=chunk_size, sheet=sheet, encoding=encoding, notes=notes
    )
    try:
        summary = _label_chunks(
            nlp,
            chunks,
            writer,
            path,
            text_column,
            sheet,
            encoding,
            batch_size,
            progress,
            should_stop,
        )
        summary.notes = notes
        return summary
    finally:
        close = getattr(chunks, "close", None)  # release the input file on errors too
        if close is not None:
            close()


def _label_chunks(
    nlp: spacy.Language,
    chunks: Iterator[pd.DataFrame],
    writer: TableWriter,
    path: Path,
    text_column: str,
    sheet: str | int | None,
    encoding: str | None,
    batch_size: int,
    progress: Callable[[LabelProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> LabelSummary:
    first = next(chunks)
    require_columns(first.columns, [text_column], source=str(path))
    if first.empty:
        raise BertclsError(f"{path} has a header but no rows to label.")
    writer.check_columns(first.columns)  # e.g. duplicate names for Parquet, before any work
    rows_total = count_rows(path, sheet=sheet, encoding=encoding)
    summary = LabelSummary(0, 0, 0, 0.0, 0.0, output=writer.path)
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    try:
        with writer:
            for chunk in chain([first], chunks):
                if should_stop is not None and should_stop():
                    raise _Cancelled
                labeled = label_frame(nlp, chunk, text_column=text_column, batch_size=batch_size)
                writer.write(labeled)
                _count(summary, counts, labeled[PREDICTED_LABEL])
                if progress is not None:
                    progress(_progress(summary.rows, rows_total, time.perf_counter() - start))
    except _Cancelled:
        summary.cancelled = True
    summary.seconds = time.perf_counter() - start
    summary.rows_per_second = summary.rows / summary.seconds if summary.seconds else 0.0
    summary.label_counts = dict(counts)
    return summary


def _count(summary: LabelSummary, counts: Counter[str], predicted: pd.Series) -> None:
    empty = int((predicted == "").sum())
    summary.rows += len(predicted)
    summary.rows_empty += empty
    summary.rows_labeled += len(predicted) - empty
    counts.update(label for label in predicted.tolist() if label)


def _progress(rows_done: int, rows_total: int | None, seconds: float) -> LabelProgress:
    rate = rows_done / seconds if seconds > 0 else 0.0
    left = None
    if rows_total is not None and rate > 0:
        left = max(rows_total - rows_done, 0) / rate
    return LabelProgress(rows_done, rows_total, rate, left)
