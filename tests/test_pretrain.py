"""Domain-adaptive pre-training (`bertcls pretrain`) on the tiny random BERT, a few steps each.

What a user relies on: the encoder written loads as any encoder and as bert_textcat's, the
held-out perplexity is reported, an interrupted run continues where it stopped (and ends with
the weights an uninterrupted run has), the test split is never trained on, and bad input gets
a message instead of a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pandas as pd
import pytest
import spacy
import torch
from conftest import HAM, SPAM, TEXTS
from safetensors.torch import load_file
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bertcls import pretrain as pretrain_module
from spacy_bertcls.cli import app
from spacy_bertcls.convert import convert_table
from spacy_bertcls.encoder import check_model_dir
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.pretrain import (
    CHECKPOINTS_DIR,
    ENCODER_DIR,
    SUMMARY_FILE,
    PretrainSettings,
    checkpoints,
    pretrain_encoder,
    read_pretrain_texts,
    stop_requests,
    torch_device,
)

runner = CliRunner()
# More texts than the fixtures' 18, all made of the tiny tokenizer's words.
CORPUS = TEXTS + [f"{a} and {b}" for a, b in zip(HAM, reversed(HAM))]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def settings(tiny_encoder: str, **changes) -> PretrainSettings:
    values = {
        "encoder": tiny_encoder,
        "max_steps": 6,
        "batch_size": 4,
        "heldout": 0.2,
        "checkpoint_every": 2,
    }
    return PretrainSettings(**{**values, **changes})


def encoder_weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def pretrained(tiny_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    result = pretrain_encoder(CORPUS, out, settings(tiny_encoder, head_warmup_steps=2))
    return out, result


def test_pretrain_writes_an_encoder_that_loads_anywhere(pretrained):
    """OUT/encoder passes the checks every encoder gets (safetensors, tokenizer, no code, no
    pickle) and Hugging Face's AutoModel loads it; nothing else is left in OUT."""
    from transformers import AutoModel, AutoTokenizer

    out, result = pretrained
    encoder = out / ENCODER_DIR
    assert result.encoder_dir == encoder and not result.stopped
    check_model_dir(encoder)
    files = {path.name for path in encoder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", SUMMARY_FILE} <= files
    assert not [name for name in files if name.endswith((".py", ".bin", ".pt", ".pkl"))]
    assert "auto_map" not in json.loads((encoder / "config.json").read_text())
    model = AutoModel.from_pretrained(encoder, use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    assert model(**tokenizer("call me now", return_tensors="pt")).last_hidden_state.shape[-1] == 32
    assert sorted(path.name for path in out.iterdir()) == [ENCODER_DIR]  # no checkpoints left
    summary = json.loads((encoder / SUMMARY_FILE).read_text())
    assert summary["steps"] == 6 and summary["settings"]["head_warmup_steps"] == 2


def test_pretrain_reports_heldout_perplexity_before_and_after(pretrained):
    _, result = pretrained
    assert result.heldout_texts == round(0.2 * len(CORPUS))
    assert result.head_was_new  # make_tiny_bert saves a BertModel: no MLM head
    for value in (
        result.perplexity_before,
        result.perplexity_after_head_warmup,
        result.perplexity_after,
    ):
        assert value is not None and 1 < value < 10_000
    text = result.format()
    assert "Held-out perplexity" in text and "head warm-up" in text
    assert "started random" in text


def test_the_pretrained_encoder_is_a_bert_textcat_encoder(pretrained):
    """`encoder = OUT/encoder` in a pipeline: it trains, predicts, saves and loads."""
    out, _ = pretrained
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_textcat",
        config={
            "freeze_encoder": True,
            "model": {"encoder": str(out / ENCODER_DIR), "max_length": 32, "stride": 16},
        },
    )
    examples = [
        Example.from_dict(
            nlp.make_doc(t), {"cats": {"ham": float(t in HAM), "spam": float(t in SPAM)}}
        )
        for t in TEXTS
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    assert set(nlp("free prize call now").cats) == {"ham", "spam"}
    nlp.to_disk(out.parent / "pipeline")
    assert set(spacy.load(out.parent / "pipeline")("see you").cats) == {"ham", "spam"}


def test_an_interrupted_run_continues_from_its_checkpoint(tiny_encoder, tmp_path):
    """Stopped after step 3 (as on Ctrl+C): a checkpoint at step 3 and no encoder. The same
    call again continues at step 4, and ends with the weights of a run never interrupted."""
    whole = pretrain_encoder(CORPUS, tmp_path / "whole", settings(tiny_encoder))

    out = tmp_path / "stopped"
    done: list[int] = []
    stopped = pretrain_encoder(
        CORPUS,
        out,
        settings(tiny_encoder),
        progress=lambda state: done.append(state.step),
        should_stop=lambda: len(done) >= 3,
    )
    assert stopped.stopped and stopped.steps == 3 and stopped.encoder_dir is None
    assert [path.name for path in checkpoints(out)] == ["step-000003"]  # step 2's was replaced
    assert not (out / ENCODER_DIR).exists()
    assert "Run the same command again" in stopped.format()

    steps: list[int] = []
    resumed = pretrain_encoder(
        CORPUS, out, settings(tiny_encoder), progress=lambda s: steps.append(s.step)
    )
    assert resumed.resumed_from == 3 and steps == [4, 5, 6] and resumed.steps == 6
    assert resumed.perplexity_before == whole.perplexity_before
    assert resumed.perplexity_after == pytest.approx(whole.perplexity_after, rel=1e-5)
    first, second = encoder_weights(whole.encoder_dir), encoder_weights(resumed.encoder_dir)
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_other_settings_is_not_continued(tiny_encoder, tmp_path):
    out = tmp_path / "run"
    pretrain_encoder(CORPUS, out, settings(tiny_encoder), should_stop=lambda: True)
    assert [path.name for path in checkpoints(out)] == ["step-000000"]
    with pytest.raises(BertclsError, match=r"batch_size: 4 then, 8 now.*--resume no"):
        pretrain_encoder(CORPUS, out, settings(tiny_encoder, batch_size=8))
    result = pretrain_encoder(
        CORPUS, out, settings(tiny_encoder, batch_size=8, max_steps=2), resume="no"
    )
    assert result.resumed_from is None and result.steps == 2


def test_an_interrupt_while_writing_a_checkpoint_keeps_the_previous_one(
    tiny_encoder, tmp_path, monkeypatch
):
    """A second Ctrl+C (KeyboardInterrupt) in the middle of writing checkpoint 4 leaves
    checkpoint 2 whole, no half-written folder and no encoder."""
    from safetensors.torch import save_file

    calls: list[int] = []

    def save_then_interrupt(tensors, path):
        calls.append(1)
        save_file(tensors, path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", save_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        pretrain_encoder(CORPUS, out, settings(tiny_encoder))
    assert [path.name for path in checkpoints(out)] == ["step-000002"]
    assert sorted(path.name for path in (out / CHECKPOINTS_DIR).iterdir()) == ["step-000002"]
    assert not (out / ENCODER_DIR).exists() and not list(out.glob(".encoder*"))


@pytest.fixture
def labeled(tmp_path):
    """A labeled table and its corpus/{train,dev,test}.spacy, split as `bertcls convert` does."""
    rows = [(t, "ham") for t in HAM] + [(t, "spam") for t in SPAM]
    table = tmp_path / "labeled.csv"
    pd.DataFrame(rows, columns=["message", "label"]).to_csv(table, index=False)
    convert_table(
        table, text_column="message", label_column="label", out_dir=tmp_path / "corpus",
        dev_size=0.2, test_size=0.3, seed=0,
    )  # fmt: skip
    return table, tmp_path / "corpus"


def test_the_test_split_is_never_pretrained_on(labeled, tiny_encoder):
    table, corpus = labeled
    test_texts = [doc.text for doc in spacy.tokens.DocBin().from_disk(corpus / "test.spacy")
                  .get_docs(spacy.blank("en").vocab)]  # fmt: skip
    assert test_texts
    found = read_pretrain_texts([table], text_column="message", exclude=[corpus / "test.spacy"])
    assert found.excluded == len(set(test_texts))
    assert not set(found.texts) & set(test_texts)
    assert len(found.texts) == len(TEXTS) - len(set(test_texts))
    assert f"removed {found.excluded} texts found in {corpus / 'test.spacy'}" in found.format()

    # By text hash: extra spaces around a test text do not let it through.
    padded = table.with_name("padded.txt")
    padded.write_text("\n".join(f"  {text}  " for text in test_texts) + "\nsomething new\n")
    found = read_pretrain_texts([padded], exclude=[corpus / "test.spacy"])
    assert found.texts == ["something new"]

    with pytest.raises(BertclsError, match="test split.*--exclude"):
        read_pretrain_texts([corpus / "test.spacy"])
    # train.spacy has a test.spacy beside it: excluded without being named.
    found = read_pretrain_texts([corpus / "train.spacy", corpus / "dev.spacy"])
    assert found.exclude_files == [str(corpus / "test.spacy")]
    assert not set(found.texts) & set(test_texts)


def test_bad_input_gets_a_clear_message(tiny_encoder, tmp_path, monkeypatch):
    table = tmp_path / "texts.csv"
    pd.DataFrame({"body": ["hello there", " ", "see you"]}).to_csv(table, index=False)
    with pytest.raises(BertclsError, match=r"no column 'text'.*'body'"):
        read_pretrain_texts([table])
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"text": ["", "  "]}).to_csv(empty, index=False)
    with pytest.raises(BertclsError, match="every text cell is empty"):
        read_pretrain_texts([empty])
    with pytest.raises(BertclsError, match="all 2 distinct texts are in the --exclude"):
        read_pretrain_texts([table], text_column="body", exclude=[table])
    with pytest.raises(BertclsError, match="too few to hold 1 out"):
        pretrain_encoder(["only one"], tmp_path / "a", settings(tiny_encoder))
    (tmp_path / "b" / ENCODER_DIR).mkdir(parents=True)
    with pytest.raises(BertclsError, match="exists already.*--overwrite"):
        pretrain_encoder(CORPUS, tmp_path / "b", settings(tiny_encoder))
    shutil.copytree(tiny_encoder, tmp_path / "c" / ENCODER_DIR)
    with pytest.raises(BertclsError, match="would overwrite the input"):
        pretrain_encoder(
            CORPUS, tmp_path / "c", settings(str(tmp_path / "c" / ENCODER_DIR)), overwrite=True
        )
    with pytest.raises(BertclsError, match="head_warmup_steps = 6 is out of range"):
        pretrain_encoder(CORPUS, tmp_path / "d", settings(tiny_encoder, head_warmup_steps=6))
    with pytest.raises(BertclsError, match="--resume nowhere: no such checkpoint"):
        pretrain_encoder(CORPUS, tmp_path / "e", settings(tiny_encoder), resume="nowhere")


def test_gpu_id_follows_spacys_convention(monkeypatch):
    """-1 the CPU, 0 the first GPU; checked without a GPU by faking what torch reports."""
    assert torch_device(-1) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BertclsError, match="--device 0: cannot pre-train on a GPU"):
        torch_device(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert torch_device(1) == torch.device("cuda", 1)
    with pytest.raises(BertclsError, match="has 2 GPU"):
        torch_device(2)


def test_ctrl_c_asks_to_stop_then_interrupts():
    notices: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    with stop_requests(notice=notices.append) as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop() and "writing a checkpoint" in notices[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_cli_pretrain(labeled, tiny_encoder, tmp_path):
    table, corpus = labeled
    out = tmp_path / "pretraining"
    result = invoke(
        "pretrain", table, "--text-column", "message", "--exclude", corpus / "test.spacy",
        "--extra-unlabeled", corpus / "train.spacy", "--out", out, "--encoder", tiny_encoder,
        "--max-steps", 3, "--batch-size", 4, "--heldout", 0.2, "--whole-word",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "removed" in result.output and "texts found in" in result.output
    assert "Held-out perplexity" in result.output and "word masking" in result.output
    assert f"wrote {out / ENCODER_DIR}" in result.output
    check_model_dir(out / ENCODER_DIR)

    again = invoke("pretrain", table, "--text-column", "message", "--out", out)
    assert again.exit_code == 1 and "--overwrite" in again.output

    bad = invoke("pretrain", table, "--text-column", "text", "--out", tmp_path / "x")
    assert bad.exit_code == 1 and "Error:" in bad.output
    assert "'message'" in bad.output and "Traceback" not in bad.output
    test_split = invoke("pretrain", corpus / "test.spacy", "--out", tmp_path / "y")
    assert test_split.exit_code == 1 and "is a test split" in test_split.output


def test_cli_help_names_the_options():
    result = invoke("pretrain", "--help")
    for option in ("--exclude", "--extra-unlabeled", "--whole-word", "--device", "--resume"):
        assert option in result.output


def test_checkpoints_hold_no_pickle(tiny_encoder, tmp_path):
    out = tmp_path / "run"
    pretrain_encoder(CORPUS, out, settings(tiny_encoder), should_stop=lambda: True)
    (checkpoint,) = checkpoints(out)
    names = sorted(path.name for path in checkpoint.iterdir())
    assert names == sorted(
        ["config.json", "model.safetensors", pretrain_module.STATE_FILE,
         pretrain_module.TENSORS_FILE]
    )  # fmt: skip
