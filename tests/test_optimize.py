"""`bertcls optimize`: the encoder exported to ONNX Runtime, on a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import spacy
from conftest import HAM, SPAM, TEXTS
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bertcls.cli import app
from spacy_bertcls.errors import BertclsError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from spacy_bertcls.onnx_backend import ONNX_FILE, check_onnx_model  # noqa: E402
from spacy_bertcls.optimize import optimize_pipeline  # noqa: E402

# Longer than max_length below: several windows.
LONG = " ".join(TEXTS)
CHECK = [*TEXTS, LONG, "ok", "😊 ÷ ∑", "Спасибо"]


def cats_matrix(nlp: spacy.Language, texts: list[str]) -> np.ndarray:
    labels = nlp.get_pipe("bert_textcat").labels
    return np.array([[doc.cats[label] for label in labels] for doc in nlp.pipe(texts)])


@pytest.fixture(scope="module")
def source(tiny_encoder, tmp_path_factory):
    """A tiny trained pipeline: two layers pooled, windows of 16 pieces, positive_label."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_textcat",
        config={
            "freeze_encoder": True,
            "threshold": 0.3,
            "model": {"encoder": tiny_encoder, "layers": [-1, -2], "max_length": 16, "stride": 8},
        },
    )
    examples = [
        Example.from_dict(
            nlp.make_doc(t), {"cats": {"ham": float(t in HAM), "spam": float(t in SPAM)}}
        )
        for t in TEXTS
    ]
    nlp.get_pipe("bert_textcat").initialize(lambda: examples, nlp=nlp, positive_label="spam")
    optimizer = nlp.create_optimizer()
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("source") / "model-best"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def fp32(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("optimized") / "fp32"
    summary = optimize_pipeline(source, out, quantize="none")
    assert summary.max_prob_diff < 1e-4 and summary.agreement == 1.0
    return out


@pytest.fixture(scope="module")
def int8(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("optimized") / "int8"
    optimize_pipeline(source, out, quantize="int8")
    return out


def test_float32_export_predicts_as_the_source(source, fp32):
    before, after = spacy.load(source), spacy.load(fp32)
    assert after.get_pipe("bert_textcat").labels == before.get_pipe("bert_textcat").labels
    np.testing.assert_allclose(cats_matrix(after, CHECK), cats_matrix(before, CHECK), atol=1e-5)
    component = after.get_pipe("bert_textcat")
    assert component.cfg["positive_label"] == "spam"
    assert component.cfg["threshold"] == 0.3
    model = after.config["components"]["bert_textcat"]["model"]
    assert model["@architectures"] == "spacy_bertcls.OnnxBertClassifier.v1"
    assert model["quantize"] == "none" and model["layers"] == [-1, -2]


def test_int8_export_keeps_the_predicted_labels(source, int8):
    before, after = cats_matrix(spacy.load(source), CHECK), cats_matrix(spacy.load(int8), CHECK)
    assert np.abs(before - after).max() < 0.05
    assert (before.argmax(axis=1) == after.argmax(axis=1)).mean() >= 0.9
    config = spacy.load(int8).config["components"]["bert_textcat"]["model"]
    assert config["quantize"] == "int8"


def test_no_pickle_and_no_torch_weights_in_the_output(fp32, int8):
    for folder in (fp32, int8):
        files = [f for f in folder.rglob("*") if f.is_file()]
        names = {f.name for f in files}
        assert ONNX_FILE in names and "model.safetensors" not in names
        for file in files:
            head = file.read_bytes()[:4]
            if "bert_textcat" in file.parts:  # (spaCy's vocab/lookups.bin is msgpack)
                assert file.suffix not in (".bin", ".pt", ".pth", ".pkl", ".pickle"), file
            # Pickles (protocol 2+) start with 0x80 and the protocol; torch.save writes a zip.
            # (spaCy's msgpack files may start with 0x80 too: an empty map, one byte.)
            assert head[:2] not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"), file
            assert not head.startswith(b"PK\x03\x04"), file


def test_optimized_pipeline_refuses_training(fp32):
    nlp = spacy.load(fp32)
    example = Example.from_dict(nlp.make_doc(HAM[0]), {"cats": {"ham": 1.0, "spam": 0.0}})
    with pytest.raises(BertclsError, match="bertcls optimize.*cannot be trained"):
        nlp.update([example])
    with pytest.raises(BertclsError, match="cannot be trained"):
        nlp.initialize(lambda: [example])
    nlp = spacy.load(fp32)
    nlp.resume_training()
    with pytest.raises(BertclsError, match="cannot be trained"):
        nlp.rehearse([example])


def test_saves_and_loads_again(fp32, tmp_path):
    nlp = spacy.load(fp32)
    expected = cats_matrix(nlp, CHECK)
    nlp.to_disk(tmp_path / "again")
    np.testing.assert_allclose(cats_matrix(spacy.load(tmp_path / "again"), CHECK), expected)
    copy = spacy.load(fp32)
    copy.get_pipe("bert_textcat").from_bytes(nlp.get_pipe("bert_textcat").to_bytes())
    np.testing.assert_allclose(cats_matrix(copy, CHECK), expected)


def test_refuses_an_optimized_pipeline_and_a_bad_out(source, fp32, tmp_path):
    with pytest.raises(BertclsError, match="already optimized"):
        optimize_pipeline(fp32, tmp_path / "twice")
    with pytest.raises(BertclsError, match="not empty"):
        optimize_pipeline(source, fp32)
    with pytest.raises(BertclsError, match="inside"):
        optimize_pipeline(source, source / "fast")
    with pytest.raises(BertclsError, match="'fp16'"):
        optimize_pipeline(source, tmp_path / "x", quantize="fp16")


def test_loading_refuses_code_and_foreign_onnx_files(fp32, tmp_path):
    import shutil

    encoder = tmp_path / "p" / "bert_textcat" / "model" / "encoder"
    shutil.copytree(fp32, tmp_path / "p")
    (encoder / "hook.py").write_text("print('hi')\n")
    with pytest.raises(BertclsError, match="Python files"):
        spacy.load(tmp_path / "p")
    (encoder / "hook.py").unlink()
    (encoder / ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(BertclsError, match="damaged"):
        spacy.load(tmp_path / "p")


def test_onnx_check_refuses_external_data_and_custom_operators(fp32):
    import onnx

    data = (fp32 / "bert_textcat" / "model" / "encoder" / ONNX_FILE).read_bytes()
    check_onnx_model(data, "model.onnx")
    model = onnx.load_model_from_string(data)
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../secret")
    with pytest.raises(BertclsError, match="other files"):
        check_onnx_model(model.SerializeToString(), "model.onnx")
    model = onnx.load_model_from_string(data)
    model.graph.node[0].domain = "evil.ops"
    with pytest.raises(BertclsError, match="evil.ops"):
        check_onnx_model(model.SerializeToString(), "model.onnx")


def test_without_onnxruntime_the_message_says_what_to_install(source, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(BertclsError, match=r"spacy-bertcls\[fast\]"):
        optimize_pipeline(source, tmp_path / "out")


def test_cli_optimize_then_label(source, tmp_path):
    runner = CliRunner()
    out = tmp_path / "fast"
    result = runner.invoke(app, ["optimize", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "quantize: none" in result.output  # the default: the same predictions
    table = tmp_path / "texts.csv"
    pd.DataFrame({"text": [*TEXTS, LONG, ""]}).to_csv(table, index=False)
    labeled = tmp_path / "labeled.csv"
    result = runner.invoke(
        app, ["label", str(out), str(table), "--text-column", "text", "--out", str(labeled)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(labeled)
    assert frame["predicted_label"].iloc[:-1].isin(["ham", "spam"]).all()
    result = runner.invoke(app, ["optimize", str(source), "--out", str(out), "--quantize", "x"])
    assert result.exit_code == 1 and "--quantize 'x'" in result.output
