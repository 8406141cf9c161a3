"""Tests for spacy_bertcls.labeling, with a tiny spaCy textcat trained inside the tests."""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spacy
from spacy.training import Example

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import (
    CONFIDENCE,
    PREDICTED_LABEL,
    LabelingCancelled,
    LabelProgress,
    label_chunks,
    label_file,
    label_frame,
    predict_proba,
    prob_column,
)
from spacy_bertcls.pipelines import find_textcat, load_pipeline, pipeline_info, pipeline_labels
from spacy_bertcls.tables import read_table, write_table

POSITIVE = [
    "great movie",
    "loved it",
    "wonderful acting",
    "really good",
    "fantastic fun",
    "a joy to watch",
    "brilliant and fun",
    "superb",
    "so good",
    "amazing story",
]
NEGATIVE = [
    "terrible movie",
    "hated it",
    "awful acting",
    "really bad",
    "boring mess",
    "a waste of time",
    "dull and bad",
    "horrible",
    "so bad",
    "awful story",
]
PROB_COLUMNS = [prob_column("pos"), prob_column("neg")]


def train_examples(nlp: spacy.Language) -> list[Example]:
    def example(text: str, label: str) -> Example:
        cats = {"pos": float(label == "pos"), "neg": float(label == "neg")}
        return Example.from_dict(nlp.make_doc(text), {"cats": cats})

    return [example(t, "pos") for t in POSITIVE] + [example(t, "neg") for t in NEGATIVE]


