"""The bertcls command line, end to end on a tiny bert_textcat pipeline trained here."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import spacy
from conftest import HAM, ROOT, SPAM
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bertcls.cli import app
from spacy_bertcls.pipelines import SCORES_HEADING, load_pipeline, pipeline_info
from spacy_bertcls.training import (
    bert_textcat_sections,
    parse_class_weights,
    training_overrides,
)

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pipeline(tiny_encoder, tmp_path_factory):
    return train_tiny_pipeline(tiny_encoder, tmp_path_factory.mktemp("pipeline") / "model-best")


def train_tiny_pipeline(tiny_encoder: str, path):
    """A bert_textcat pipeline on the tiny BERT, trained briefly on HAM and SPAM, at path."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_textcat",
        config={
            "freeze_encoder": True,
            "class_weights": "balanced",
            "model": {"encoder": tiny_encoder, "max_length": 32, "stride": 16},
        },
    )
    examples = [
        Example.from_dict(
            nlp.make_doc(t), {"cats": {"ham": float(t in HAM), "spam": float(t in SPAM)}}
        )
        for t in HAM + SPAM
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


@pytest.fixture
def table(tmp_path):
    df = pd.DataFrame(
        {
            "id": range(len(HAM + SPAM) + 2),
            "message": HAM + SPAM + ["", '=HYPERLINK("http://x")'],
            "gold": ["ham"] * len(HAM) + ["spam"] * len(SPAM) + ["ham", "eggs"],
        }
    )
    path = tmp_path / "messages.csv"
    df.to_csv(path, index=False)
    return path


def test_help_on_every_command():
    commands = ("convert", "train", "label", "evaluate", "info", "convert-encoder", "gui",
                "optimize", "pretrain")  # fmt: skip
    for command in commands:
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_label_writes_rows_unchanged_plus_predictions(pipeline, table, tmp_path):
    out = tmp_path / "labeled.csv"
    before = table.read_bytes()
    result = invoke("label", pipeline, table, "--text-column", "message", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Labeled 20 rows" in result.output and "1 empty" in result.output
    assert table.read_bytes() == before  # the input is never modified
    labeled = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    assert list(labeled.columns) == [
        "id",
        "message",
        "gold",
        "predicted_label",
        "confidence",
        "prob_ham",
        "prob_spam",
    ]
    assert labeled["message"].iloc[:18].tolist() == HAM + SPAM
    assert labeled["predicted_label"].iloc[18] == ""  # empty text, empty prediction
    assert labeled["message"].iloc[19].startswith("'=")  # formula neutralized
    sums = labeled[["prob_ham", "prob_spam"]].iloc[:18].astype(float).sum(axis=1)
    assert sums.round(4).eq(1.0).all()


def test_label_refuses_to_overwrite(pipeline, table, tmp_path):
    result = invoke("label", pipeline, table, "--text-column", "message", "--out", table)
    assert result.exit_code == 1 and "is the input file" in result.output
    out = tmp_path / "exists.csv"
    out.write_text("keep me")
    result = invoke("label", pipeline, table, "--text-column", "message", "--out", out)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert out.read_text() == "keep me"
    result = invoke(
        "label", pipeline, table, "--text-column", "mesage", "--out", tmp_path / "x.csv"
    )
    assert result.exit_code == 1 and "message" in result.output  # suggests the close match
    assert not (tmp_path / "x.csv").exists()


def test_label_unreadable_pipeline(table, tmp_path):
    (tmp_path / "not_a_pipeline").mkdir()
    result = invoke(
        "label",
        tmp_path / "not_a_pipeline",
        table,
        "--text-column",
        "message",
        "--out",
        tmp_path / "o.csv",
    )
    assert result.exit_code == 1 and "not a spaCy pipeline" in result.output


def test_evaluate_writes_report_and_reports_unknown_gold(pipeline, table, tmp_path):
    report = tmp_path / "report" / "report.html"
    result = invoke(
        "evaluate",
        pipeline,
        table,
        "--text-column",
        "message",
        "--label-column",
        "gold",
        "--report",
        report,
        "--json",
        tmp_path / "m.json",
        "--plots",
        tmp_path / "plots",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["unknown_gold"] == {"eggs": 1}
    assert metrics["n_evaluated"] == 18
    assert "data:image/png;base64" in report.read_text()
    assert (tmp_path / "plots" / "confusion_matrix.png").exists()


def convert_corpus(tmp_path, copies: int, dev_size: str, test_size: str):
    """``bertcls convert`` on ``copies`` times the HAM and SPAM texts, into tmp_path/corpus."""
    labels = ["ham"] * len(HAM) + ["spam"] * len(SPAM)
    df = pd.DataFrame({"text": (HAM + SPAM) * copies, "label": labels * copies})
    df.to_csv(tmp_path / "data.csv", index=False)
    result = invoke(
        "convert",
        tmp_path / "data.csv",
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--output",
        tmp_path / "corpus",
        "--dev-size",
        dev_size,
        "--test-size",
        test_size,
    )
    assert result.exit_code == 0, result.output
    return result


def test_convert_then_evaluate_the_spacy_split(pipeline, tmp_path):
    result = convert_corpus(tmp_path, 3, "0.2", "0.2")
    assert "rows read 54" in result.output
    result = invoke(
        "evaluate", pipeline, tmp_path / "corpus" / "test.spacy", "--report", tmp_path / "r.html"
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output.lower()


def test_info_shows_encoder_and_weights(pipeline):
    result = invoke("info", pipeline, "--json")
    details = json.loads(result.output)
    assert details["labels"] == ["ham", "spam"]
    assert details["freeze_encoder"] is True
    assert set(details["class_weights_used"]) == {"ham", "spam"}
    # The text output is PipelineInfo.facts, the wording the app's Pipeline tab shows.
    result = invoke("info", pipeline)
    assert result.exit_code == 0, result.output
    info = pipeline_info(load_pipeline(pipeline))
    for caption, text in info.facts():
        assert f"{caption}: {text}\n" in result.output
    assert "freeze_encoder: true (frozen encoder: only the head was trained)" in result.output
    assert SCORES_HEADING in result.output and info.settings_heading in result.output


def test_train_with_a_project_config(tiny_encoder, tmp_path):
    convert_corpus(tmp_path, 2, "0.25", "0.1")
    for config in ("frozen", "finetune"):
        result = invoke(
            "train",
            ROOT / "configs" / f"{config}.cfg",
            "--output",
            tmp_path / config,
            "--encoder",
            tiny_encoder,
            "--class-weights",
            "spam=2",
            "--paths.train",
            tmp_path / "corpus" / "train.spacy",
            "--paths.dev",
            tmp_path / "corpus" / "dev.spacy",
            "--training.max_steps",
            "4",
            "--training.eval_frequency",
            "2",
            "--components.bert_textcat.model.max_length",
            "32",
            "--components.bert_textcat.model.stride",
            "16",
            "--components.bert_textcat.model.layers",
            "[-1, -2]",  # the tiny BERT has only 2 layers
        )
        assert result.exit_code == 0, result.output
        nlp = spacy.load(tmp_path / config / "model-best")
        textcat = nlp.get_pipe("bert_textcat")
        assert textcat.class_weights == {"ham": 1.0, "spam": 2.0}
        assert textcat.cfg["freeze_encoder"] == (config == "frozen")


def test_short_training_runs_evaluate_before_they_end(tmp_path):
    from spacy.tokens import DocBin

    from spacy_bertcls.training import eval_frequency_for_short_runs

    nlp = spacy.blank("en")
    docs = DocBin(docs=[nlp.make_doc(t) for t in (HAM + SPAM) * 10])  # 180 texts
    docs.to_disk(tmp_path / "train.spacy")
    config = ROOT / "configs" / "frozen.cfg"  # batches of 32, 15 epochs, eval_frequency 150
    overrides = {"paths.train": str(tmp_path / "train.spacy"), "paths.dev": "dev.spacy"}
    frequency, why = eval_frequency_for_short_runs(config, overrides)
    assert frequency == 9  # 6 steps per epoch, 90 steps in all
    assert "about 90 steps (180 texts, batches of 32, 15 epochs)" in why
    longer = {**overrides, "training.max_epochs": 30}
    assert eval_frequency_for_short_runs(config, longer) == (None, "")  # 180 steps
    assert eval_frequency_for_short_runs(config, {**overrides, "paths.train": "x.csv"})[0] is None


def test_class_weights_option_parsing():
    assert parse_class_weights("balanced") == "balanced"
    assert parse_class_weights("none") is None
    assert parse_class_weights("spam=3, ham=1") == {"spam": 3.0, "ham": 1.0}
    assert parse_class_weights('{"spam": 2}') == {"spam": 2}
    with pytest.raises(ValueError, match="label=weight"):
        parse_class_weights("spam:3")
    sections = ["components.bert_textcat"]
    assert training_overrides("auto", "auto", "auto", sections) == {}
    assert training_overrides("false", "none", "x", sections) == {
        "components.bert_textcat.freeze_encoder": False,
        "components.bert_textcat.class_weights": None,
        "components.bert_textcat.model.encoder": "x",
    }
    with pytest.raises(ValueError, match="true, false or auto"):
        training_overrides("maybe", "auto", "auto", sections)
    with pytest.raises(ValueError, match='no component made by factory = "bert_textcat"'):
        training_overrides("true", "auto", "auto", [])


def test_train_options_reach_a_component_of_any_name(tmp_path):
    """The CLI's --freeze-encoder etc. find the bert_textcat component by its factory, not by
    the section name components.bert_textcat."""
    config = (ROOT / "configs" / "frozen.cfg").read_text()
    renamed = config.replace('pipeline = ["bert_textcat"]', 'pipeline = ["sentiment"]')
    renamed = renamed.replace("[components.bert_textcat", "[components.sentiment")
    (tmp_path / "renamed.cfg").write_text(renamed)
    assert bert_textcat_sections(tmp_path / "renamed.cfg") == ["components.sentiment"]
    assert training_overrides("false", "auto", "auto", ["components.sentiment"]) == {
        "components.sentiment.freeze_encoder": False
    }


def test_label_with_a_wrong_column_fails_before_any_progress_bar(pipeline, table, tmp_path):
    result = invoke(
        "label", pipeline, table, "--text-column", "mesage", "--out", tmp_path / "o.csv"
    )
    assert result.exit_code == 1
    assert "no column 'mesage' (did you mean 'message'?)" in result.output
    assert "Labeling" not in result.output and "rows/s" not in result.output
    assert not (tmp_path / "o.csv").exists()
