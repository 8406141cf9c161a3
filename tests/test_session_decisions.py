"""Decision thresholds and "send to review" in the analyst's session (no Qt)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gui.gui_support import make_pipeline, make_rows
from test_calibration import DEV_HAM, DEV_SPAM, dev_cats, overconfident_pipeline

from spacy_bertcls.calibration import calibrate
from spacy_bertcls.decisions import decision_rule
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.session import Session


@pytest.fixture(scope="module")
def pipeline_dir(tiny_encoder, tmp_path_factory):
    nlp = overconfident_pipeline(tiny_encoder)
    calibrate(nlp, *dev_cats())
    path = tmp_path_factory.mktemp("calibrated") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture
def session(pipeline_dir, tmp_path):
    # The last row has no text: no prediction, and no point on a PR curve.
    texts = DEV_HAM + DEV_SPAM + [""]
    gold = ["ham"] * len(DEV_HAM) + ["spam"] * len(DEV_SPAM) + ["ham"]
    table = tmp_path / "messages.csv"
    pd.DataFrame({"text": texts, "label": gold}).to_csv(table, index=False)
    session = Session()
    session.open_pipeline(pipeline_dir)
    session.open_file(table)
    session.set_gold_column("label")
    session.label()
    return session


def test_threshold_preview_then_set_changes_the_labels_and_the_pipeline(session):
    spam = session.labels.index("spam")
    probs = session.results.probs
    preview = session.threshold_preview("spam", 0.999)
    now_spam = session.results.predicted == spam
    will_be_spam = np.nan_to_num(probs[:, spam], nan=0.0) >= 0.999
    assert preview.changed == int((now_spam != will_be_spam).sum())
    assert preview.predicted == int(will_be_spam.sum())
    gold = session.gold_codes == spam
    if will_be_spam.any():
        assert preview.precision == pytest.approx((will_be_spam & gold).sum() / will_be_spam.sum())
    assert preview.recall == pytest.approx((will_be_spam & gold).sum() / gold.sum())
    assert "would change" in preview.format()
    heard = []
    session.events.predictions_changed.connect(lambda rows: heard.append(len(rows)))
    # Nothing changed by the preview; set_threshold applies it everywhere.
    assert (session.results.predicted == spam).tolist() == now_spam.tolist()
    assert session.set_threshold("spam", 0.999) == preview.changed
    assert ((session.results.predicted == spam) == will_be_spam).all()
    assert decision_rule(session.nlp).tuned == {"spam": 0.999}
    assert heard == [len(session.frame)]
    evaluation = session.evaluate()
    assert "0.999" in evaluation.result.decision
    assert evaluation.result.calibration_before is not None
    assert "0.999" in session.pipeline_info.decision
    # Saved as a new pipeline, never over the loaded one.
    with pytest.raises(BertclsError):
        session.save_pipeline(session.pipeline_path)
    saved = session.save_pipeline(session.pipeline_path.parent / "with_threshold")
    from spacy_bertcls.pipelines import load_pipeline

    assert decision_rule(load_pipeline(saved)).tuned == {"spam": 0.999}
    # The PR curve the app draws the point on.
    precision, recall, thresholds = session.pr_curve("spam")
    assert len(precision) == len(recall) == len(thresholds) + 1


def test_review_rows_are_the_unsure_ones(session):
    confidence = session.results.confidence
    rows = session.review_rows(0.9)
    assert rows.tolist() == np.flatnonzero(confidence < 0.9).tolist()
    frame = session.review_frame(0.9)
    assert len(frame) == len(rows) and "confidence" in frame.columns
    assert (frame["confidence"] < 0.9).all()


def test_thresholds_need_bert_textcat_and_two_classes(tmp_path):
    session = Session()
    session.open_pipeline(make_pipeline(tmp_path / "spacy_textcat"))
    table = tmp_path / "tweets.csv"
    make_rows(12).to_csv(table, index=False)
    session.open_file(table)
    session.label()
    with pytest.raises(BertclsError, match="two exclusive classes"):
        session.threshold_preview("positive", 0.4)
    with pytest.raises(BertclsError, match="not bert_textcat"):
        session.set_threshold("positive", 0.4)
