"""Temperature scaling and decision thresholds (spacy_bertcls.calibration, .decisions)."""

from __future__ import annotations

import numpy
import pytest
import spacy
import srsly
import torch
from conftest import HAM, SPAM
from spacy.training import Example
from test_textcat import make_examples, make_nlp, probabilities, train

from spacy_bertcls import BertclsError
from spacy_bertcls.architectures import get_shim
from spacy_bertcls.calibration import (
    best_f1_threshold,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    gold_matrix,
    tune_thresholds,
    uncalibrated,
    unsaturated,
)
from spacy_bertcls.calibration import probabilities as softmax_or_sigmoid
from spacy_bertcls.decisions import DecisionRule, decision_rule

# Held-out texts the tiny model never trained on, some of them deliberately mislabeled, so that
# a model made over-confident is wrong with high confidence on a share of them.
DEV_HAM = [
    "see you at lunch tomorrow",
    "thanks for dinner last night",
    "call me when the train arrives",
    "the cat is fine and fed",
    "happy birthday to your sister",
    "are you free on friday",
    "i am running late again sorry",
    "pick up milk and bread please",
    "how did the meeting go",
    "the exam moved to monday",
    "win a prize call now",  # spam-like text labeled ham (label noise)
    "free holiday claim now",  # spam-like text labeled ham (label noise)
]
DEV_SPAM = [
    "claim your cash prize now",
    "you won a free ringtone reply now",
    "urgent text win to claim",
    "free entry win cash now",
    "congratulations claim your holiday prize",
    "reply stop for free prize",
    "see you at the station tonight",  # ham-like text labeled spam (label noise)
]


def overconfident_pipeline(encoder: str, scale: float = 8.0) -> spacy.Language:
    """A tiny classifier trained to fit its data, then made over-confident on purpose: its last
    layer's weights and bias multiplied by ``scale`` (the same decisions, sharper logits)."""
    nlp = make_nlp(encoder, freeze_encoder=True)
    train(nlp, make_examples(nlp), epochs=8)
    head = get_shim(nlp.get_pipe("bert_textcat").model).module.head
    last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    return nlp


def dev_cats() -> tuple[list[str], list[dict[str, float]]]:
    texts = DEV_HAM + DEV_SPAM
    cats = [{"ham": 1.0, "spam": 0.0}] * len(DEV_HAM) + [{"ham": 0.0, "spam": 1.0}] * len(DEV_SPAM)
    return texts, cats


def test_fit_temperature_recovers_a_known_temperature():
    rng = numpy.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 3))
    true_t = 2.5
    p = softmax_or_sigmoid(logits, true_t, exclusive=True)
    gold = numpy.array([rng.choice(3, p=row) for row in p])
    truth = numpy.eye(3)[gold]
    (t,), bias = fit_temperature(logits, truth, numpy.ones_like(truth), exclusive=True)
    assert bias is None
    assert t == pytest.approx(true_t, rel=0.1)


def test_a_separable_dev_set_keeps_temperature_one():
    """Dev rows all decided right with a margin: the NLL falls as T shrinks, so the fit
    sharpens without limit; that T is not used (it would turn test errors into certainties)."""
    rng = numpy.random.default_rng(0)
    gold = rng.integers(0, 2, size=300)
    logits = numpy.eye(2)[gold] * 3.0 + rng.normal(scale=0.3, size=(300, 2))
    truth = numpy.eye(2)[gold]
    known = numpy.ones_like(truth)
    (t,), _ = fit_temperature(logits, truth, known, exclusive=True)
    assert t < 0.2
    notes: list[str] = []
    assert unsaturated([t], None, logits, truth, known, ["a", "b"], notes=notes) == ([1.0], None)
    assert "stays 1" in notes[0]
    # One error among the dev rows: the fitted T is kept.
    wrong = truth.copy()
    wrong[0] = 1 - wrong[0]
    assert unsaturated([t], None, logits, wrong, known, ["a", "b"], notes=[]) == ([t], None)
    # Multi-label: only the separated label falls back, its bias with it.
    labels = numpy.stack([1 - gold, rng.integers(0, 2, size=300)], axis=1).astype(float)
    notes = []
    found = unsaturated([t, 0.5], [0.4, -0.2], logits, labels, known, ["a", "b"], notes=notes)
    assert found == ([1.0, 0.5], [0.0, -0.2]) and "'a'" in notes[0] and len(notes) == 1


