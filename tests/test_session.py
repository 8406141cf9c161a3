"""The analyst's session without Qt: what the app shows and does, driven as plain Python."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gui.gui_support import LABELS, make_pipeline, make_rows

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import label_file
from spacy_bertcls.session import CORRECTED_LABEL, RowFilter, Session, SortKey
from spacy_bertcls.session.saved import load_session, save_session
from spacy_bertcls.tables import read_table, write_table


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    return make_pipeline(tmp_path_factory.mktemp("session") / "tiny")


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "tweets.csv"
    make_rows(120).to_csv(path, index=False)
    return path


@pytest.fixture
def session(pipeline_dir, table) -> Session:
    session = Session()
    session.open_pipeline(pipeline_dir)
    session.open_file(table)
    return session


def test_opening_guesses_columns_and_labeling_fills_every_row(session, table):
    assert session.text_column == "text" and session.gold_column == "airline_sentiment"
    assert session.labels == LABELS
    assert session.label() == 120
    results = session.results
    assert results.labeled.all()
    empty = session.frame["text"].isna().to_numpy()
    assert empty.any() and (results.predicted[empty] == -1).all()
    assert np.isnan(results.probs[empty]).all()


def test_labeled_frame_equals_what_bertcls_label_writes(session, pipeline_dir, table, tmp_path):
    """One labeler, one set of columns: an empty text is a missing predicted_label in both."""
    session.label()
    out = tmp_path / "cli.csv"
    label_file(session.nlp, table, text_column="text", out=out)
    cli = read_table(out)
    ours = session.labeled_frame()
    write_table(ours, tmp_path / "app.csv")
    app = read_table(tmp_path / "app.csv")
    pd.testing.assert_frame_equal(app, cli)
    assert app["predicted_label"].isna().sum() == session.frame["text"].isna().sum()


def test_float_gold_labels_are_read_as_labels(pipeline_dir, tmp_path):
    """A 0/1 gold column read as floats (Excel, Parquet) still marks wrong rows."""
    frame = pd.DataFrame({"text": ["great crew", "lost my bag", "where is gate 5"],
                          "gold": [1.0, 0.0, np.nan]})  # fmt: skip
    pipeline = make_pipeline(tmp_path / "binary", labels=["0", "1"])
    session = Session()
    session.open_pipeline(pipeline)
    session.set_table(tmp_path / "x.parquet", frame)
    assert session.gold_column == "gold"
    assert session.gold_codes.tolist() == [1, 0, -1]
    session.label()
    wrong = session.wrong_rows()
    assert wrong.tolist() == [
        session.results.predicted[0] != 1, session.results.predicted[1] != 0, False
    ]  # fmt: skip


def test_filters_and_sorting(session):
    session.label()
    results = session.results
    session.set_filter(RowFilter(predicted_label="negative"))
    assert (results.predicted[session.visible_rows] == 0).all()
    session.set_filter(RowFilter(gold_label="neutral"))
    assert (session.frame["airline_sentiment"].iloc[session.visible_rows] == "neutral").all()
    session.set_filter(RowFilter(wrong_only=True))
    assert session.visible_rows.tolist() == np.flatnonzero(session.wrong_rows()).tolist()
    session.set_filter(RowFilter(search="BAG"))
    assert all("bag" in session.text(r).lower() for r in session.visible_rows)
    session.set_filter(RowFilter(rows=np.array([5, 3, 9]), rows_description="three"))
    assert session.visible_rows.tolist() == [3, 5, 9]
    session.set_filter(RowFilter())
    session.set_sort(SortKey("confidence"))
    shown = results.confidence[session.visible_rows]
    known = shown[~np.isnan(shown)]
    assert (np.diff(known) >= 0).all() and np.isnan(shown[len(known) :]).all()  # empty last
    session.set_sort(SortKey("confidence", descending=True))
    shown = results.confidence[session.visible_rows]
    assert (np.diff(shown[~np.isnan(shown)]) <= 0).all() and np.isnan(shown[-1])
    assert session.view_row(int(session.visible_rows[7])) == 7


def test_corrections_undo_redo_and_unexported_work(session):
    session.label()
    assert not session.has_unexported_corrections()
    assert session.correct([1, 2, 3], "positive") == 3
    assert session.correct([3, 4], "negative") == 2
    assert session.results.corrected_count() == 4
    assert session.has_unexported_corrections()
    assert session.undo() == 2
    assert session.results.corrected_label(3) == "positive"
    assert session.results.corrected_label(4) is None
    assert session.redo() == 2
    assert session.results.corrected_label(3) == "negative"
    session.correct([1], None)
    assert session.redo() == 0  # a new step clears what could be redone
    corrections = session.corrections()
    assert list(corrections.columns) == ["row", "text", "label"]
    assert corrections["row"].tolist() == [4, 5, 6]  # spreadsheet rows of file rows 2, 3, 4
    session.mark_corrections_exported(session.results.corrections_version)
    assert not session.has_unexported_corrections()
    with pytest.raises(BertclsError, match="not a label"):
        session.correct([1], "maybe")


def test_changing_text_column_clears_results_and_says_what_is_lost(session):
    session.label()
    session.correct([0], "neutral")
    question = session.clearing_question("Switching text_column")
    assert "120 predictions and 1 corrections of tweets.csv" in question
    session.set_text_column("airline")
    assert session.results.labeled_count() == 0 and session.results.corrected_count() == 0
    assert session.clearing_question("x") is None


def test_reload_keeps_results_of_unchanged_texts(session, table):
    session.label()
    session.correct([5], "positive")
    before = session.results.probs.copy()
    frame = read_table(table)
    changed = pd.concat([frame.iloc[:1].assign(text="a brand new row"), frame], ignore_index=True)
    changed.loc[11, "text"] = "an edited text"
    restored = session.set_table(table, changed, keep_results=True)
    assert restored > 100
    assert not session.results.labeled[0] and not session.results.labeled[11]
    np.testing.assert_allclose(session.results.probs[1:11], before[0:10], equal_nan=True)
    assert session.results.corrected_label(6) == "positive"


def test_events_tell_observers_before_and_after(session):
    heard = []
    events = session.events
    events.order_about_to_change.connect(lambda: heard.append("about"))
    events.order_changed.connect(lambda: heard.append(("order", len(session.visible_rows))))
    events.corrections_changed.connect(lambda rows: heard.append(("corrected", rows.tolist())))
    session.set_filter(RowFilter(search="bag"))
    session.correct([7, 2], "neutral")
    assert heard[0] == "about" and heard[1][0] == "order"
    assert heard[2] == ("corrected", [2, 7])


def test_session_file_reopens_exactly(session, pipeline_dir, tmp_path):
    session.label()
    session.correct([2, 9], "negative")
    session.set_filter(RowFilter(confidence_max=0.9, corrected_only=False, search="a"))
    session.set_sort(SortKey("prob_positive", descending=True))
    path = save_session(session, tmp_path / "work", view={"current_row": 9})
    assert path.name == "work.bertcls-session"
    saved = load_session(path)
    assert saved.view == {"current_row": 9}
    again = Session()
    again.open_pipeline(saved.pipeline_path)
    again.open_file(saved.file_path, text_column=saved.text_column)
    assert again.restore(saved) == 120
    for name in ("labeled", "predicted", "corrected"):
        assert (getattr(again.results, name) == getattr(session.results, name)).all()
    np.testing.assert_array_equal(again.results.probs, session.results.probs)
    assert again.row_filter == session.row_filter and again.sort == session.sort
    assert again.visible_rows.tolist() == session.visible_rows.tolist()
    assert again.has_unexported_corrections()


def test_session_file_after_the_file_changed_matches_rows_by_text(session, table, tmp_path):
    session.label()
    session.correct([4], "positive")
    path = save_session(session, tmp_path / "s.bertcls-session")
    frame = read_table(table).iloc[::-1]  # every row moved
    frame.to_csv(table, index=False)
    again = Session()
    again.open_pipeline(load_session(path).pipeline_path)
    again.open_file(table)
    assert again.restore(load_session(path)) >= 110  # duplicate texts keep one result
    moved = 119 - 4
    assert again.results.corrected_label(moved) == "positive"


def test_a_damaged_or_foreign_session_file_is_refused(tmp_path):
    bad = tmp_path / "x.bertcls-session"
    bad.write_text("hello")
    with pytest.raises(BertclsError, match="not a bertcls session file"):
        load_session(bad)
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("session.json", json.dumps({"format": "bertcls-session", "version": 1}))
        zf.writestr("results.npz", buffer.getvalue())
    with pytest.raises(BertclsError):
        load_session(bad)


def test_reopening_an_exported_table_restores_predictions_and_corrections(session, tmp_path):
    session.label()
    session.correct([3, 8], "positive")
    exported = tmp_path / "tweets_labeled.xlsx"
    write_table(session.labeled_frame(), exported)
    again = Session()
    again.set_table(exported, read_table(exported))
    again.set_labels(LABELS)
    taken = again.imported
    assert taken == (session.results.labeled_count() - int(session.frame["text"].isna().sum()), 2)
    assert again.results.corrected_label(3) == "positive"
    labeled = again.results.labeled
    np.testing.assert_allclose(again.results.probs[labeled], session.results.probs[labeled])
    # The exported columns are not shown twice: the fresh ones replace them.
    names = [column.name for column in again.layout.columns]
    assert names.count("predicted_label") == 1 and names.count(CORRECTED_LABEL) == 1


def test_visible_rows_only_export(session):
    session.label()
    session.set_filter(RowFilter(predicted_label="neutral"))
    frame = session.labeled_frame(visible_only=True)
    assert len(frame) == len(session.visible_rows)
    assert set(frame["predicted_label"]) == {"neutral"}


def test_evaluation_numbers_rows_as_a_spreadsheet(session):
    session.label()
    evaluation = session.evaluate()
    errors = evaluation.result.most_confident_errors
    assert errors
    first = errors[0]
    assert first["row_number"] == int(evaluation.rows[first["row"]]) + 2
    gold, predicted = first["gold"], first["predicted"]
    rows = evaluation.table_rows(gold, predicted)
    assert (session.frame["airline_sentiment"].iloc[rows] == gold).all()
