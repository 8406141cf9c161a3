"""The training-text fingerprint: bert_textcat records hashes of the texts it trains on, saves
them without the texts, and `bertcls evaluate` warns about rows the pipeline was trained on."""

from __future__ import annotations

import json
from hashlib import blake2b
from pathlib import Path

import numpy
import pandas as pd
import pytest
import spacy
from conftest import HAM, SPAM
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bertcls import BertclsError
from spacy_bertcls.cli import app
from spacy_bertcls.fingerprint import FINGERPRINT_FILE, text_hashes, trained_on

# Trained on: 8 HAM and 4 SPAM texts, one of them twice. Held out: the other 4 HAM, 2 SPAM.
TRAIN_HAM, HELD_OUT_HAM = HAM[:8], HAM[8:]
TRAIN_SPAM, HELD_OUT_SPAM = SPAM[:4], SPAM[4:]
TRAIN_TEXTS = TRAIN_HAM + TRAIN_SPAM + [HAM[0]]
HELD_OUT_TEXTS = HELD_OUT_HAM + HELD_OUT_SPAM


def make_nlp(encoder: str) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_textcat",
        config={
            "freeze_encoder": True,
            "model": {"encoder": encoder, "max_length": 32, "stride": 16, "hidden_width": 16},
        },
    )
    return nlp


def make_examples(nlp, texts) -> list[Example]:
    return [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {"ham": float(text in HAM), "spam": float(text in SPAM)}}
        )
        for text in texts
    ]


def train_epochs(nlp, examples, optimizer, epochs: int) -> None:
    for _ in range(epochs):
        for start in range(0, len(examples), 4):
            nlp.update(examples[start : start + 4], sgd=optimizer)


def expected_hashes(texts) -> numpy.ndarray:
    return numpy.unique(text_hashes(texts))