def test_a_threshold_no_better_than_the_default_is_not_kept():
    rng = numpy.random.default_rng(1)
    gold = rng.integers(0, 2, size=200)
    truth = numpy.eye(2)[gold]
    known = numpy.ones_like(truth)
    # Every dev row right at 0.5: any cut in the gap scores the same, so none is chosen.
    p_b = numpy.where(gold == 1, rng.uniform(0.7, 1.0, 200), rng.uniform(0.0, 0.3, 200))
    probs = numpy.stack([1 - p_b, p_b], axis=1)
    notes: list[str] = []
    found = tune_thresholds(
        probs, truth, known, ["a", "b"], exclusive=True, positive_label="b", notes=notes
    )
    assert found == {} and "no cut is better" in notes[0]
    # Positives between 0.35 and 0.5: a lower cut is better, and kept.
    p_b = numpy.where(gold == 1, rng.uniform(0.35, 1.0, 200), rng.uniform(0.0, 0.3, 200))
    probs = numpy.stack([1 - p_b, p_b], axis=1)
    found = tune_thresholds(probs, truth, known, ["a", "b"], exclusive=True, positive_label="b")
    assert set(found) == {"b"} and 0.3 < found["b"] < 0.5


def test_fit_temperature_and_bias_per_label_for_multi_label():
    rng = numpy.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4000, 2))
    true_t, true_b = numpy.array([0.5, 3.0]), numpy.array([-1.5, 0.8])
    p = softmax_or_sigmoid(logits, true_t, exclusive=False, bias=true_b)
    truth = (rng.random((4000, 2)) < p) * 1.0
    found_t, found_b = fit_temperature(logits, truth, numpy.ones_like(truth), exclusive=False)
    assert found_t == pytest.approx(true_t.tolist(), rel=0.15)
    assert found_b == pytest.approx(true_b.tolist(), abs=0.2)
    # A label whose known gold is all one value has nothing to fit: T stays 1, b 0.
    truth[:, 1] = 1.0
    found_t, found_b = fit_temperature(logits, truth, numpy.ones_like(truth), exclusive=False)
    assert (found_t[1], found_b[1]) == (1.0, 0.0)


def test_uncalibrated_inverts_the_temperature():
    rng = numpy.random.default_rng(2)
    logits = rng.normal(size=(50, 3))
    for exclusive, t, b in ((True, [2.0], None), (False, [0.7, 1.5, 3.0], [0.5, -1.0, 0.0])):
        before = softmax_or_sigmoid(logits, 1.0, exclusive=exclusive)
        after = softmax_or_sigmoid(logits, t, exclusive=exclusive, bias=b)
        numpy.testing.assert_allclose(
            uncalibrated(after, t, exclusive=exclusive, bias=b), before, atol=1e-9
        )


def test_best_f1_threshold_finds_the_best_cut():
    scores = numpy.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.8, 0.9])
    positive = numpy.array([0, 0, 0, 1, 1, 1, 1], dtype=bool)
    t, f1 = best_f1_threshold(scores, positive)
    assert t == pytest.approx(0.35) and f1 == pytest.approx(1.0)


def test_calibration_lowers_ece_and_keeps_the_argmax(tiny_encoder):
    nlp = overconfident_pipeline(tiny_encoder)
    texts, cats = dev_cats()
    before = probabilities(nlp, texts)
    fit = calibrate(nlp, texts, cats)
    after = probabilities(nlp, texts)
    # Over-confident on purpose: T > 1 softens it, and the dev ECE and NLL drop.
    assert fit.temperature[0] > 1.5
    assert fit.ece_after < fit.ece_before
    assert fit.nll_after < fit.nll_before
    truth, known, _ = gold_matrix(cats, ["ham", "spam"], exclusive=True)
    assert expected_calibration_error(after, truth, known, exclusive=True) == pytest.approx(
        fit.ece_after, abs=1e-5
    )
    # Temperature scaling never changes the most probable label.
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    assert after.max(axis=1).mean() < before.max(axis=1).mean()
    # doc.cats are the calibrated numbers; the raw ones are recoverable from them.
    numpy.testing.assert_allclose(
        uncalibrated(after, fit.temperature, exclusive=True), before, atol=1e-4
    )
    # Two exclusive classes: a threshold on the rarer dev label (spam), as decisions use it.
    assert set(fit.thresholds) == {"spam"}
    assert decision_rule(nlp).positive_label == "spam"
    assert nlp.get_pipe("bert_textcat").cfg["calibration"]["ece_after"] == fit.ece_after


def test_user_thresholds_win_and_decide(tiny_encoder):
    nlp = overconfident_pipeline(tiny_encoder)
    texts, cats = dev_cats()
    calibrate(nlp, texts, cats, thresholds={"spam": 0.9})
    rule = decision_rule(nlp)
    assert rule.tuned == {"spam": 0.9}
    probs = numpy.array([[0.15, 0.85], [0.05, 0.95], [numpy.nan, numpy.nan]])
    # 0.85 is the most probable label but under spam's threshold: ham.
    assert rule.predicted_index(probs).tolist() == [0, 1, -1]
    with pytest.raises(BertclsError, match="between 0 and 1"):
        calibrate(nlp, texts, cats, thresholds={"spam": 1.5})
    with pytest.raises(BertclsError, match="not one of the labels"):
        calibrate(nlp, texts, cats, thresholds={"eggs": 0.5})