@pytest.fixture(scope="module")
def nlp() -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat")
    examples = train_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(8):
        nlp.update(examples, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def saved_pipeline(nlp, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipelines") / "model-best"
    nlp.to_disk(path)
    return path


def reviews(n: int = 30) -> pd.DataFrame:
    texts = [None if i % 5 == 2 else (POSITIVE + NEGATIVE)[i % 20] for i in range(n)]
    return pd.DataFrame(
        {"id": [str(i) for i in range(n)], "review": texts, "note": ["=SUM(A1)"] * n}
    )


# --- the pipeline ----------------------------------------------------------------------------


def test_find_textcat_and_labels(nlp):
    name, component = find_textcat(nlp)
    assert name == "textcat" and component is nlp.get_pipe("textcat")
    assert pipeline_labels(nlp) == ["pos", "neg"]


def test_pipeline_without_textcat():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    with pytest.raises(BertclsError, match=r"no text classifier \(its components: sentencizer\)"):
        find_textcat(nlp)


def test_multilabel_pipeline_is_found():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_multilabel")
    nlp.initialize(lambda: train_examples(nlp))
    assert pipeline_labels(nlp) == ["pos", "neg"]
    probs = predict_proba(nlp, ["great", ""])
    assert probs.shape == (2, 2) and np.isfinite(probs[0]).all() and np.isnan(probs[1]).all()


def test_load_pipeline(saved_pipeline):
    loaded = load_pipeline(saved_pipeline)
    assert pipeline_labels(loaded) == ["pos", "neg"]


def test_pipeline_info(saved_pipeline):
    info = pipeline_info(load_pipeline(saved_pipeline))
    assert info.text_classifier == "textcat" and info.factory == "textcat"
    assert info.labels == ["pos", "neg"] and info.exclusive_classes is True
    assert info.components == ["textcat"] and "threshold" in info.settings
    assert info.path == str(saved_pipeline) and isinstance(info.scores, dict)
    assert info.freeze_encoder is None and info.encoder is None
    facts = dict(info.facts())
    assert facts["Labels"] == "pos, neg"
    assert facts["freeze_encoder"] == "— (no freeze_encoder setting)"
    assert facts["class_weights_used"] == "— (no class_weights setting)"


def test_load_pipeline_bad_paths(tmp_path):
    with pytest.raises(BertclsError, match="does not exist.*model-best"):
        load_pipeline(tmp_path / "missing")
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(BertclsError, match="is a file.*config.cfg"):
        load_pipeline(file)
    with pytest.raises(
        BertclsError, match="not a spaCy pipeline: it has no config.cfg and no meta"
    ):
        load_pipeline(tmp_path)


def test_load_pipeline_without_textcat(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "pipe")
    with pytest.raises(BertclsError, match="no text classifier"):
        load_pipeline(tmp_path / "pipe")


def test_load_pipeline_broken_config(tmp_path):
    nlp = spacy.blank("en")
    nlp.to_disk(tmp_path / "pipe")
    (tmp_path / "pipe" / "config.cfg").write_text("[nlp\nlang = ")
    with pytest.raises(BertclsError, match="Could not load the pipeline"):
        load_pipeline(tmp_path / "pipe")


# --- predicting ------------------------------------------------------------------------------


def test_predict_proba(nlp):
    probs = predict_proba(nlp, ["great fun", "", "awful and bad", "   ", "x" * 100_000])
    assert probs.shape == (5, 2) and probs.dtype == np.float32
    assert np.isnan(probs[[1, 3]]).all()
    np.testing.assert_allclose(probs[[0, 2, 4]].sum(axis=1), 1.0, rtol=1e-5)
    assert probs[0, 0] > probs[0, 1] and probs[2, 1] > probs[2, 0]


def test_label_frame(nlp):
    df = reviews(10)
    df.index = pd.RangeIndex(100, 110)  # a later chunk's index
    out = label_frame(nlp, df, text_column="review")
    assert out.columns.tolist() == [*df.columns, PREDICTED_LABEL, CONFIDENCE, *PROB_COLUMNS]
    pd.testing.assert_frame_equal(out[df.columns], df)
    empty = df["review"].isna().to_numpy()
    assert out[PREDICTED_LABEL][empty].isna().all() and out[CONFIDENCE][empty].isna().all()
    assert set(out[PREDICTED_LABEL][~empty]) <= {"pos", "neg"}
    probs = out[PROB_COLUMNS][~empty].to_numpy()
    np.testing.assert_allclose(out[CONFIDENCE][~empty], probs.max(axis=1))


def test_label_frame_refuses_existing_output_columns(nlp):
    df = reviews(3).assign(predicted_label="x")
    with pytest.raises(BertclsError, match=r"\['predicted_label'\].*Rename"):
        label_frame(nlp, df, text_column="review")


def test_label_frame_numbers_in_text_column(nlp):
    df = pd.DataFrame({"review": [1.0, np.nan, "great"]})
    out = label_frame(nlp, df, text_column="review")
    assert pd.isna(out[PREDICTED_LABEL][1]) and out[PREDICTED_LABEL][0] in {"pos", "neg"}


def test_label_chunks_streams_texts_with_their_rows(nlp):
    texts = (POSITIVE + NEGATIVE + ["", "  "]) * 3
    drawn = []

    def lazily():
        for text in texts:
            drawn.append(text)
            yield text

    rows = range(100, 100 + len(texts))
    chunks = label_chunks(nlp, lazily(), rows, chunk_size=7)
    first = next(chunks)
    assert len(drawn) == 7  # only one chunk of texts is read at a time
    rest = list(chunks)
    assert [len(c) for c in [first, *rest]] == [7] * 9 + [3]
    positions = np.concatenate([c.rows for c in [first, *rest]])
    np.testing.assert_array_equal(positions, np.arange(100, 166))
    # The same numbers as labeling all texts at once; empty texts: -1, NaN.
    probs = np.concatenate([c.probs for c in [first, *rest]])
    np.testing.assert_allclose(probs, predict_proba(nlp, texts), rtol=1e-5, equal_nan=True)
    predicted = np.concatenate([c.predicted for c in [first, *rest]])
    assert (predicted[[20, 21]] == -1).all() and (predicted[:20] >= 0).all()
    confidence = np.concatenate([c.confidence for c in [first, *rest]])
    np.testing.assert_allclose(confidence[:20], probs[:20].max(axis=1))
    assert np.isnan(confidence[[20, 21]]).all() and first.labels == ["pos", "neg"]


def test_label_chunks_adaptive_sizes_progress_and_cancel(nlp):
    seen: list[LabelProgress] = []
    stops = []

    def stop_after_three() -> bool:
        stops.append(1)
        return len(stops) > 3

    chunks = label_chunks(
        nlp,
        POSITIVE * 100,
        rows_total=1000,
        chunk_size=64,
        target_seconds=10.0,  # far more than any chunk takes: sizes double up to chunk_size
        min_chunk_size=4,
        progress=seen.append,
        should_stop=stop_after_three,
    )
    sizes = []
    with pytest.raises(LabelingCancelled):
        for chunk in chunks:
            sizes.append(len(chunk))
    assert sizes == [8, 16, 32]
    assert [p.rows_done for p in seen] == [8, 24, 56] and seen[-1].rows_total == 1000
    assert seen[-1].seconds_left is not None and seen[-1].seconds_left > 0
    tiny = label_chunks(nlp, POSITIVE * 10, chunk_size=64, target_seconds=1e-9, min_chunk_size=4)
    assert [len(c) for c in tiny][:3] == [8, 4, 4]  # too slow for the target: the smallest


# --- labeling files --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl"])
def test_label_file_keeps_columns_and_adds_predictions(nlp, tmp_path, suffix):
    source = tmp_path / f"reviews{suffix}"
    df = reviews()
    write_table(df, source)
    original = read_table(source)
    seen: list[LabelProgress] = []
    out = tmp_path / f"labeled{suffix}"
    summary = label_file(
        nlp, source, text_column="review", out=out, chunk_size=7, progress=seen.append
    )
    labeled = read_table(out)
    assert labeled.columns.tolist() == [
        *original.columns,
        PREDICTED_LABEL,
        CONFIDENCE,
        *PROB_COLUMNS,
    ]
    pd.testing.assert_frame_equal(labeled[original.columns], original, check_dtype=False)
    empty = original["review"].isna().to_numpy()
    probs = labeled[PROB_COLUMNS].astype(float).to_numpy()
    np.testing.assert_allclose(probs[~empty].sum(axis=1), 1.0, rtol=1e-5)
    assert np.isnan(probs[empty]).all()
    predicted = labeled[PREDICTED_LABEL]
    assert predicted[empty].isna().all() and predicted[~empty].isin(["pos", "neg"]).all()
    assert (summary.rows, summary.rows_empty, summary.rows_labeled) == (30, 6, 24)
    assert sum(summary.label_counts.values()) == 24 and not summary.cancelled
    assert [p.rows_done for p in seen] == [7, 14, 21, 28, 30]
    assert all(p.rows_total == 30 for p in seen) and seen[-1].seconds_left == 0
    assert "Labeled 30 rows" in summary.format()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, out.name])


