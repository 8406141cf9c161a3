"""Word attributions (spacy_bertcls.explain) on a tiny model whose answer is known: the label is
decided by one trigger word, in texts that differ only by that word."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import spacy  # noqa: E402
import torch  # noqa: E402
from conftest import HAM  # noqa: E402
from test_textcat import make_examples, make_nlp, probabilities, train  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from spacy_bertcls import BertclsError  # noqa: E402
from spacy_bertcls.architectures import get_shim  # noqa: E402
from spacy_bertcls.cli import app  # noqa: E402
from spacy_bertcls.explain import (  # noqa: E402
    LabelLogOdds,
    explain,
    explaining,
    window_inputs,
)

TRIGGER, NEUTRAL = "prize", "milk"  # both single word pieces of the tiny BERT's vocabulary


def with_word(text: str, word: str) -> str:
    words = text.split()
    return " ".join([*words[: len(words) // 2], word, *words[len(words) // 2 :]])


TEXTS = [with_word(text, word) for text in HAM for word in (TRIGGER, NEUTRAL)]
LABELS = ["spam", "ham"] * len(HAM)


@pytest.fixture(scope="module")
def trigger_nlp(tiny_encoder) -> spacy.Language:
    """A frozen tiny BERT with a linear head: "spam" exactly when the text has the trigger."""
    nlp = make_nlp(tiny_encoder, freeze_encoder=True, model={"head": "linear"})
    examples = make_examples(nlp, TEXTS, LABELS)
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(20):
        for start in range(0, len(examples), 8):
            nlp.update(examples[start : start + 8], sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def trigger_dir(trigger_nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("trigger") / "pipeline"
    trigger_nlp.to_disk(path)
    return path


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_the_trigger_word_gets_the_top_attribution(trigger_nlp, method):
    for text in TEXTS[0:6:2]:
        doc = trigger_nlp(text)
        explanation = explain(trigger_nlp, text, method=method)
        assert explanation.label == "spam" == max(doc.cats, key=doc.cats.get)
        assert explanation.method == method
        # The probability is the pipeline's own: same windows, same calibration.
        assert explanation.probability == pytest.approx(doc.cats["spam"], abs=1e-5)
        assert [t.text for t in explanation.top(1)] == [TRIGGER]
        assert explanation.top(1)[0].score > 0
        assert len(explanation.top(100)) == sum(t.score > 0 for t in explanation.tokens)


def test_a_temperature_is_part_of_what_is_explained(trigger_nlp):
    component = trigger_nlp.get_pipe("bert_textcat")
    text = TEXTS[0]
    before = explain(trigger_nlp, text)
    component.cfg["temperature"] = [2.0]
    try:
        after = explain(trigger_nlp, text)
        assert after.probability == pytest.approx(trigger_nlp(text).cats["spam"], abs=1e-5)
        # Log-odds scale with 1 / T; occlusion scores are differences of them.
        for a, b in zip(after.tokens, before.tokens):
            assert a.score == pytest.approx(b.score / 2, abs=1e-4)
    finally:
        component.cfg["temperature"] = None


def test_multi_label_probabilities_are_explained_as_calibrated(tiny_encoder):
    nlp = make_nlp(tiny_encoder, exclusive_classes=False, freeze_encoder=True)
    train(nlp, make_examples(nlp), epochs=1)
    component = nlp.get_pipe("bert_textcat")
    component.cfg["temperature"] = [2.0, 0.5]
    if "logit_bias" in component.cfg:
        component.cfg["logit_bias"] = [0.3, -0.4]
    for label in ("ham", "spam"):
        explanation = explain(nlp, TEXTS[0], label)
        assert explanation.probability == pytest.approx(nlp(TEXTS[0]).cats[label], abs=1e-5)


def test_offsets_map_back_to_the_exact_characters(trigger_nlp):
    text = "Free  prize!!\nCall 0800-claim now 🙂 zorpification, déjà-vu\tcafé's"
    doc = trigger_nlp.make_doc(text)
    explanation = explain(trigger_nlp, text, "spam")
    assert len(explanation.tokens) == len(doc)
    for token, scored in zip(doc, explanation.tokens):
        assert text[scored.start : scored.end] == scored.text == token.text
        if token.is_space:
            assert scored.score == 0.0
    # A word cut into several pieces gets the effect of hiding all of them.
    (word,) = [t for t in explanation.tokens if t.text == "zorpification"]
    assert word.score != 0.0


def test_a_long_text_across_windows_gets_one_score_per_token(trigger_nlp):
    text = " ".join(f"{HAM[i % len(HAM)]} {TRIGGER if i == 3 else ''}" for i in range(8))
    doc = trigger_nlp.make_doc(text)
    shim = get_shim(trigger_nlp.get_pipe("bert_textcat").model)
    inputs = window_inputs(shim, doc)
    assert inputs.input_ids.shape[0] >= 3  # max_length 32, stride 16
    for method in ("occlusion", "ig"):
        explanation = explain(trigger_nlp, doc, "spam", method=method, n_steps=64)
        assert [(t.start, t.end) for t in explanation.tokens] == [
            (t.idx, t.idx + len(t)) for t in doc
        ]
        assert explanation.probability == pytest.approx(trigger_nlp(text).cats["spam"], abs=1e-5)
        assert all(t.score != 0 for t in explanation.tokens if t.text.strip())
    # Integrated gradients add up to log-odds(text) - log-odds(baseline) across the windows.
    scorer = LabelLogOdds(trigger_nlp.get_pipe("bert_textcat"), shim, index=1)
    with explaining(shim), torch.no_grad():
        baseline = torch.where(inputs.is_piece, scorer.pad_token_id, inputs.input_ids)
        gap = scorer(inputs.input_ids[None], inputs.attention_mask[None]) - scorer(
            baseline[None], inputs.attention_mask[None]
        )
    total = sum(t.score for t in explanation.tokens)
    assert total == pytest.approx(float(gap), abs=0.02 * abs(float(gap)) + 0.02)


def test_words_the_model_never_sees_score_zero(trigger_nlp):
    shim = get_shim(trigger_nlp.get_pipe("bert_textcat").model)
    text = " ".join(HAM[:6])
    shim.cfg["long_text"] = "truncate"
    try:
        explanation = explain(trigger_nlp, text, "spam")
        assert explanation.probability == pytest.approx(trigger_nlp(text).cats["spam"], abs=1e-5)
    finally:
        shim.cfg["long_text"] = "window"
    first_window = 32 - 2
    seen = [t for t in explanation.tokens if t.score != 0]
    assert 0 < len(seen) <= first_window
    assert explanation.tokens[-1].score == 0.0


def test_explaining_changes_no_prediction_and_no_training_state(tiny_encoder):
    nlp = make_nlp(tiny_encoder)  # a trainable encoder: its weights take gradients
    train(nlp, make_examples(nlp), epochs=1)
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    module.train()  # as between two training steps
    before = probabilities(nlp, TEXTS[:6])
    flags = [p.requires_grad for p in module.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    weights = [p.detach().clone() for p in module.parameters()]
    module.train()
    for method in ("occlusion", "ig"):
        explain(nlp, TEXTS[0], method=method, n_steps=8)
        assert module.training and module.encoder.training
    assert [p.requires_grad for p in module.parameters()] == flags
    for p, grad, weight in zip(module.parameters(), grads, weights):
        assert (p.grad is None) == (grad is None)
        if grad is not None:
            assert torch.equal(p.grad, grad)
        assert torch.equal(p.detach(), weight)
    np.testing.assert_array_equal(probabilities(nlp, TEXTS[:6]), before)


def test_the_frozen_feature_cache_does_not_grow(trigger_nlp):
    shim = get_shim(trigger_nlp.get_pipe("bert_textcat").model)
    size = len(shim.feature_cache)
    explain(trigger_nlp, "a text never seen before prize")
    assert len(shim.feature_cache) == size


def test_the_component_method_gives_the_same_explanation(trigger_nlp):
    component = trigger_nlp.get_pipe("bert_textcat")
    doc = trigger_nlp.make_doc(TEXTS[2])
    ours = component.explain(doc)
    theirs = explain(trigger_nlp, doc)
    assert (ours.label, ours.method, ours.text) == (theirs.label, theirs.method, theirs.text)
    assert [t.score for t in ours.tokens] == pytest.approx([t.score for t in theirs.tokens])


def test_bad_requests_are_refused_with_a_message(trigger_nlp):
    with pytest.raises(BertclsError, match="'eggs' is not one of the pipeline's labels"):
        explain(trigger_nlp, "hello", "eggs")
    with pytest.raises(BertclsError, match="method = 'attention'"):
        explain(trigger_nlp, "hello", method="attention")
    with pytest.raises(BertclsError, match="empty"):
        explain(trigger_nlp, "  \n")
    other = spacy.blank("en")
    other.add_pipe("textcat").add_label("a")
    other.get_pipe("textcat").add_label("b")
    other.initialize()
    with pytest.raises(BertclsError, match="bert_textcat"):
        explain(other, "hello")


def test_cli_explain_marks_the_words_and_lists_them(trigger_dir):
    runner = CliRunner()
    text = with_word(HAM[0], TRIGGER)
    result = runner.invoke(app, ["explain", str(trigger_dir), text, "--top", "2"])
    assert result.exit_code == 0, result.output
    assert f"[{TRIGGER}]" in result.output
    assert "spam (p = " in result.output and "For spam:" in result.output
    assert "Against:" in result.output
    result = runner.invoke(
        app, ["explain", str(trigger_dir), text, "--json", "--method", "ig", "--label", "ham"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["label"] == "ham" and data["method"] == "ig"
    assert [t["text"] for t in data["tokens"]] == text.split()
    result = runner.invoke(app, ["explain", str(trigger_dir), text, "--label", "eggs"])
    assert result.exit_code == 1 and "eggs" in result.output


def test_the_report_highlights_the_words_of_confident_errors(trigger_dir, tmp_path):
    from spacy_bertcls.evaluation import write_report
    from spacy_bertcls.evaluation.files import evaluate_file

    # Gold says "ham" for texts with the trigger: the pipeline's errors.
    data = tmp_path / "gold.csv"
    pd.DataFrame({"text": TEXTS[:8], "label": ["ham"] * 8}).to_csv(data, index=False)
    result, details = evaluate_file(trigger_dir, data)
    explanations = details["explanations"]
    error_rows = {error["row"] for error in result.most_confident_errors}
    assert error_rows and set(explanations) == error_rows
    assert all(explanations[row].label == "spam" for row in error_rows)
    written = write_report(
        result, tmp_path / "r.html", json_path=tmp_path / "r.json", details=details
    )
    page = written["html"].read_text(encoding="utf-8")
    # Every error with the trigger (even rows) has it marked; other errors may be there too.
    with_trigger = [row for row in error_rows if TRIGGER in TEXTS[row]]
    assert len(with_trigger) == 4
    assert page.count(f'">{TRIGGER}</mark>') == len(with_trigger)
    assert "pushed the prediction towards the wrong label" in page
    saved = json.loads(written["json"].read_text(encoding="utf-8"))
    assert "explanations" not in saved["details"]
    # Without explanations, the same report has no marks.
    plain = write_report(result, tmp_path / "p.html")["html"].read_text(encoding="utf-8")
    assert "<mark" not in plain


@pytest.mark.gui
def test_the_detail_panel_highlights_why_in_the_background(qtbot, trigger_dir, tmp_path):
    pytest.importorskip("PySide6")
    from spacy_bertcls.session import Session
    from spacy_bertcls_gui.detail_panel import DetailPanel, qt_position

    data = tmp_path / "rows.csv"
    pd.DataFrame({"text": ["🙂 " + TEXTS[0], TEXTS[1]]}).to_csv(data, index=False)
    session = Session()
    session.open_pipeline(trigger_dir)
    session.open_file(data)
    session.label()
    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.set_session(session)
    panel.show_row(0)
    assert panel.why_button.isEnabled() and not panel.why_button.isChecked()
    assert panel.text_view.extraSelections() == []
    panel.why_button.setChecked(True)
    qtbot.waitUntil(lambda: bool(panel.text_view.extraSelections()), timeout=20000)
    text = session.text(0)
    start = text.index(TRIGGER)
    spans = [
        (s.cursor.selectionStart(), s.cursor.selectionEnd())
        for s in panel.text_view.extraSelections()
    ]
    assert (qt_position(text, start), qt_position(text, start + len(TRIGGER))) in spans
    assert "Words for <b>spam</b>:" in panel.why_label.text() and TRIGGER in panel.why_label.text()
    # Another row and back: the first explanation is kept, not computed again.
    panel.show_row(1)
    assert panel.text_view.extraSelections() == []
    panel.show_row(0)
    assert panel.text_view.extraSelections()
    panel.why_button.setChecked(False)
    assert panel.text_view.extraSelections() == [] and panel.why_label.text() == ""
