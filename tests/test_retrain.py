"""The analyst's loop without a window: suspect labels in the session (spacy_bertcls.audit) and
retraining with the corrections (spacy_bertcls.retrain), on a tiny random BERT."""

from __future__ import annotations

import hashlib

import numpy
import pandas as pd
import pytest
import spacy
from conftest import HAM, SPAM
from spacy.tokens import DocBin
from test_audit import FLIPPED, pair_texts

from spacy_bertcls import BertclsError, feature_store
from spacy_bertcls.audit import AUDIT_COLUMNS, SUGGESTED_LABEL
from spacy_bertcls.fingerprint import trained_on
from spacy_bertcls.pipelines import load_pipeline, pipeline_info
from spacy_bertcls.retrain import (
    RetrainCancelled,
    find_corpus,
    next_version_folder,
    retrain_pipeline,
)
from spacy_bertcls.session import Session
from spacy_bertcls.testing import make_tiny_bert, train_frozen_pipeline


def loop_texts() -> tuple[list[str], list[str]]:
    return pair_texts(HAM, 40) + pair_texts(SPAM, 30), ["ham"] * 40 + ["spam"] * 30


def loop_pipeline(root, *, with_id: bool = True):
    """A frozen bert_textcat pipeline trained by `bertcls convert` + `bertcls train` on the
    clean table, and the table (noisy.csv) with four flipped gold labels."""
    texts, gold = loop_texts()
    encoder = make_tiny_bert(root / "bert", texts, layers=4)
    pd.DataFrame({"text": texts, "label": gold}).to_csv(root / "clean.csv", index=False)
    pipeline = train_frozen_pipeline(
        root / "clean.csv", root / "work", text_column="text", label_column="label",
        encoder=str(encoder), max_epochs=2,
    )  # fmt: skip
    noisy = list(gold)
    for i in FLIPPED:
        noisy[i] = "spam" if noisy[i] == "ham" else "ham"
    columns = {"id": range(len(texts))} if with_id else {}
    pd.DataFrame({**columns, "text": texts, "gold": noisy}).to_csv(root / "noisy.csv", index=False)
    return pipeline, root / "noisy.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return loop_pipeline(tmp_path_factory.mktemp("loop"))


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(feature_store.CACHE_ENV, str(tmp_path / "features"))


@pytest.fixture
def session(trained) -> Session:
    pipeline, table = trained
    session = Session()
    session.open_pipeline(pipeline)
    session.open_file(table)
    session.set_gold_column("gold")
    return session


def folder_state(folder) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and its mtime in ns."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_audit_in_the_session_ranks_the_flipped_rows(session):
    summary = session.audit_suspects(folds=4)
    assert summary.rows_audited == 70
    assert all(column in session.frame.columns for column in AUDIT_COLUMNS)
    suspects = session.suspect_rows()
    assert suspects.size and set(FLIPPED) & set(suspects[:8].tolist())
    # Ranked: suspect_rank 1, 2, 3, ... in that order.
    ranks = session.frame["suspect_rank"].to_numpy()[suspects]
    assert list(ranks) == list(range(1, len(suspects) + 1))
    shown = session.show_suspects()
    assert list(session.visible_rows) == list(shown) == list(suspects)
    row = int(suspects[0])
    suggested = session.frame[SUGGESTED_LABEL].iat[row]
    assert suggested in ("ham", "spam")
    assert session.correct([row], suggested) == 1
    # The export carries the audit's columns, as `bertcls audit` writes them.
    assert set(AUDIT_COLUMNS) <= set(session.labeled_frame().columns)
    # A second audit replaces the first one's columns (no clash with them).
    session.audit_suspects(folds=4)
    assert list(session.frame.columns).count("suspect_rank") == 1
    assert session.results.corrected_count() == 1


def test_audit_needs_a_gold_column_and_a_pipeline(trained):
    pipeline, table = trained
    session = Session()
    with pytest.raises(BertclsError, match="pipeline"):
        session.audit_input()
    session.open_pipeline(pipeline)
    session.open_file(table)
    session.set_gold_column(None)
    with pytest.raises(BertclsError, match="gold column"):
        session.audit_input()


