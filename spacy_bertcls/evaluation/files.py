"""Evaluating a pipeline on a file: load it, read the texts and gold labels, predict, score.

`bertcls evaluate` runs this; the metrics, plots and reports are the rest of this package, and
the prediction is `spacy_bertcls.labeling`'s, the same as `bertcls label`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spacy.tokens import DocBin

from ..errors import BertclsError
from ..labeling import predict_proba
from ..pipelines import load_pipeline, pipeline_labels
from ..tables import read_table, require_columns
from ..tables.cells import text_values
from .metrics import EvaluationResult, evaluate_predictions


def evaluate_file(
    pipeline: str | Path,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    sheet: str | int | None = None,
    encoding: str | None = None,
    batch_size: int = 256,
) -> tuple[EvaluationResult, dict[str, Any]]:
    """Load a pipeline, predict a table's (or a ``.spacy`` file's) texts and score them.

    A ``.spacy`` file (as written by ``convert``) carries its gold labels in ``doc.cats``: the
    label with value 1.0 is the gold one, and the column options are not used.
    RETURNS: the result and the details that a report's header shows.
    """
    path = Path(path)
    nlp = load_pipeline(pipeline)
    input_notes: list[str] = []
    if path.suffix == ".spacy":
        texts, gold = _texts_and_gold_from_docbin(path, nlp)
        columns = "doc.text / doc.cats"
    else:
        table = read_table(path, sheet=sheet, encoding=encoding, notes=input_notes)
        require_columns(table.columns, [text_column, label_column], source=str(path))
        texts, gold = text_values(table[text_column]), table[label_column].tolist()
        columns = f"text: {text_column}, gold: {label_column}"
    probs = predict_proba(nlp, texts, batch_size=batch_size)
    result = evaluate_predictions(gold, probs, pipeline_labels(nlp), texts=texts)
    result.input_notes = input_notes
    details = {"pipeline": str(pipeline), "data": str(path), "columns": columns}
    return result, details


def _texts_and_gold_from_docbin(path: Path, nlp: Any) -> tuple[list[str], list[str | None]]:
    if not path.exists():
        raise BertclsError(f"{path} does not exist.")
    try:
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except (ValueError, OSError) as error:
        raise BertclsError(f"{path} is not a readable .spacy file: {error}") from error
    gold = [next((k for k, v in doc.cats.items() if v == 1.0), None) for doc in docs]
    return [doc.text for doc in docs], gold