def test_label_file_pairs_rows_when_read_chunks_differ_from_label_chunks(
    nlp, tmp_path, monkeypatch
):
    from spacy_bertcls import labeling

    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    table = read_table(source)
    uneven = [table.iloc[a:b] for a, b in [(0, 3), (3, 8), (8, 9), (9, 9), (9, 30)]]
    monkeypatch.setattr(labeling, "iter_table_chunks", lambda *args, **kwargs: iter(uneven))
    out = tmp_path / "labeled.parquet"
    label_file(nlp, source, text_column="review", out=out, chunk_size=4)
    expected = label_frame(nlp, table, text_column="review")
    pd.testing.assert_frame_equal(read_table(out), expected)


def test_label_file_neutralizes_formulas_in_csv_output(nlp, tmp_path):
    source = tmp_path / "reviews.jsonl"  # JSON lines keep "=SUM(A1)" as it is
    write_table(reviews(5), source)
    label_file(nlp, source, text_column="review", out=tmp_path / "labeled.csv")
    with open(tmp_path / "labeled.csv", encoding="utf-8-sig", newline="") as file:
        notes = [row["note"] for row in csv.DictReader(file)]
    assert notes == ["'=SUM(A1)"] * 5  # in the file...
    assert read_table(tmp_path / "labeled.csv")["note"].tolist() == ["=SUM(A1)"] * 5  # ...exact


def test_label_file_cancel_leaves_no_output(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    out = tmp_path / "labeled.csv"
    calls = []

    def stop_after_two_chunks() -> bool:
        calls.append(1)
        return len(calls) > 2

    summary = label_file(
        nlp, source, text_column="review", out=out, chunk_size=7, should_stop=stop_after_two_chunks
    )
    assert summary.cancelled and summary.rows == 14
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]
    assert "Cancelled after 14 rows" in summary.format()


def test_label_file_cancel_keeps_older_output(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    out = tmp_path / "labeled.parquet"
    out.write_text("older result")
    summary = label_file(nlp, source, text_column="review", out=out, should_stop=lambda: True)
    assert summary.cancelled and summary.rows == 0
    assert out.read_text() == "older result"


def test_label_file_error_mid_run_leaves_no_output(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    out = tmp_path / "labeled.xlsx"

    def fail(progress: LabelProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_file(nlp, source, text_column="review", out=out, chunk_size=7, progress=fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]


def test_label_file_refuses_output_equal_to_input(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    with pytest.raises(BertclsError, match="is the input file"):
        label_file(nlp, source, text_column="review", out=tmp_path / "reviews.csv")
    assert read_table(source)["id"].tolist() == [str(i) for i in range(30)]


def test_label_file_missing_text_column(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    with pytest.raises(BertclsError, match=r"'reveiw' \(did you mean 'review'\?\).*'id', 'review'"):
        label_file(nlp, source, text_column="reveiw", out=tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_label_file_header_only(nlp, tmp_path):
    source = tmp_path / "header.csv"
    source.write_text("id,review\n")
    with pytest.raises(BertclsError, match="header but no rows"):
        label_file(nlp, source, text_column="review", out=tmp_path / "out.csv")


def test_label_file_unsupported_output_suffix(nlp, tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(reviews(), source)
    with pytest.raises(BertclsError, match="unsupported output suffix '.pdf'"):
        label_file(nlp, source, text_column="review", out=tmp_path / "out.pdf")


def test_label_file_excel_sheet_choice(nlp, tmp_path):
    import openpyxl

    source = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "About"
    workbook.active.append(["notes"])
    data = workbook.create_sheet("Data")
    data.append(["review"])
    for text in POSITIVE:
        data.append([text])
    workbook.save(source)
    with pytest.raises(BertclsError, match="2 sheets: 'About', 'Data'"):
        label_file(nlp, source, text_column="review", out=tmp_path / "out.csv")
    summary = label_file(nlp, source, text_column="review", out=tmp_path / "out.csv", sheet="Data")
    assert summary.rows == 10