def test_calibration_round_trips_through_disk_and_bytes(tiny_encoder, tmp_path):
    nlp = overconfident_pipeline(tiny_encoder)
    texts, cats = dev_cats()
    fit = calibrate(nlp, texts, cats)
    expected = probabilities(nlp, texts)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    component = loaded.get_pipe("bert_textcat")
    assert component.temperature == pytest.approx(fit.temperature)
    assert decision_rule(loaded).tuned == pytest.approx(fit.thresholds)
    numpy.testing.assert_allclose(probabilities(loaded, texts), expected, atol=1e-6)
    again = make_nlp(tiny_encoder, freeze_encoder=True)
    again.get_pipe("bert_textcat").from_bytes(nlp.get_pipe("bert_textcat").to_bytes())
    assert decision_rule(again).tuned == pytest.approx(fit.thresholds)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("temperature", [-1.0], "temperature"),
        ("temperature", [1.0, 2.0], "temperature"),
        ("logit_bias", [0.5, 0.5], "logit_bias"),
        ("decision_thresholds", {"spam": 2}, "between 0 and 1"),
        ("decision_thresholds", {"eggs": 0.5}, "not one of the labels"),
        ("decision_thresholds", {"ham": 0.5, "spam": 0.5}, "one decision threshold"),
    ],
)
def test_damaged_calibration_in_a_saved_pipeline_is_refused(
    tiny_encoder, tmp_path, key, value, message
):
    nlp = overconfident_pipeline(tiny_encoder)
    nlp.to_disk(tmp_path / "pipeline")
    cfg_file = tmp_path / "pipeline" / "bert_textcat" / "cfg"
    cfg = srsly.read_json(cfg_file)
    cfg[key] = value
    srsly.write_json(cfg_file, cfg)
    with pytest.raises(BertclsError, match=f"damaged.*{message}"):
        spacy.load(tmp_path / "pipeline")


def test_initialize_forgets_an_old_calibration(tiny_encoder):
    nlp = overconfident_pipeline(tiny_encoder)
    texts, cats = dev_cats()
    calibrate(nlp, texts, cats)
    nlp.initialize(lambda: make_examples(nlp))
    component = nlp.get_pipe("bert_textcat")
    assert component.temperature is None and component.cfg["decision_thresholds"] == {}


def test_multi_label_calibration_and_thresholds(tiny_encoder):
    nlp = make_nlp(tiny_encoder, exclusive_classes=False, freeze_encoder=True)
    texts = HAM + SPAM
    cats = [{"spam": 0.0, "urgent": float("call" in t)} for t in HAM]
    cats += [{"spam": 1.0, "urgent": float("now" in t or "urgent" in t)} for t in SPAM]
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in zip(texts, cats)]
    train(nlp, examples, epochs=4)
    fit = calibrate(nlp, texts, cats)
    assert len(fit.temperature) == 2 and len(fit.bias) == 2
    component = nlp.get_pipe("bert_textcat")
    assert component.logit_bias == fit.bias
    logits = component.logits([nlp.make_doc(t) for t in texts])
    scaled = softmax_or_sigmoid(logits, fit.temperature, exclusive=False, bias=fit.bias)
    numpy.testing.assert_allclose(probabilities(nlp, texts), scaled, atol=1e-5)
    rule = decision_rule(nlp)
    assert not rule.exclusive and rule.labels == ("spam", "urgent")
    sets = rule.predicted_sets(probabilities(nlp, texts))
    assert sets.shape == (len(texts), 2)
    # Too few positive urgent/spam rows for a tuned threshold keep the default, with a note.
    for label in ("spam", "urgent"):
        assert label in fit.thresholds or any(label in note for note in fit.notes)


def test_decision_rule_rules():
    rule = DecisionRule.make(["a", "b", "c"], exclusive=True)
    probs = numpy.array([[0.2, 0.5, 0.3], [numpy.nan] * 3])
    assert rule.predicted_index(probs).tolist() == [1, -1]
    assert rule.describe() == "the most probable label"
    with pytest.raises(BertclsError, match="two exclusive classes"):
        DecisionRule.make(["a", "b", "c"], exclusive=True, thresholds={"a": 0.3})
    multi = DecisionRule.make(["a", "b"], exclusive=False, thresholds={"a": 0.2})
    sets = multi.predicted_sets(numpy.array([[0.3, 0.6], [0.1, 0.4]]))
    assert sets.tolist() == [[True, True], [False, False]]
    assert multi.with_threshold("b", 0.35).predicted_sets(numpy.array([[0.1, 0.4]])).tolist() == [
        [False, True]
    ]


def test_spacy_textcat_pipelines_decide_by_argmax_and_are_not_calibrated():
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat")
    for label in ("ham", "spam"):
        textcat.add_label(label)
    nlp.initialize()
    assert decision_rule(nlp).positive_label is None
    texts, cats = dev_cats()
    with pytest.raises(BertclsError, match="cannot be calibrated"):
        calibrate(nlp, texts, cats)
