"""One row numbering everywhere: the one a spreadsheet shows (the header is row 1).

A table read by `read_table` says which number its first data row has
(`attrs["first_row_number"]`: 2 under a header, 1 in a .txt or JSON lines file), and the
evaluation reports name rows by that numbering, as the app does.
"""

import json

import numpy as np
import pandas as pd
import pytest
import spacy
from spacy.training import Example

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import evaluate_predictions, write_report
from spacy_bertcls.evaluation.files import evaluate_file
from spacy_bertcls.labeling import predict_proba
from spacy_bertcls.tables import (
    first_row_number,
    iter_table_chunks,
    read_table,
    row_numbers,
    write_table,
)

LABELS = ["neg", "pos"]
TEXTS = ["a lovely day", "awful service", "great crew", "lost my bag", "fine flight"]


def write_txt(path, texts):
    path.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")


@pytest.mark.parametrize(
    ("suffix", "first"),
    [(".csv", 2), (".tsv", 2), (".xlsx", 2), (".parquet", 2), (".jsonl", 1), (".txt", 1)],
)
def test_tables_say_which_number_their_first_row_has(tmp_path, suffix, first):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".txt":
        write_txt(path, TEXTS)
    else:
        write_table(pd.DataFrame({"text": TEXTS, "label": ["pos"] * len(TEXTS)}), path)
    frame = read_table(path)
    assert frame.attrs["first_row_number"] == first
    assert first_row_number(frame) == first
    assert row_numbers(frame, range(len(frame))).tolist() == list(range(first, first + 5))
    assert read_table(path, nrows=2).attrs["first_row_number"] == first
    chunks = list(iter_table_chunks(path, chunk_size=2))
    assert [chunk.attrs["first_row_number"] for chunk in chunks] == [first] * 3
    # A chunk's index is the rows' position in the file, so its numbers continue.
    assert row_numbers(chunks[1], chunks[1].index).tolist() == [first + 2, first + 3]
    # What the app does with a frame keeps the number: select, filter, copy.
    assert first_row_number(frame[frame["text"] != "x"].copy()) == first


def test_row_numbers_of_frames_not_read_here_count_a_header():
    frame = pd.DataFrame({"text": TEXTS})
    assert first_row_number(frame) == 2
    assert row_numbers(frame, np.array([0, 4])).tolist() == [2, 6]
    assert row_numbers(1, [0, 4]).tolist() == [1, 5]
    frame.attrs["first_row_number"] = "2"
    with pytest.raises(BertclsError, match=r"first_row_number.*'2'.*whole number"):
        first_row_number(frame)


def test_evaluation_names_rows_by_the_numbers_passed_in():
    gold = ["pos", "neg", "pos"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])  # rows 0 and 1 wrong
    result = evaluate_predictions(gold, probs, LABELS, texts=TEXTS[:3], row_numbers=[1, 2, 3])
    errors = result.most_confident_errors
    # "row": the position in the inputs (as confusion_rows), "row_number": what people see.
    assert [(e["row"], e["row_number"]) for e in errors] == [(0, 1), (1, 2)]
    assert result.row_numbers.tolist() == [1, 2, 3]
    data = result.to_dict()
    assert [e["row_number"] for e in data["most_confident_errors"]] == [1, 2]
    assert all("row" not in e for e in data["most_confident_errors"])
    # Without row_numbers the rows are a table's data rows under a header: 2, 3, ...
    default = evaluate_predictions(gold, probs, LABELS)
    assert [e["row_number"] for e in default.most_confident_errors] == [2, 3]
    with pytest.raises(BertclsError, match="row_numbers must be one whole number per row"):
        evaluate_predictions(gold, probs, LABELS, row_numbers=[2, 3])
    with pytest.raises(BertclsError, match="row_numbers must be one whole number per row"):
        evaluate_predictions(gold, probs, LABELS, row_numbers=[2.0, 3.0, 4.0])


def test_report_of_a_txt_file_starts_at_row_1(tmp_path):
    path = tmp_path / "texts.txt"
    write_txt(path, TEXTS)
    frame = read_table(path)
    gold = ["pos", "neg", "zzz", "pos", "neg"]  # row 3 (line 3): a label the model lacks
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5], [0.4, 0.6], [0.3, 0.7]])
    result = evaluate_predictions(
        gold,
        probs,
        LABELS,
        texts=frame["text"].tolist(),
        row_numbers=row_numbers(frame, range(len(frame))),
    )
    written = write_report(result, tmp_path / "r.html", json_path=tmp_path / "r.json")
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    errors = {e["text"]: e["row_number"] for e in data["most_confident_errors"]}
    assert errors == {"a lovely day": 1, "fine flight": 5}
    page = written["html"].read_text(encoding="utf-8")
    assert '<tr><td>1</td><td class="label">pos</td>' in page
    assert '<td class="label">zzz</td><td>1</td><td class="label">3</td>' in page
    assert "the header is row 1" in page
    assert "0-based" not in page


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat")
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {"neg": float(i % 2 == 1), "pos": float(i % 2 == 0)}}
        )
        for i, text in enumerate(TEXTS)
    ]
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("pipeline") / "model-best"
    nlp.to_disk(path)
    return path, nlp


@pytest.mark.parametrize(("suffix", "first"), [(".csv", 2), (".xlsx", 2), (".jsonl", 1)])
def test_evaluate_file_reports_rows_as_a_spreadsheet_numbers_them(
    pipeline, tmp_path, suffix, first
):
    path_to_pipeline, nlp = pipeline
    predicted = predict_proba(nlp, TEXTS).argmax(axis=1)
    # Every gold label is the one not predicted, so every row is an error in the report.
    gold = [LABELS[1 - int(i)] for i in predicted]
    data_path = tmp_path / f"data{suffix}"
    write_table(pd.DataFrame({"text": TEXTS, "label": gold}), data_path)
    result, details = evaluate_file(path_to_pipeline, data_path)
    written = write_report(
        result, tmp_path / "r.html", json_path=tmp_path / "r.json", details=details
    )
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    numbers = {e["text"]: e["row_number"] for e in data["most_confident_errors"]}
    assert numbers == {text: first + i for i, text in enumerate(TEXTS)}
    page = written["html"].read_text(encoding="utf-8")
    assert f'<tr><td>{numbers[TEXTS[0]]}</td><td class="label">{gold[0]}</td>' in page