@pytest.fixture(scope="module")
def trained(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    examples = make_examples(nlp, TRAIN_TEXTS)
    spacy.util.fix_random_seed(0)
    train_epochs(nlp, examples, nlp.initialize(lambda: examples), epochs=2)
    return nlp


@pytest.fixture(scope="module")
def pipeline(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("fingerprint") / "model-best"
    trained.to_disk(path)
    return path


def test_text_hashes_are_stable_64_bit_blake2b_of_the_collapsed_text():
    hashes = text_hashes(["free prize now", "  free prize\n\tnow ", "Free prize now", ""])
    assert hashes.dtype == numpy.uint64 and hashes.shape == (4,)
    digest = blake2b(b"free prize now", digest_size=8).digest()
    assert int(hashes[0]) == int.from_bytes(digest, "little")
    assert hashes[0] == hashes[1]  # the tokenizer does not see whitespace runs
    assert hashes[0] != hashes[2]  # case counts
    assert text_hashes([]).shape == (0,)


def test_update_records_the_distinct_training_texts_and_stays_flat(tiny_encoder):
    nlp = make_nlp(tiny_encoder)
    textcat = nlp.get_pipe("bert_textcat")
    examples = make_examples(nlp, TRAIN_TEXTS)
    optimizer = nlp.initialize(lambda: make_examples(nlp, HAM + SPAM))
    assert textcat.training_text_hashes.size == 0  # initialize's examples are not trained on
    train_epochs(nlp, examples, optimizer, epochs=1)
    after_one = textcat.training_text_hashes
    assert after_one.dtype == numpy.uint64
    numpy.testing.assert_array_equal(after_one, expected_hashes(TRAIN_TEXTS))
    assert after_one.size == len(set(TRAIN_TEXTS)) == len(TRAIN_TEXTS) - 1
    train_epochs(nlp, examples, optimizer, epochs=3)
    numpy.testing.assert_array_equal(textcat.training_text_hashes, after_one)

    # Rehearsal learns no labels: its texts are not recorded.
    optimizer = nlp.resume_training()
    nlp.rehearse(make_examples(nlp, HELD_OUT_TEXTS), sgd=optimizer)
    numpy.testing.assert_array_equal(textcat.training_text_hashes, after_one)

    # A new initialize starts a new model, and a new fingerprint.
    nlp.initialize(lambda: examples)
    assert textcat.training_text_hashes.size == 0


def test_trained_on_flags_the_training_rows(trained):
    texts = HELD_OUT_TEXTS + TRAIN_TEXTS + ["  " + TRAIN_HAM[1].replace(" ", "  ") + "\n"]
    flags = trained_on(trained, texts)
    assert flags.dtype == bool
    assert flags.tolist() == [False] * len(HELD_OUT_TEXTS) + [True] * (len(TRAIN_TEXTS) + 1)
    assert trained_on(trained, []).shape == (0,)
    assert not trained_on(spacy.blank("en"), TRAIN_TEXTS).any()  # no bert_textcat: nothing


def test_fingerprint_is_saved_without_text_and_without_pickle(trained, pipeline):
    file = pipeline / "bert_textcat" / FINGERPRINT_FILE
    data = file.read_bytes()
    for text in TRAIN_TEXTS:
        assert text.encode("utf-8") not in data
    saved = numpy.load(file, allow_pickle=False)
    assert saved.dtype == numpy.uint64
    numpy.testing.assert_array_equal(saved, expected_hashes(TRAIN_TEXTS))
    assert len(data) < 1024  # 8 bytes per distinct text and the .npy header

    loaded = spacy.load(pipeline)
    numpy.testing.assert_array_equal(
        loaded.get_pipe("bert_textcat").training_text_hashes, expected_hashes(TRAIN_TEXTS)
    )
    assert trained_on(loaded, TRAIN_TEXTS).all()
    assert not trained_on(loaded, HELD_OUT_TEXTS).any()


def test_fingerprint_survives_to_bytes_and_from_bytes(trained, tiny_encoder):
    restored = make_nlp(tiny_encoder).from_bytes(trained.to_bytes())
    numpy.testing.assert_array_equal(
        restored.get_pipe("bert_textcat").training_text_hashes, expected_hashes(TRAIN_TEXTS)
    )
    component = trained.get_pipe("bert_textcat")
    fresh = make_nlp(tiny_encoder).get_pipe("bert_textcat")
    fresh.from_bytes(component.to_bytes(exclude=["training_texts"]))
    assert fresh.training_text_hashes.size == 0


def test_pipeline_without_fingerprint_loads_with_none(pipeline, tmp_path):
    import shutil

    old = tmp_path / "old-pipeline"
    shutil.copytree(pipeline, old)
    (old / "bert_textcat" / FINGERPRINT_FILE).unlink()
    nlp = spacy.load(old)
    assert nlp.get_pipe("bert_textcat").training_text_hashes.size == 0
    assert not trained_on(nlp, TRAIN_TEXTS).any()


def test_a_pickled_fingerprint_is_refused(pipeline, tmp_path):
    import shutil

    bad = tmp_path / "bad-pipeline"
    shutil.copytree(pipeline, bad)
    objects = numpy.array([{"a": 1}, "text"], dtype=object)
    with (bad / "bert_textcat" / FINGERPRINT_FILE).open("wb") as file:
        numpy.save(file, objects, allow_pickle=True)
    with pytest.raises(BertclsError, match="damaged training-text fingerprint"):
        spacy.load(bad)
    numpy.save(bad / "bert_textcat" / FINGERPRINT_FILE, numpy.array([1.5, 2.5]))
    with pytest.raises(BertclsError, match="flat array of uint64"):
        spacy.load(bad)


def write_table(path, texts) -> None:
    labels = ["ham" if text in HAM else "spam" for text in texts]
    pd.DataFrame({"message": texts, "gold": labels}).to_csv(path, index=False)


def evaluate(pipeline, table, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(pipeline),
            str(table),
            "--text-column",
            "message",
            "--label-column",
            "gold",
            "--report",
            str(tmp_path / "report.html"),
            "--json",
            str(tmp_path / "metrics.json"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output, json.loads((tmp_path / "metrics.json").read_text())


def test_evaluate_warns_about_rows_trained_on(pipeline, tmp_path):
    table = tmp_path / "mixed.csv"
    mixed = TRAIN_HAM[:3] + TRAIN_SPAM[:1] + HELD_OUT_TEXTS  # 4 trained on, 6 held out
    write_table(table, mixed)
    output, metrics = evaluate(pipeline, table, tmp_path)
    assert "4 of 10 evaluated rows (40%) are texts this pipeline was trained on" in output
    assert "scores on them are inflated" in output
    assert "Held-out rows only (6): accuracy " in output and "macro F1 " in output
    assert metrics["details"]["trained-on rows"] == "4 of 10 evaluated rows (40%)"
    assert 0.0 <= metrics["details"]["held-out accuracy"] <= 1.0
    assert any("trained on" in note for note in metrics["notes"])
    assert "are texts this pipeline was trained on" in (tmp_path / "report.html").read_text()


def test_evaluate_on_training_rows_only_says_none_is_held_out(pipeline, tmp_path):
    table = tmp_path / "train.csv"
    write_table(table, TRAIN_TEXTS)
    output, metrics = evaluate(pipeline, table, tmp_path)
    assert "13 of 13 evaluated rows (100%) are texts this pipeline was trained on" in output
    assert "No held-out row is left to score" in output
    assert "held-out accuracy" not in metrics["details"]


def test_evaluate_on_held_out_rows_does_not_warn(pipeline, tmp_path):
    table = tmp_path / "held_out.csv"
    write_table(table, HELD_OUT_TEXTS)
    output, metrics = evaluate(pipeline, table, tmp_path)
    assert "trained on" not in output
    assert "trained-on rows" not in metrics["details"]


def test_the_app_session_marks_and_warns_about_rows_trained_on(pipeline):
    """The app's session flags the training rows and its evaluation warns as the CLI does."""
    from spacy_bertcls.session import Session

    texts = TRAIN_HAM[:3] + HELD_OUT_TEXTS
    gold = ["ham" if text in HAM else "spam" for text in texts]
    session = Session()
    session.open_pipeline(pipeline)
    session.set_table(Path("mixed.csv"), pd.DataFrame({"text": texts, "label": gold}))
    assert session.trained_rows().tolist() == [True] * 3 + [False] * len(HELD_OUT_TEXTS)
    session.label()
    evaluation = session.evaluate()
    notes = " ".join(evaluation.result.notes())
    assert "3 of 9 evaluated rows" in notes and "Held-out rows only (6)" in notes
    assert evaluation.details["trained-on rows"].startswith("3 of 9")


def test_pipeline_info_says_how_many_training_texts_it_knows(pipeline):
    from spacy_bertcls.pipelines import load_pipeline, pipeline_info

    info = pipeline_info(load_pipeline(pipeline))
    assert info.training_texts == len(set(TRAIN_TEXTS))
    assert dict(info.facts())["training texts"].startswith(f"{len(set(TRAIN_TEXTS))} distinct")
