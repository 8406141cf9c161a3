"""Evaluating a pipeline on a file: load it, read the texts and gold labels, predict, score.

`bertcls evaluate` runs this; the metrics, plots and reports are the rest of this package, and
the prediction is `spacy_bertcls.labeling`'s, the same as `bertcls label`'s. Rows whose text the
pipeline was trained on (`spacy_bertcls.fingerprint`) are counted, and scored apart: their
scores are inflated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from spacy.tokens import DocBin

from ..calibration import uncalibrated
from ..decisions import DecisionRule, decision_rule
from ..errors import BertclsError
from ..fingerprint import trained_on
from ..labeling import predict_proba
from ..pipelines import find_textcat, load_pipeline, pipeline_labels
from ..tables import read_table, require_columns, row_numbers
from ..tables.cells import text_values
from .metrics import EvaluationResult, evaluate_predictions
from .multilabel import MultiLabelResult, evaluate_multilabel
from .plots import format_share
from .report import EXPLANATIONS_DETAIL

if TYPE_CHECKING:
    from ..explain import Explanation

# The report's most confident errors get their words highlighted (spacy_bertcls.explain) for
# at most this many rows, within about this many seconds, and only for texts up to this many
# characters (an explanation's cost grows with the words times the windows of a text).
EXPLAINED_ERRORS = 20
EXPLAIN_SECONDS = 60.0
EXPLAIN_MAX_CHARS = 2000


def evaluate_file(
    pipeline: str | Path,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    sheet: str | int | None = None,
    encoding: str | None = None,
    batch_size: int = 256,
    multi_label_sep: str | None = None,
    explain_errors: bool = True,
) -> tuple[EvaluationResult | MultiLabelResult, dict[str, Any]]:
    """Load a pipeline, predict a table's (or a ``.spacy`` file's) texts and score them.

    A ``.spacy`` file (as written by ``convert``) carries its gold labels in ``doc.cats``: the
    label with value 1.0 is the gold one, and the column options are not used.
    When some evaluated rows are texts the pipeline was trained on, the result gets a note
    saying how many, with the scores of the held-out rows alone, and the details get
    "trained-on rows" (and "held-out accuracy", "held-out macro F1" where rows are left).
    Rows are numbered as a spreadsheet shows them (`tables.row_numbers`: a CSV's first data row
    is 2, a .txt file's first line 1); a ``.spacy`` file's docs from 1.
    A multi-label pipeline is scored by `evaluate_multilabel` (a table's label cells hold
    several labels separated by ``multi_label_sep``) and gives a `MultiLabelResult`.
    explain_errors: for a single-label ``bert_textcat`` pipeline, explain the predicted label of
        the most confident errors (`explain_errors`); `write_report` highlights their words.
    RETURNS: the result and the details that a report's header shows (and, under
        ``"explanations"``, the errors' explanations by row, which the header leaves out).
    """
    path = Path(path)
    nlp = load_pipeline(pipeline)
    rule = decision_rule(nlp)
    if not rule.exclusive:
        return _evaluate_multilabel_file(
            nlp,
            pipeline,
            path,
            rule,
            text_column=text_column,
            label_column=label_column,
            multi_label_sep=multi_label_sep,
            sheet=sheet,
            encoding=encoding,
            batch_size=batch_size,
        )
    input_notes: list[str] = []
    if path.suffix == ".spacy":
        texts, gold = _texts_and_gold_from_docbin(path, nlp)
        numbers = np.arange(1, len(texts) + 1)
        columns = "doc.text / doc.cats"
    else:
        table = read_table(path, sheet=sheet, encoding=encoding, notes=input_notes)
        require_columns(table.columns, [text_column, label_column], source=str(path))
        texts, gold = text_values(table[text_column]), table[label_column].tolist()
        numbers = row_numbers(table, range(len(table)))
        columns = f"text: {text_column}, gold: {label_column}"
    probs = predict_proba(nlp, texts, batch_size=batch_size)
    labels = pipeline_labels(nlp)
    result = evaluate_predictions(
        gold,
        probs,
        labels,
        texts=texts,
        row_numbers=numbers,
        rule=rule,
        uncalibrated_probs=uncalibrated_of(nlp, probs),
    )
    result.input_notes = input_notes
    details: dict[str, Any] = {"pipeline": str(pipeline), "data": str(path), "columns": columns}
    details.update(calibration_details(nlp))
    seen = trained_on(nlp, texts)
    details.update(warn_trained_on(result, seen, gold, probs, labels, texts, rule=rule))
    explanations = explain_errors_of(nlp, result) if explain_errors else {}
    if explanations:
        details[EXPLANATIONS_DETAIL] = explanations
    return result, details


def explain_errors_of(
    nlp: Any,
    result: EvaluationResult,
    *,
    limit: int = EXPLAINED_ERRORS,
    seconds: float = EXPLAIN_SECONDS,
) -> dict[int, Explanation]:
    """Explanations of the predicted (wrong) label of the most confident errors, by their
    "row", with `spacy_bertcls.explain`'s default method; {} unless the pipeline's classifier
    is a ``bert_textcat``. Bounded: at most ``limit`` rows, texts of at most EXPLAIN_MAX_CHARS
    characters, and none started after ``seconds``."""
    from ..explain import explain, explainable

    if not explainable(nlp):
        return {}
    started = time.perf_counter()
    explanations: dict[int, Explanation] = {}
    for error in result.most_confident_errors[:limit]:
        if time.perf_counter() - started > seconds:
            break
        text = error["text"]
        if text and text.strip() and len(text) <= EXPLAIN_MAX_CHARS:
            explanations[error["row"]] = explain(nlp, text, error["predicted"])
    return explanations


def _evaluate_multilabel_file(
    nlp: Any,
    pipeline: str | Path,
    path: Path,
    rule: DecisionRule,
    *,
    text_column: str,
    label_column: str,
    multi_label_sep: str | None,
    sheet: str | int | None,
    encoding: str | None,
    batch_size: int,
) -> tuple[MultiLabelResult, dict[str, Any]]:
    if path.suffix != ".spacy" and multi_label_sep is None:
        raise BertclsError(
            f"{pipeline} is multi-label: pass --multi-label-sep (the separator between the "
            f"labels of one cell of {label_column!r}, e.g. ';'), as for `bertcls convert`."
        )
    notes: list[str] = []
    texts, cats, numbers = read_gold(
        nlp,
        path,
        text_column=text_column,
        label_column=label_column,
        multi_label_sep=multi_label_sep,
        sheet=sheet,
        encoding=encoding,
        notes=notes,
    )
    probs = predict_proba(nlp, texts, batch_size=batch_size)
    result = evaluate_multilabel(
        cats,
        probs,
        rule.labels,
        rule.thresholds,
        texts=texts,
        row_numbers=numbers,
        uncalibrated_probs=uncalibrated_of(nlp, probs),
    )
    result.input_notes = notes
    warn_trained_on_multilabel(result, trained_on(nlp, texts))
    columns = (
        "doc.text / doc.cats"
        if path.suffix == ".spacy"
        else (
            f"text: {text_column}, gold: {label_column} (labels separated by {multi_label_sep!r})"
        )
    )
    details: dict[str, Any] = {"pipeline": str(pipeline), "data": str(path), "columns": columns}
    details.update(calibration_details(nlp))
    return result, details


def uncalibrated_of(nlp: Any, probs: np.ndarray) -> np.ndarray | None:
    """The probabilities before the pipeline's temperature scaling (None: it has none)."""
    _, component = find_textcat(nlp)
    temperature = getattr(component, "temperature", None)
    if temperature is None:
        return None
    return uncalibrated(
        probs,
        temperature,
        exclusive=component.cfg["exclusive_classes"],
        bias=getattr(component, "logit_bias", None),
    )


def calibration_details(nlp: Any) -> dict[str, Any]:
    """For a report's header: the temperature and the decision rule of the pipeline."""
    _, component = find_textcat(nlp)
    temperature = getattr(component, "temperature", None)
    details: dict[str, Any] = {"decision": decision_rule(nlp).describe()}
    if temperature is not None:
        details["temperature"] = ", ".join(f"{t:.3f}" for t in temperature)
    return details


def warn_trained_on_multilabel(result: MultiLabelResult, seen: np.ndarray) -> None:
    """When scored rows were trained on (``seen``, per input row), add the note saying so to
    ``result``. ``bertcls evaluate`` and the app's Evaluate both call this for multi-label."""
    seen = np.asarray(seen, dtype=bool)[result.row_index]
    if seen.any():
        result.input_notes.append(
            f"{int(seen.sum()):,} of {result.n_scored:,} scored rows are texts this pipeline was "
            "trained on; scores on them are inflated."
        )


def gold_label_sets(cells: Sequence[object], sep: str | None) -> list[list[str] | None]:
    """Each gold cell's labels, split by ``sep`` as ``bertcls convert`` splits them (one label
    when ``sep`` is None); None for a blank cell, which has no gold. What
    ``evaluate_multilabel`` takes as ``gold``."""
    from ..convert import split_labels

    return [split_labels(cell, sep) or None for cell in cells]


def warn_trained_on(
    result: EvaluationResult,
    seen: np.ndarray,
    gold: list[str | None],
    probs: np.ndarray,
    labels: list[str],
    texts: list[str],
    *,
    rule: DecisionRule | None = None,
) -> dict[str, Any]:
    """When evaluated rows were trained on (``seen``, per input row), add the note saying so
    to ``result`` and return the details for a report (count, held-out scores); else ``{}``.
    ``bertcls evaluate`` and the app's Evaluate both call this."""
    if not seen[result.row_index].any():
        return {}
    held_out = _held_out_result(result, seen, gold, probs, labels, texts, rule)
    note, details = trained_on_note(result, seen, held_out)
    result.input_notes.append(note)
    return details


def _held_out_result(
    result: EvaluationResult,
    seen: np.ndarray,
    gold: list[str | None],
    probs: np.ndarray,
    labels: list[str],
    texts: list[str],
    rule: DecisionRule | None,
) -> EvaluationResult | None:
    """The scores of the evaluated rows the pipeline was not trained on (None if none)."""
    if seen[result.row_index].all():
        return None
    # Only evaluated rows: a held-out row without a gold label has nothing to score.
    rows = result.row_index[~seen[result.row_index]]
    return evaluate_predictions(
        [gold[i] for i in rows],
        probs[rows],
        labels,
        texts=[texts[i] for i in rows],
        row_numbers=result.row_numbers[rows],
        rule=rule,
    )


def trained_on_note(
    result: EvaluationResult, seen: np.ndarray, held_out: EvaluationResult | None
) -> tuple[str, dict[str, Any]]:
    """The warning about rows trained on, and the details (count, held-out scores) to report.

    result: the evaluation of all rows; seen: per input row, whether it was trained on;
    held_out: the evaluation of the evaluated rows that were not (None when there are none).
    """
    n_seen = int(seen[result.row_index].sum())
    n_rows = result.n_evaluated
    share = format_share(n_seen / n_rows)
    count = f"{n_seen:,} of {n_rows:,} evaluated rows ({share})"
    details: dict[str, Any] = {"trained-on rows": count}
    note = f"{count} are texts this pipeline was trained on; scores on them are inflated. "
    if held_out is None:
        note += (
            "No held-out row is left to score: evaluate on rows the pipeline was not trained "
            "on (e.g. the test split of `bertcls convert`)."
        )
        return note, details
    accuracy, macro_f1 = held_out.accuracy, held_out.macro["f1"]
    note += (
        f"Held-out rows only ({held_out.n_evaluated:,}): accuracy {accuracy:.3f}, "
        f"macro F1 {macro_f1:.3f}."
    )
    details["held-out accuracy"] = round(accuracy, 4)
    details["held-out macro F1"] = round(macro_f1, 4)
    return note, details


def read_gold(
    nlp: Any,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    multi_label_sep: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    notes: list[str] | None = None,
) -> tuple[list[str], list[dict[str, float]], np.ndarray]:
    """Texts, gold ``doc.cats`` and row numbers (as `evaluate_file` numbers rows) of a
    ``.spacy`` file or of a table's text and label columns.

    A table's label cell gives 1.0 to its label (or, with ``multi_label_sep``, to each of its
    labels) and 0.0 to the pipeline's other labels; a blank cell gives no gold ({}).
    """
    path = Path(path)
    if path.suffix == ".spacy":
        docs = _docs_from_docbin(path, nlp)
        numbers = np.arange(1, len(docs) + 1)
        return [doc.text for doc in docs], [dict(doc.cats) for doc in docs], numbers
    table = read_table(path, sheet=sheet, encoding=encoding, notes=notes)
    require_columns(table.columns, [text_column, label_column], source=str(path))
    labels = pipeline_labels(nlp)
    cats = []
    for given in gold_label_sets(table[label_column].tolist(), multi_label_sep):
        cats.append({**dict.fromkeys(labels, 0.0), **dict.fromkeys(given, 1.0)} if given else {})
    return text_values(table[text_column]), cats, row_numbers(table, range(len(table)))


def _texts_and_gold_from_docbin(path: Path, nlp: Any) -> tuple[list[str], list[str | None]]:
    docs = _docs_from_docbin(path, nlp)
    gold = [next((k for k, v in doc.cats.items() if v == 1.0), None) for doc in docs]
    return [doc.text for doc in docs], gold


def _docs_from_docbin(path: Path, nlp: Any) -> list[Any]:
    if not path.exists():
        raise BertclsError(f"{path} does not exist.")
    try:
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except (ValueError, OSError) as error:
        raise BertclsError(f"{path} is not a readable .spacy file: {error}") from error
