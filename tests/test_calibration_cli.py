"""Calibration and decisions end to end: bertcls calibrate / train / info / label / evaluate,
for two exclusive classes and for a multi-label pipeline."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import spacy
from conftest import HAM, SPAM
from spacy.tokens import DocBin
from spacy.training import Example
from test_calibration import DEV_HAM, DEV_SPAM, dev_cats, overconfident_pipeline
from test_cli import invoke
from test_textcat import make_nlp, train

from spacy_bertcls.decisions import decision_rule
from spacy_bertcls.labeling import PREDICTED_LABELS
from spacy_bertcls.pipelines import load_pipeline
from spacy_bertcls.training import calibrate_training_output


def folder_digest(path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def pipeline_dir(tiny_encoder, tmp_path_factory):
    path = tmp_path_factory.mktemp("overconfident") / "pipeline"
    overconfident_pipeline(tiny_encoder).to_disk(path)
    return path


@pytest.fixture(scope="module")
def dev_spacy(tmp_path_factory):
    nlp = spacy.blank("en")
    texts, cats = dev_cats()
    docs = []
    for text, cat in zip(texts, cats):
        doc = nlp.make_doc(text)
        doc.cats = cat
        docs.append(doc)
    path = tmp_path_factory.mktemp("dev") / "dev.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


def test_calibrate_writes_a_new_pipeline_and_leaves_the_old_one(pipeline_dir, dev_spacy, tmp_path):
    before = folder_digest(pipeline_dir)
    out = tmp_path / "calibrated"
    result = invoke("calibrate", pipeline_dir, dev_spacy, "--out", out)
    assert result.exit_code == 0, result.output
    assert "temperature" in result.output and "ECE" in result.output
    assert folder_digest(pipeline_dir) == before
    nlp = load_pipeline(out)
    assert nlp.get_pipe("bert_textcat").temperature[0] > 1.0
    assert decision_rule(nlp).positive_label == "spam"
    info = invoke("info", out)
    assert "calibration: temperature" in info.output and "ECE" in info.output
    assert "decision: spam when p(spam) >=" in info.output
    # --out must be new or empty, and apart from the pipeline.
    again = invoke("calibrate", pipeline_dir, dev_spacy, "--out", out)
    assert again.exit_code == 1 and "--overwrite" in again.output
    inside = invoke("calibrate", pipeline_dir, dev_spacy, "--out", pipeline_dir / "x")
    assert inside.exit_code == 1


def test_calibrate_with_a_set_threshold_and_a_table(pipeline_dir, tmp_path):
    texts, cats = dev_cats()
    table = tmp_path / "dev.csv"
    labels = ["spam" if c["spam"] else "ham" for c in cats]
    pd.DataFrame({"message": texts, "kind": labels}).to_csv(table, index=False)
    out = tmp_path / "calibrated"
    result = invoke(
        "calibrate", pipeline_dir, table, "--out", out, "--text-column", "message",
        "--label-column", "kind", "--threshold", "spam=0.8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert decision_rule(load_pipeline(out)).tuned == {"spam": 0.8}
    bad = invoke("calibrate", pipeline_dir, table, "--out", tmp_path / "b", "--threshold", "spam")
    assert bad.exit_code == 1 and "LABEL=VALUE" in bad.output


def test_training_output_is_calibrated_in_place(pipeline_dir, dev_spacy, tmp_path):
    import shutil

    output = tmp_path / "training"
    shutil.copytree(pipeline_dir, output / "model-best")
    done = calibrate_training_output(output, dev_spacy)
    assert list(done) == ["model-best"] and "temperature" in done["model-best"]
    assert load_pipeline(output / "model-best").get_pipe("bert_textcat").temperature
    # No temporary file is left beside the cfg.
    assert sorted(p.name for p in (output / "model-best" / "bert_textcat").iterdir()) == sorted(
        p.name for p in (pipeline_dir / "bert_textcat").iterdir()
    )


def test_label_and_evaluate_use_the_tuned_threshold(pipeline_dir, dev_spacy, tmp_path):
    out = tmp_path / "calibrated"
    assert invoke("calibrate", pipeline_dir, dev_spacy, "--out", out, "--threshold", "spam=0.99")
    texts = DEV_HAM + DEV_SPAM
    table = tmp_path / "rows.csv"
    gold = ["ham"] * len(DEV_HAM) + ["spam"] * len(DEV_SPAM)
    pd.DataFrame({"text": texts, "label": gold}).to_csv(table, index=False)
    labeled = tmp_path / "labeled.csv"
    assert invoke("label", out, table, "--text-column", "text", "--out", labeled).exit_code == 0
    frame = pd.read_csv(labeled)
    decided = frame["predicted_label"] == "spam"
    # spam only where its (calibrated) probability reaches 0.99, whatever the argmax says.
    assert (decided == (frame["prob_spam"] >= 0.99)).all()
    report = tmp_path / "report.html"
    result = invoke("evaluate", out, table, "--report", report, "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert "before temperature scaling" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["calibration"]["n_bins"] == 15
    assert metrics["calibration_before"]["ece"] != metrics["calibration"]["ece"]
    assert metrics["decision"].startswith("spam when p(spam) >= 0.990")
    assert "before the pipeline&#x27;s temperature scaling" in report.read_text() or (
        "before the pipeline's temperature scaling" in report.read_text()
    )


@pytest.fixture(scope="module")
def multi_label_dir(tiny_encoder, tmp_path_factory):
    nlp = make_nlp(tiny_encoder, exclusive_classes=False, freeze_encoder=True)
    texts = HAM + SPAM
    cats = [{"ham": 1.0, "spam": 0.0, "call": float("call" in t)} for t in HAM]
    cats += [{"ham": 0.0, "spam": 1.0, "call": float("call" in t)} for t in SPAM]
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in zip(texts, cats)]
    train(nlp, examples, epochs=6)
    path = tmp_path_factory.mktemp("multi") / "pipeline"
    nlp.to_disk(path)
    return path


def test_multi_label_label_evaluate_and_calibrate(multi_label_dir, tmp_path):
    texts = HAM + SPAM
    cells = [("spam" if t in SPAM else "ham") + (";call" if "call" in t else "") for t in texts]
    table = tmp_path / "multi.csv"
    pd.DataFrame({"text": texts, "labels": cells}).to_csv(table, index=False)
    labeled = tmp_path / "labeled.parquet"
    result = invoke("label", multi_label_dir, table, "--text-column", "text", "--out", labeled)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(labeled)
    assert PREDICTED_LABELS in frame.columns and "predicted_label" not in frame.columns
    for row in frame.itertuples():
        got = (
            set(row.predicted_labels.split(";")) if isinstance(row.predicted_labels, str) else set()
        )
        labels = ("ham", "spam", "call")
        assert got == {label for label in labels if getattr(row, f"prob_{label}") >= 0.5}
    # Evaluate needs the separator of the gold cells, and reports multi-label metrics.
    missing = invoke("evaluate", multi_label_dir, table, "--label-column", "labels",
                     "--report", tmp_path / "r.html")  # fmt: skip
    assert missing.exit_code == 1 and "--multi-label-sep" in missing.output
    report = tmp_path / "report.html"
    result = invoke("evaluate", multi_label_dir, table, "--label-column", "labels",
                    "--multi-label-sep", ";", "--report", report, "--json", tmp_path / "m.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Hamming loss" in result.output and "Subset accuracy" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["per_label"]) == {"ham", "spam", "call"}
    # Calibration: one temperature per label.
    out = tmp_path / "calibrated"
    result = invoke("calibrate", multi_label_dir, table, "--out", out, "--label-column", "labels",
                    "--multi-label-sep", ";")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(load_pipeline(out).get_pipe("bert_textcat").temperature) == 3