def test_retrain_writes_a_new_version_and_never_touches_the_previous(session, trained):
    pipeline, _ = trained
    before = folder_state(pipeline)
    corpus_before = folder_state(find_corpus(pipeline, "train").parent)
    texts, _ = loop_texts()
    # Rows 3 and 45 are flipped in the file: correct them back; and one more row.
    session.correct([3], "ham")
    session.correct([45], "spam")
    session.correct([0], "spam")
    steps = []
    result = session.retrain(progress=steps.append)
    assert result.pipeline == pipeline.parent / "model-best-v2"
    assert folder_state(pipeline) == before
    assert folder_state(find_corpus(pipeline, "train").parent) == corpus_before
    assert [s.stage for s in steps if s.stage == "train"], "training reported its steps"
    assert result.dev_before and result.dev_after and result.rows_before and result.rows_after
    assert result.rows_after.rows == 70
    assert "model-best-v2" in result.format()

    # The new version loads, and knows its own training data (corrections included).
    new = load_pipeline(result.pipeline)
    assert find_corpus(result.pipeline, "train") == result.pipeline / "corpus" / "train.spacy"
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(result.pipeline / "corpus" / "train.spacy").get_docs(nlp.vocab))
    cats = {doc.text: max(doc.cats, key=doc.cats.get) for doc in docs}
    for row, label in ((3, "ham"), (45, "spam"), (0, "spam")):
        assert cats[texts[row]] == label
    assert len(docs) == result.train_docs + result.added
    assert trained_on(new, [texts[0], texts[3], texts[45]]).all()
    # Its config names the encoder as the old one did, with no trace of the retrain's hook.
    config = (result.pipeline / "config.cfg").read_text()
    assert "retrain_hook" not in config and "model-best/bert_textcat" not in config

    # The session switches to it keeping the corrections, and back.
    corrected = session.results.corrected.copy()
    session.switch_pipeline(result.pipeline, new, pipeline_info(new))
    assert session.pipeline_path == result.pipeline
    assert session.previous_pipelines == [pipeline]
    numpy.testing.assert_array_equal(session.results.corrected, corrected)
    old = load_pipeline(pipeline)
    session.switch_pipeline(pipeline, old, pipeline_info(old))
    assert session.pipeline_path == pipeline and session.previous_pipelines == []
    assert next_version_folder(pipeline) == pipeline.parent / "model-best-v3"
    assert next_version_folder(result.pipeline) == pipeline.parent / "model-best-v3"


def test_a_cancelled_retrain_leaves_nothing(session, trained):
    pipeline, _ = trained
    session.correct([3], "ham")
    parent_before = sorted(p.name for p in pipeline.parent.iterdir())
    steps = []

    def stop() -> bool:
        return len(steps) > 3

    with pytest.raises(RetrainCancelled):
        session.retrain(out=pipeline.parent / "cancelled", progress=steps.append, should_stop=stop)
    assert sorted(p.name for p in pipeline.parent.iterdir()) == parent_before


def test_retrain_refuses_what_it_cannot_do(session, trained, tmp_path):
    pipeline, _ = trained
    with pytest.raises(BertclsError, match="Correct some rows first"):
        session.retrain_input()
    corrections = pd.DataFrame({"text": ["a"], "label": ["eggs"]})
    with pytest.raises(BertclsError, match="not a label of the pipeline"):
        retrain_pipeline(pipeline, corrections, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    corrections = pd.DataFrame({"text": ["a"], "label": ["ham"]})
    with pytest.raises(BertclsError, match="is inside"):
        retrain_pipeline(pipeline, corrections, out=pipeline / "v2")
    with pytest.raises(BertclsError, match="not a .spacy file"):
        retrain_pipeline(pipeline, corrections, train=tmp_path / "train.csv")
    # A pipeline whose corpus moved away: the caller must name it.
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(pipeline, moved)
    text = (moved / "config.cfg").read_text().replace("corpus/train.spacy", "gone/train.spacy")
    (moved / "config.cfg").write_text(text)
    with pytest.raises(BertclsError, match="training corpus of .* is not known"):
        retrain_pipeline(moved, corrections)
