"""Unit tests of the bert_textcat component on a tiny random BERT (seconds each)."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings

import numpy
import pytest
import spacy
import torch
from conftest import HAM, SPAM, TEXTS
from sklearn.utils.class_weight import compute_class_weight
from spacy.training import Example

from spacy_bertcls import BertclsError
from spacy_bertcls.architectures import get_shim

ODD_TEXTS = ["", "   \n\t ", "🙂🙃🎉", "x" * 200_000, "Привет, как дела? 你好世界 مرحبا", "ok"]


def make_nlp(encoder: str, **config) -> spacy.Language:
    model = {"encoder": encoder, "max_length": 32, "stride": 16, "hidden_width": 16}
    model.update(config.pop("model", {}))
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_textcat", config={"model": model, **config})
    return nlp


def make_examples(nlp, texts=HAM + SPAM, labels=None) -> list[Example]:
    labels = labels or ["ham"] * len(HAM) + ["spam"] * len(SPAM)
    return [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {"ham": float(lab == "ham"), "spam": float(lab == "spam")}}
        )
        for text, lab in zip(texts, labels)
    ]


def train(nlp, examples, epochs: int = 3, seed: int = 0, batch_size: int = 8):
    spacy.util.fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(epochs):
        for start in range(0, len(examples), batch_size):
            nlp.update(examples[start : start + batch_size], sgd=optimizer)
    return optimizer


def encoder_state(nlp) -> dict[str, torch.Tensor]:
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    return {k: v.detach().clone() for k, v in module.encoder.state_dict().items()}


def head_state(nlp) -> dict[str, torch.Tensor]:
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    return {k: v.detach().clone() for k, v in module.head.state_dict().items()}


def probabilities(nlp, texts) -> numpy.ndarray:
    return numpy.array([list(doc.cats.values()) for doc in nlp.pipe(texts)])


def test_factory_is_found_through_entry_points():
    code = (
        "import spacy; nlp = spacy.blank('en'); nlp.add_pipe('bert_textcat'); print(nlp.pipe_names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "bert_textcat" in out.stdout


def test_labels_from_initialize_and_add_label(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    train(nlp, make_examples(nlp), epochs=1)
    textcat = nlp.get_pipe("bert_textcat")
    assert textcat.labels == ("ham", "spam")
    with pytest.raises(BertclsError, match="already built"):
        textcat.add_label("eggs")

    nlp = make_nlp(tiny_encoder)
    textcat = nlp.get_pipe("bert_textcat")
    for label in ("spam", "ham", "other"):
        textcat.add_label(label)
    nlp.initialize(lambda: make_examples(nlp))
    assert textcat.labels == ("spam", "ham", "other")
    assert set(nlp("hello").cats) == {"spam", "ham", "other"}


def test_exclusive_probabilities_sum_to_one(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    train(nlp, make_examples(nlp), epochs=1)
    probs = probabilities(nlp, TEXTS)
    numpy.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_multi_label_uses_independent_sigmoids_and_threshold(tiny_encoder):
    nlp = make_nlp(tiny_encoder, exclusive_classes=False, threshold=0.3)
    texts = ["free prize call now", "lunch today", "free lunch prize"]
    cats = [{"spam": 1.0, "urgent": 1.0}, {"spam": 0.0, "urgent": 0.0}, {"spam": 1.0}]
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in zip(texts, cats)]
    train(nlp, examples, epochs=2)
    probs = probabilities(nlp, texts)
    assert probs.shape == (3, 2)
    assert ((probs > 0) & (probs < 1)).all()
    assert not numpy.allclose(probs.sum(axis=1), 1.0)
    scores = nlp.evaluate(examples)
    assert "cats_micro_f" in scores and "cats_macro_auc" in scores


def test_balanced_class_weights_match_scikit_learn(tiny_encoder):
    nlp = make_nlp(tiny_encoder, class_weights="balanced")
    labels = ["ham"] * len(HAM) + ["spam"] * len(SPAM)
    train(nlp, make_examples(nlp), epochs=1)
    expected = compute_class_weight("balanced", classes=numpy.array(["ham", "spam"]), y=labels)
    used = nlp.get_pipe("bert_textcat").class_weights
    assert used == pytest.approx({"ham": expected[0], "spam": expected[1]})


def test_explicit_class_weights_and_their_errors(tiny_encoder):
    nlp = make_nlp(tiny_encoder, class_weights={"spam": 4.0})
    train(nlp, make_examples(nlp), epochs=1)
    assert nlp.get_pipe("bert_textcat").class_weights == {"ham": 1.0, "spam": 4.0}

    with pytest.raises(BertclsError, match="positive"):
        make_nlp(tiny_encoder, class_weights={"spam": -1.0})
    with pytest.raises(BertclsError, match="positive"):
        make_nlp(tiny_encoder, class_weights={"spam": 0})
    with pytest.raises(BertclsError, match="balanced"):
        make_nlp(tiny_encoder, class_weights="balance")
    nlp = make_nlp(tiny_encoder, class_weights={"spma": 2.0})
    with pytest.raises(BertclsError, match="'spma'.*does not have"):
        nlp.initialize(lambda: make_examples(nlp))


def test_weighted_loss_matches_torch():
    from spacy_bertcls.loss import sigmoid_binary_cross_entropy, softmax_cross_entropy

    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(7, 3)).astype("f") * 4
    targets = numpy.array([0, 1, 2, 2, 1, 0, 2])
    weights = numpy.array([0.5, 2.0, 3.0], dtype="f")
    probs = torch.softmax(torch.tensor(logits), dim=1).numpy()
    onehot = numpy.eye(3, dtype="f")[targets]
    loss, grad = softmax_cross_entropy(probs, onehot, weights)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights))(
        t_logits, torch.tensor(targets)
    )
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    numpy.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=1e-4, atol=1e-7)

    truths = (rng.random((7, 3)) > 0.6).astype("f")
    mask = numpy.ones_like(truths)
    probs = torch.sigmoid(torch.tensor(logits)).numpy()
    loss, grad = sigmoid_binary_cross_entropy(probs, truths, mask, weights)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weights))(
        t_logits, torch.tensor(truths)
    )
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    numpy.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_class_weights_change_the_gradient(tiny_encoder):
    plain = make_nlp(tiny_encoder)
    weighted = make_nlp(tiny_encoder, class_weights={"spam": 5.0})
    for nlp in (plain, weighted):
        nlp.initialize(lambda nlp=nlp: make_examples(nlp))
    examples = make_examples(plain)[-3:]  # spam only
    scores = numpy.full((3, 2), 0.5, dtype="f")
    _, d_plain = plain.get_pipe("bert_textcat").get_loss(examples, scores)
    _, d_weighted = weighted.get_pipe("bert_textcat").get_loss(examples, scores)
    # With every example of one class, the weighted mean is the unweighted mean.
    numpy.testing.assert_allclose(d_plain, d_weighted)
    mixed = make_examples(plain)[:3] + examples
    scores = numpy.full((6, 2), 0.5, dtype="f")
    _, d_plain = plain.get_pipe("bert_textcat").get_loss(mixed, scores)
    _, d_weighted = weighted.get_pipe("bert_textcat").get_loss(mixed, scores)
    assert abs(d_weighted[3:]).sum() > abs(d_plain[3:]).sum() * 1.5


def test_frozen_encoder_never_changes_and_runs_once_per_text(tiny_encoder):
    nlp = make_nlp(tiny_encoder, freeze_encoder=True)
    examples = make_examples(nlp)
    examples = examples + examples[:5]  # duplicates must not be encoded again
    nlp.initialize(lambda: examples)
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    assert not any(p.requires_grad for p in module.encoder.parameters())
    before, head_before = encoder_state(nlp), head_state(nlp)
    encoded_rows = []
    hook = module.encoder.register_forward_hook(
        lambda mod, args, kwargs, out: encoded_rows.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    optimizer = nlp.resume_training()
    spacy.util.fix_random_seed(0)
    for _ in range(4):
        for start in range(0, len(examples), 8):
            nlp.update(examples[start : start + 8], sgd=optimizer)
    nlp.evaluate(examples[:4])  # dev evaluation during training reuses the cache too
    hook.remove()
    assert sum(encoded_rows) == len(set(TEXTS))
    after = encoder_state(nlp)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(head_before[k], v) for k, v in head_state(nlp).items())


def test_fine_tuning_changes_encoder_and_respects_its_learn_rate_scale(tiny_encoder):
    nlp = make_nlp(tiny_encoder, freeze_encoder=False)
    nlp.initialize(lambda: make_examples(nlp))
    before = encoder_state(nlp)
    optimizer = nlp.resume_training()
    nlp.update(make_examples(nlp), sgd=optimizer)
    after = encoder_state(nlp)
    assert any(not torch.equal(before[k], after[k]) for k in before)

    nlp = make_nlp(tiny_encoder, freeze_encoder=False, encoder_learn_rate_scale=0.0)
    nlp.initialize(lambda: make_examples(nlp))
    before, head_before = encoder_state(nlp), head_state(nlp)
    nlp.update(make_examples(nlp), sgd=nlp.resume_training())
    after = encoder_state(nlp)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(head_before[k], v) for k, v in head_state(nlp).items())


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_pooling_and_head_choices(tiny_encoder, pooling, head):
    nlp = make_nlp(tiny_encoder, model={"pooling": pooling, "head": head, "hidden_width": 24})
    train(nlp, make_examples(nlp), epochs=1)
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    linears = [m for m in module.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == ([2] if head == "linear" else [24, 2])
    assert probabilities(nlp, ["free prize"]).shape == (1, 2)


def test_bad_model_settings_are_refused(tiny_encoder):
    for model, message in [
        ({"pooling": "max"}, "pooling"),
        ({"head": "deep"}, "head"),
        ({"long_text": "cut"}, "long_text"),
        ({"stride": 40}, "stride"),
        ({"dropout": 1.5}, "dropout"),
    ]:
        with pytest.raises(BertclsError, match=message):
            make_nlp(tiny_encoder, model=model)


def test_long_texts_are_windowed_not_cut(tiny_encoder):
    from spacy_bertcls.windows import make_windows, window_starts

    for n in range(1, 300):
        starts = list(window_starts(n, 30, 20, "window"))
        assert starts[0] == 0 and starts[-1] + 30 >= n  # the end is covered
        assert all(b - a == 20 for a, b in zip(starts, starts[1:]))  # no gaps
        assert len(starts) == 1 or starts[-2] + 30 < n  # no useless window
    nlp = make_nlp(tiny_encoder)
    tokenizer = get_shim_after_init(nlp).tokenizer
    long_text = " ".join(HAM * 10)
    windows = make_windows(
        tokenizer, [long_text, "hi"], max_length=32, stride=16, long_text="window"
    )
    assert windows.text_index.count(0) > 5 and windows.text_index.count(1) == 1
    assert max(len(w) for w in windows.input_ids) == 32
    cut = make_windows(tokenizer, [long_text], max_length=32, stride=16, long_text="truncate")
    assert len(cut.input_ids) == 1

    # The end of a long text changes its prediction when windowing, not when truncating.
    for mode, should_differ in (("window", True), ("truncate", False)):
        nlp = make_nlp(tiny_encoder, model={"long_text": mode})
        nlp.initialize(lambda nlp=nlp: make_examples(nlp))
        a, b = probabilities(nlp, [long_text, long_text + " win cash prize now " * 20])
        assert (not numpy.allclose(a, b)) == should_differ


def get_shim_after_init(nlp):
    nlp.initialize(lambda: make_examples(nlp))
    return get_shim(nlp.get_pipe("bert_textcat").model)


def test_odd_texts_all_get_a_prediction(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    train(nlp, make_examples(nlp), epochs=1)
    docs = list(nlp.pipe(ODD_TEXTS))
    assert len(docs) == len(ODD_TEXTS)
    for doc in docs:
        assert set(doc.cats) == {"ham", "spam"}
        assert sum(doc.cats.values()) == pytest.approx(1.0, rel=1e-5)


def test_pipe_sorts_by_length_but_keeps_order(tiny_encoder):
    nlp = make_nlp(tiny_encoder, model={"encoder_batch_size": 3})
    train(nlp, make_examples(nlp), epochs=1)
    texts = sorted(TEXTS, key=len, reverse=True) + ODD_TEXTS
    batched = probabilities(nlp, texts)
    one_by_one = numpy.array([list(nlp(t).cats.values()) for t in texts])
    numpy.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert [doc.text for doc in nlp.pipe(texts, batch_size=4)] == texts


def test_bad_training_examples_name_the_example(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    good = make_examples(nlp)
    train(nlp, good, epochs=1)
    optimizer = nlp.resume_training()

    def example(cats):
        return Example.from_dict(nlp.make_doc("an odd message here"), {"cats": cats})

    cases = [
        ({"ham": 1.0, "spam": 1.0}, "2 gold labels.*exclusive"),
        ({"ham": 0.5, "spam": 0.5}, "'ham' the value 0.5.*0.0 or 1.0"),
    ]
    for cats, message in cases:
        with pytest.raises(BertclsError, match=message) as err:
            nlp.update(good[:2] + [example(cats)], sgd=optimizer)
        assert "Training example 2 ('an odd message here')" in str(err.value)


def test_one_label_is_refused_for_exclusive_classes(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {"ham": 1.0}}) for t in HAM]
    with pytest.raises(BertclsError, match="at least 2 labels"):
        nlp.initialize(lambda: examples)


def test_missing_or_broken_encoder_directory(tmp_path, tiny_encoder):
    missing = tmp_path / "nowhere"
    with pytest.raises(BertclsError, match="nowhere.*does not exist"):
        get_shim_after_init(make_nlp(str(missing)))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(BertclsError, match=r"broken.*lacks model\.safetensors"):
        get_shim_after_init(make_nlp(str(broken)))
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    for name in ("model.safetensors", "vocab.json"):
        (gpt / name).write_bytes(b"")
    (gpt / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(BertclsError, match="not a BERT-family"):
        get_shim_after_init(make_nlp(str(gpt)))


def test_save_and_load_round_trip_offline(tmp_path, tiny_encoder):
    import shutil

    encoder_copy = tmp_path / "encoder_copy"
    shutil.copytree(tiny_encoder, encoder_copy)
    nlp = make_nlp(str(encoder_copy), freeze_encoder=True, class_weights="balanced")
    train(nlp, make_examples(nlp), epochs=2)
    fresh = ["a text never seen before", "win free cash", ""] + ODD_TEXTS
    expected = probabilities(nlp, fresh)
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(encoder_copy)  # the pipeline must not need the original encoder

    files = {p.name for p in (tmp_path / "pipeline" / "bert_textcat").rglob("*") if p.is_file()}
    assert {"model.safetensors", "head.safetensors", "tokenizer.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pickle"))]

    loaded = spacy.load(tmp_path / "pipeline")
    assert numpy.array_equal(probabilities(loaded, fresh), expected)
    textcat = loaded.get_pipe("bert_textcat")
    assert textcat.labels == ("ham", "spam")
    assert textcat.class_weights == nlp.get_pipe("bert_textcat").class_weights
    assert loaded.config["components"]["bert_textcat"]["class_weights"] == "balanced"

    from_bytes = spacy.blank("en")
    config = dict(loaded.config["components"]["bert_textcat"])
    config.pop("factory")
    from_bytes.add_pipe("bert_textcat", config=config)
    from_bytes.get_pipe("bert_textcat").from_bytes(textcat.to_bytes())
    assert numpy.array_equal(probabilities(from_bytes, fresh), expected)


def test_model_saved_before_layers_existed_loads(tmp_path, tiny_encoder):
    import json

    nlp = make_nlp(tiny_encoder)
    train(nlp, make_examples(nlp), epochs=1)
    nlp.to_disk(tmp_path / "pipeline")
    classifier = tmp_path / "pipeline" / "bert_textcat" / "model" / "classifier.json"
    info = json.loads(classifier.read_text())
    assert info.pop("layers") == [-1]
    classifier.write_text(json.dumps(info))
    loaded = spacy.load(tmp_path / "pipeline")
    assert numpy.array_equal(probabilities(loaded, TEXTS), probabilities(nlp, TEXTS))
    with pytest.raises(BertclsError, match=r"has layers = \[-1\] but the config says \[-2\]"):
        spacy.load(tmp_path / "pipeline", config={"components.bert_textcat.model.layers": [-2]})


def test_standard_textcat_scores(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    examples = make_examples(nlp)
    train(nlp, examples, epochs=2)
    scores = nlp.evaluate(examples)
    for key in ("cats_score", "cats_macro_f", "cats_macro_auc", "cats_f_per_type"):
        assert key in scores
    assert set(scores["cats_f_per_type"]) == {"ham", "spam"}


def test_mixed_precision_is_ignored_on_cpu(tiny_encoder):
    nlp = make_nlp(tiny_encoder, model={"mixed_precision": True})
    train(nlp, make_examples(nlp), epochs=1)
    assert probabilities(nlp, ["free prize"]).shape == (1, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_and_predicts_on_gpu(tiny_encoder):
    spacy.require_gpu()
    try:
        nlp = make_nlp(tiny_encoder, model={"mixed_precision": True})
        train(nlp, make_examples(nlp), epochs=2)
        module = get_shim(nlp.get_pipe("bert_textcat").model).module
        assert next(module.parameters()).is_cuda
        assert probabilities(nlp, TEXTS).shape == (len(TEXTS), 2)
    finally:
        spacy.require_cpu()


def test_layers_are_concatenated_and_checked(tiny_encoder):
    nlp = make_nlp(tiny_encoder, model={"layers": [0, -1], "head": "linear"})
    train(nlp, make_examples(nlp), epochs=1)
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    assert module.feature_width == 2 * module.encoder.config.hidden_size
    assert module.head[-1].in_features == module.feature_width
    assert probabilities(nlp, ["free prize"]).shape == (1, 2)
    with pytest.raises(BertclsError, match="encoder has 2 layers"):
        get_shim_after_init(make_nlp(tiny_encoder, model={"layers": [5]}))
    with pytest.raises(BertclsError, match="each once"):
        make_nlp(tiny_encoder, model={"layers": [-1, -1]})


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        # isinstance() on torch.distributed's deprecated module attributes warns.
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for obj in gc.get_objects() if torch.is_tensor(obj))


@pytest.mark.parametrize("freeze_encoder", [True, False])
def test_training_steps_keep_no_tensor_alive(tiny_encoder, freeze_encoder):
    """Each optimizer step used to give every parameter a new tensor that kept the previous one
    alive (a chain through numpy's base), so memory grew by a copy of the trainable weights
    per step. Counting live tensors is exact and does not depend on timing."""
    nlp = make_nlp(tiny_encoder, freeze_encoder=freeze_encoder)
    examples = make_examples(nlp)
    optimizer = train(nlp, examples, epochs=1, batch_size=6)
    params = get_shim(nlp.get_pipe("bert_textcat").model).trainable_parameters()
    before = live_tensors()
    pointers = [p.data_ptr() for _, p in params]
    for _ in range(5):
        for start in range(0, len(examples), 6):
            nlp.update(examples[start : start + 6], sgd=optimizer)
    assert live_tensors() == before
    # The optimizer writes into the parameters' own memory.
    assert [p.data_ptr() for _, p in params] == pointers


def test_update_drop_is_the_heads_dropout(tiny_encoder):
    """spaCy's [training] dropout reaches the head through update(drop=...)."""
    nlp = make_nlp(tiny_encoder, model={"head": "mlp", "dropout": 0.1})
    examples = make_examples(nlp)
    optimizer = train(nlp, examples, epochs=1)
    head = get_shim(nlp.get_pipe("bert_textcat").model).module.head
    rates = lambda: [m.p for m in head.modules() if isinstance(m, torch.nn.Dropout)]  # noqa: E731
    nlp.update(examples[:4], sgd=optimizer, drop=0.35)
    assert rates() == [0.35]
    nlp.update(examples[:4], sgd=optimizer)  # Language.update's default drop is 0.0
    assert rates() == [0.0]
    with pytest.raises(BertclsError, match="dropout"):
        nlp.update(examples[:4], sgd=optimizer, drop=1.5)
