"""`bertcls label --device` and `spacy_bertcls.devices`, on a machine that may have no GPU:
the checks and the calls into spaCy are verified with monkeypatched torch/spaCy functions."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import HAM, SPAM
from test_cli import train_tiny_pipeline
from typer.testing import CliRunner

from spacy_bertcls import devices
from spacy_bertcls.architectures import get_shim, set_mixed_precision
from spacy_bertcls.cli import app
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.pipelines import load_pipeline

runner = CliRunner()


@pytest.fixture(scope="module")
def pipeline(tiny_encoder, tmp_path_factory):
    return train_tiny_pipeline(tiny_encoder, tmp_path_factory.mktemp("pipeline") / "model-best")


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": HAM + SPAM}).to_csv(path, index=False)
    return path


@pytest.fixture
def calls(monkeypatch):
    """spaCy's device switches, recorded instead of run."""
    made: list[tuple] = []
    monkeypatch.setattr(devices.spacy, "require_gpu", lambda gpu_id=0: made.append(("gpu", gpu_id)))
    monkeypatch.setattr(devices.spacy, "require_cpu", lambda: made.append(("cpu",)))
    return made


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two visible CUDA GPUs and CuPy installed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: object())


def test_cpu_is_spacys_require_cpu(calls):
    assert devices.use_device(-1) == "CPU"
    assert calls == [("cpu",)]


def test_gpu_requested_but_absent(calls, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BertclsError, match=r"no CUDA GPU visible; use --device -1"):
        devices.use_device(0)
    assert calls == []


def test_gpu_is_spacys_require_gpu_with_the_id(calls, fake_gpus):
    assert devices.use_device(1) == "GPU 1 (Fake GPU 1)"
    assert calls == [("gpu", 1)]


def test_gpu_number_beyond_the_gpus_there_are(calls, fake_gpus):
    with pytest.raises(BertclsError, match="has 2 GPU"):
        devices.use_device(2)
    with pytest.raises(BertclsError, match="-1 for the CPU"):
        devices.use_device(-2)
    assert calls == []


def test_gpu_without_cupy_says_which_package(calls, fake_gpus, monkeypatch):
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BertclsError, match="pip install cupy-cuda"):
        devices.use_device(0)
    assert calls == []


def test_label_device_absent_gpu_fails_before_loading(pipeline, table, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "labeled.csv"
    result = runner.invoke(
        app,
        ["label", str(pipeline), str(table), "--text-column", "text", "--out", str(out)]
        + ["--device", "0"],
    )
    assert result.exit_code == 1
    assert "no CUDA GPU visible; use --device -1" in " ".join(result.output.split())
    assert not out.exists()


def test_label_chooses_the_device_before_loading(pipeline, table, tmp_path, monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(devices, "use_device", lambda d: order.append(f"device {d}") or "GPU 0")
    monkeypatch.setattr(devices, "check_pipeline_device", lambda nlp, d: None)
    monkeypatch.setattr(devices, "use_mixed_precision", lambda nlp: order.append("mixed"))
    import spacy_bertcls.pipelines as pipelines

    real_load = pipelines.load_pipeline
    monkeypatch.setattr(
        pipelines, "load_pipeline", lambda path: order.append("load") or real_load(path)
    )
    out = tmp_path / "labeled.csv"
    args = ["label", str(pipeline), str(table), "--text-column", "text", "--out", str(out)]
    result = runner.invoke(app, [*args, "--device", "0", "--mixed-precision"])
    assert result.exit_code == 0, result.output
    assert order == ["device 0", "load", "mixed"]
    assert "Labeling on GPU 0 with mixed precision" in result.output
    order.clear()
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert order == ["device -1", "load"] and "Labeling on" not in result.output


def test_mixed_precision_needs_a_gpu(pipeline, table, tmp_path):
    out = tmp_path / "labeled.csv"
    args = ["label", str(pipeline), str(table), "--text-column", "text", "--out", str(out)]
    result = runner.invoke(app, [*args, "--mixed-precision"])
    assert result.exit_code == 1 and "--device 0" in result.output
    with pytest.raises(BertclsError, match="does nothing on the CPU"):
        devices.use_mixed_precision(load_pipeline(pipeline))


def test_set_mixed_precision_takes_effect_only_on_cuda(pipeline):
    model = load_pipeline(pipeline).get_pipe("bert_textcat").model
    assert set_mixed_precision(model, True) is False  # on the CPU: recorded, not used
    shim = get_shim(model)
    assert shim.cfg["mixed_precision"] is True and shim.mixed_precision is False


def test_optimized_pipeline_is_refused_on_a_gpu(pipeline, tmp_path):
    pytest.importorskip("onnxruntime")
    from spacy_bertcls.optimize import optimize_pipeline

    optimize_pipeline(pipeline, tmp_path / "fast", quantize="none")
    nlp = load_pipeline(tmp_path / "fast")
    devices.check_pipeline_device(nlp, -1)
    with pytest.raises(BertclsError, match="--device 0: this pipeline was made by `bertcls"):
        devices.check_pipeline_device(nlp, 0)
