"""A multi-label pipeline in the analyst's session (no Qt): label sets per row, filters and
sorting over them, set corrections with undo, the export `bertcls label` writes, and the
evaluation `bertcls evaluate --multi-label-sep ";"` reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import spacy
from multilabel_support import LABELS, make_multilabel_pipeline, make_table

from spacy_bertcls.decisions import decision_rule, least_sure_decision
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import MultiLabelResult
from spacy_bertcls.evaluation.files import evaluate_file
from spacy_bertcls.labeling import PREDICTED_LABELS, label_frame, prob_column
from spacy_bertcls.session import CORRECTED_LABELS, MARGIN, RowFilter, Session, SortKey
from spacy_bertcls.session.corrections import write_corrections
from spacy_bertcls.session.saved import load_session, save_session


@pytest.fixture(scope="module")
def pipeline_dir(tiny_encoder, tmp_path_factory):
    return make_multilabel_pipeline(tiny_encoder, tmp_path_factory.mktemp("ml") / "pipeline")


@pytest.fixture
def table(tmp_path):
    return make_table(tmp_path / "messages.csv")


@pytest.fixture
def session(pipeline_dir, table):
    session = Session()
    session.open_pipeline(pipeline_dir)
    session.open_file(table)
    session.label()
    return session


def test_rows_get_the_label_sets_of_the_pipelines_thresholds(session):
    results = session.results
    assert session.multi_label and results.multi_label
    assert session.gold_column == "labels"  # guessed: every cell is a ";"-set of known labels
    names = [column.name for column in session.layout.columns]
    assert PREDICTED_LABELS in names and CORRECTED_LABELS in names
    assert "predicted_label" not in names
    rule = decision_rule(session.nlp)
    assert rule.thresholds[LABELS.index("urgent")] == pytest.approx(0.4)
    np.testing.assert_array_equal(results.predicted_sets, rule.predicted_sets(results.probs))
    np.testing.assert_allclose(
        results.confidence, least_sure_decision(results.probs, results.predicted_sets)
    )
    empty = len(session.frame) - 1
    assert results.labeled[empty] and np.isnan(results.confidence[empty])
    assert results.predicted_labels(empty) == []


def test_least_sure_decision_is_the_decision_closest_to_a_coin_flip():
    probs = np.array([[0.9, 0.3], [0.55, 0.02], [np.nan, np.nan]])
    sets = probs >= 0.5
    np.testing.assert_allclose(least_sure_decision(probs, sets)[:2], [0.7, 0.55])
    assert np.isnan(least_sure_decision(probs, sets)[2])


def test_filter_by_a_label_shows_rows_whose_set_has_it(session):
    results = session.results
    for j, label in enumerate(LABELS):
        session.set_filter(RowFilter(predicted_label=label))
        assert sorted(session.visible_rows) == np.flatnonzero(results.predicted_sets[:, j]).tolist()
        session.set_filter(RowFilter(gold_label=label))
        assert sorted(session.visible_rows) == np.flatnonzero(session.gold_sets[:, j]).tolist()
    session.set_filter(RowFilter(wrong_only=True))
    gold = session.gold_sets
    wrong = (results.predicted_sets != gold).any(axis=1) & gold.any(axis=1) & results.labeled
    wrong &= results.predicted >= 0
    assert sorted(session.visible_rows) == np.flatnonzero(wrong).tolist()


def test_sorting_puts_the_least_sure_label_decision_first(session):
    probs = session.results.probs
    session.set_sort(SortKey("confidence"))
    confidence = session.results.confidence[session.visible_rows]
    shown = confidence[~np.isnan(confidence)]
    assert (np.diff(shown) >= 0).all() and np.isnan(confidence[-1])
    session.set_sort(SortKey(MARGIN))
    thresholds = decision_rule(session.nlp).thresholds
    closeness = np.abs(probs - thresholds).min(axis=1)[session.visible_rows]
    assert (np.diff(closeness[~np.isnan(closeness)]) >= 0).all()


def test_toggle_correct_accept_and_undo_label_sets(session):
    results = session.results
    rows = np.array([0, 1])
    before = results.predicted_sets[rows].copy()
    spam = LABELS.index("spam")
    session.toggle_label(rows, "spam")
    # Rows start from their predicted sets; "spam" goes on for both unless both had it.
    assert (results.corrected_sets[rows, spam] == (not before[:, spam].all())).all()
    np.testing.assert_array_equal(
        np.delete(results.corrected_sets[rows], spam, axis=1), np.delete(before, spam, axis=1)
    )
    session.toggle_label(rows, "spam")
    np.testing.assert_array_equal(results.corrected_sets[rows, spam], before[:, spam].all())
    assert session.correct([2], ["urgent", "social"]) == 1
    assert results.corrected_labels(2) == ["urgent", "social"]
    assert session.correct([3], []) == 1  # no label applies: a correction too
    assert results.corrected_labels(3) == [] and results.corrected_count() == 4
    session.undo()
    assert results.corrected_labels(3) is None
    session.redo()
    assert results.corrected_labels(3) == []
    session.correct([2], None)
    assert results.corrected_labels(2) is None
    session.accept_predictions(np.array([5, 6]))
    assert results.corrected_labels(5) == results.predicted_labels(5)
    with pytest.raises(BertclsError, match="not a label"):
        session.toggle_label([0], "ham")
    with pytest.raises(BertclsError, match="not a label"):
        session.correct([0], ["spam", "ham"])


def test_corrections_are_training_data_of_label_sets(session, tmp_path):
    session.correct([0], ["spam", "urgent"])
    session.correct([1], [])
    corrections = session.corrections()
    assert corrections["label"].tolist() == [["spam", "urgent"], []]
    csv = write_corrections(corrections, tmp_path / "fixed.csv", session.labels, session.nlp)
    assert pd.read_csv(csv, keep_default_na=False)["label"].tolist() == ["spam;urgent", ""]
    docbin = write_corrections(corrections, tmp_path / "fixed.spacy", session.labels, None)
    docs = list(spacy.tokens.DocBin().from_disk(docbin).get_docs(spacy.blank("en").vocab))
    assert docs[0].cats == {"spam": 1.0, "urgent": 1.0, "social": 0.0}
    assert docs[1].cats == {"spam": 0.0, "urgent": 0.0, "social": 0.0}


def test_export_has_the_columns_bertcls_label_writes(session, table):
    session.correct([0], ["social"])
    exported = session.labeled_frame()
    source = pd.read_csv(table)
    expected = label_frame(session.nlp, source, text_column="text")
    columns = [PREDICTED_LABELS, *(prob_column(label) for label in LABELS)]
    assert list(exported.columns) == [*source.columns, *columns, CORRECTED_LABELS]
    pd.testing.assert_frame_equal(exported[columns], expected[columns])
    assert exported[CORRECTED_LABELS].iat[0] == "social"
    assert pd.isna(exported[CORRECTED_LABELS].iat[1])


def test_an_exported_table_opens_with_its_predictions_and_corrections(session, tmp_path):
    session.correct([0], ["spam", "social"])
    path = tmp_path / "labeled.csv"
    session.labeled_frame().to_csv(path, index=False)
    again = Session()
    again.open_pipeline(session.pipeline_path)
    again.open_file(path)
    assert again.imported == (session.results.labeled_count() - 1, 1)  # the empty text: no probs
    assert again.results.corrected_labels(0) == ["spam", "social"]
    np.testing.assert_array_equal(again.results.predicted_sets, session.results.predicted_sets)


def test_evaluation_is_what_bertcls_evaluate_reports(session, table):
    evaluation = session.evaluate()
    result = evaluation.result
    assert isinstance(result, MultiLabelResult)
    expected, _ = evaluate_file(
        session.pipeline_path, table, label_column="labels", multi_label_sep=";"
    )
    assert result.n_scored == expected.n_scored > 0
    assert result.n_missing_gold == expected.n_missing_gold
    for name in ("subset_accuracy", "hamming_loss"):
        assert getattr(result, name) == pytest.approx(getattr(expected, name))
    for average in ("micro", "macro", "weighted"):
        assert getattr(result, average) == pytest.approx(getattr(expected, average))
    for label in LABELS:
        assert result.per_label[label] == pytest.approx(expected.per_label[label])
    assert result.thresholds == pytest.approx(expected.thresholds)
    # Its rows are the table's file rows, and there is no confusion matrix to click.
    assert evaluation.rows.tolist() == np.flatnonzero(session.results.labeled).tolist()
    with pytest.raises(BertclsError, match="no confusion matrix"):
        evaluation.table_rows("spam", "spam")


def test_thresholds_preview_and_apply_per_label(session):
    results = session.results
    j = LABELS.index("social")
    preview = session.threshold_preview("social", 0.9)
    decided = np.nan_to_num(results.probs[:, j], nan=0.0) >= 0.9
    assert preview.predicted == int(decided[results.labeled].sum())
    assert preview.changed == int((decided != results.predicted_sets[:, j])[results.labeled].sum())
    known = session.gold_sets.any(axis=1) & results.labeled & ~np.isnan(results.probs[:, j])
    assert preview.n_gold == int((session.gold_sets.any(axis=1) & results.labeled).sum())
    truth = session.gold_sets[:, j]
    if (decided & known).any():
        hits = (decided & truth & known).sum() / (decided & known).sum()
        assert preview.precision == pytest.approx(hits)
    precision, recall, _ = session.pr_curve("social")
    assert len(precision) == len(recall) > 1
    urgent = results.predicted_sets[:, LABELS.index("urgent")].copy()
    session.set_threshold("social", 0.9)
    np.testing.assert_array_equal(results.predicted_sets[:, j], decided)
    # Other labels keep their own thresholds (urgent's tuned 0.4).
    np.testing.assert_array_equal(results.predicted_sets[:, LABELS.index("urgent")], urgent)
    assert decision_rule(session.nlp).thresholds.tolist() == pytest.approx([0.5, 0.4, 0.9])


def test_a_saved_session_keeps_label_sets(session, tmp_path):
    session.correct([0], ["urgent"])
    path = save_session(session, tmp_path / "work")
    saved = load_session(path)
    again = Session()
    again.open_pipeline(session.pipeline_path)
    again.open_file(session.file_path)
    assert again.restore(saved) == len(session.frame)
    assert again.results.corrected_labels(0) == ["urgent"]
    np.testing.assert_array_equal(again.results.predicted_sets, session.results.predicted_sets)


def test_a_single_label_session_refuses_label_sets(tmp_path):
    from gui.gui_support import make_pipeline, make_rows

    session = Session()
    session.open_pipeline(make_pipeline(tmp_path / "single"))
    path = tmp_path / "rows.csv"
    make_rows(12).to_csv(path, index=False)
    session.open_file(path)
    assert not session.multi_label and "predicted_label" in session.layout._by_name
    with pytest.raises(BertclsError, match="one label per row"):
        session.correct([0], ["negative", "neutral"])
    with pytest.raises(BertclsError, match="one label per row"):
        session.toggle_label([0], "negative")
