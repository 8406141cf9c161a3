"""Corrections -> training data: the rows an analyst relabeled, as files ``train`` accepts.

``.spacy`` holds one Doc per row with ``doc.cats`` set one-hot over the pipeline's labels,
written by ``spacy_bertcls.convert.write_corpus`` as ``bertcls convert`` writes its splits.
A multi-label pipeline's rows have a list of labels each: its Docs have 1.0 for each of them,
and its tables join them by ``MULTI_LABEL_SEP`` (read them with ``bertcls convert
--multi-label-sep ";"``; a row corrected to no label at all has an empty label there, which
``convert`` drops, so keep such rows in ``.spacy``).
``.csv``/``.jsonl``/``.xlsx`` hold ``text,label`` columns written by
``tables.write_table``, which ``bertcls convert`` reads. ``write_table`` protects spreadsheet
users by prefixing ``'`` to CSV/XLSX cells that start with ``= + - @``, and ``read_table``
removes it again, so convert trains on the exact texts; the app tells the user, since other
tools reading the file would see the ``'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from spacy.language import Language

from spacy_bertcls.convert import write_corpus
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import MULTI_LABEL_SEP
from spacy_bertcls.tables import write_table
from spacy_bertcls.tables.guards import neutralize_formulas

#: Suffix -> name shown in the save dialog; the first is the default.
CORRECTION_SUFFIXES = {
    ".spacy": "spaCy DocBin",
    ".jsonl": "JSON lines text,label",
    ".csv": "CSV text,label",
    ".xlsx": "Excel text,label",
}


def changed_by_formula_guard(texts: pd.Series) -> int:
    """How many texts ``write_table`` would prefix with ``'`` in a CSV or XLSX file."""
    texts = texts.astype(object)
    return int((neutralize_formulas(texts) != texts).sum())


def write_corrections(
    corrections: pd.DataFrame, path: str | Path, labels: Sequence[str], nlp: Language | None
) -> Path:
    """Write ``corrections`` (columns ``text`` and ``label``, and ``row`` for the tables) to
    ``path``; format by suffix. A ``label`` cell may be a list of labels (multi-label).

    labels: every label of the pipeline, so each Doc's ``cats`` has all of them.
    nlp: whose tokenizer makes the Docs for ``.spacy``; a blank English one when None.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CORRECTION_SUFFIXES:
        raise BertclsError(
            f"Cannot write corrections to {path.name}: use one of {', '.join(CORRECTION_SUFFIXES)}."
        )
    if suffix != ".spacy":
        columns = [name for name in ("row", "text", "label") if name in corrections.columns]
        table = corrections[columns].copy()
        table["label"] = [
            MULTI_LABEL_SEP.join(cell) if isinstance(cell, list | tuple) else cell
            for cell in table["label"]
        ]
        write_table(table, path)
        return path
    return write_corpus(
        path, corrections["text"].tolist(), corrections["label"].tolist(), labels, nlp=nlp
    )
