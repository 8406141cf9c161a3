"""Bad inputs and unsafe outputs on the command line: each case, and what the user sees.

Every case ends with a message (exit code 1, or 2 for an option out of its range), never a
traceback; no command writes over its input or into the pipeline it reads; an output appears
whole or not at all.
"""

from __future__ import annotations

import errno
import os
import re

import pandas as pd
import pytest
from conftest import HAM, ROOT, SPAM
from test_cli import invoke, train_tiny_pipeline

from spacy_bertcls import outputs
from spacy_bertcls.tables.delimited import CsvSink
from spacy_bertcls.tables.excel import ExcelSink

CONFIG = ROOT / "configs" / "frozen.cfg"


def said(result) -> str:
    """The output as one line: rich's error box and line breaks removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


@pytest.fixture(scope="module")
def pipeline(tiny_encoder, tmp_path_factory):
    return train_tiny_pipeline(tiny_encoder, tmp_path_factory.mktemp("pipeline") / "model-best")


@pytest.fixture
def fake_pipeline(tmp_path):
    """A folder standing for a pipeline, where a command stops before loading it."""
    folder = tmp_path / "model-best"
    folder.mkdir()
    return folder


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "in.csv"
    labels = ["ham"] * len(HAM) + ["spam"] * len(SPAM)
    pd.DataFrame({"text": HAM + SPAM, "label": labels}).to_csv(path, index=False)
    return path


def evaluate(pipeline, table, *options):
    return invoke("evaluate", pipeline, table, *options)


def label(pipeline, table, *options):
    return invoke("label", pipeline, table, "--text-column", "text", *options)


def convert(table, *options):
    return invoke("convert", table, "--text-column", "text", "--label-column", "label", *options)


def train(*options):
    return invoke("train", CONFIG, *options)


def files_in(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- 1. an output is the input, a link to it, or inside the pipeline being read ----------------


def test_evaluate_report_on_the_input(fake_pipeline, table):
    """evaluate --report in.csv: refused, the input stays as it was."""
    before = table.read_bytes()
    result = evaluate(fake_pipeline, table, "--report", table)
    assert result.exit_code == 1
    assert "--report" in said(result) and "is the input file" in said(result)
    assert table.read_bytes() == before


def test_evaluate_json_on_the_input(fake_pipeline, table):
    """evaluate --json in.csv: refused, the input stays as it was."""
    before = table.read_bytes()
    result = evaluate(fake_pipeline, table, "--json", table)
    assert result.exit_code == 1 and "--json" in said(result) and "is the input" in said(result)
    assert table.read_bytes() == before


def test_evaluate_report_on_a_symlink_to_the_input(fake_pipeline, table, tmp_path):
    """evaluate --report LINK, a symbolic link to the input: refused."""
    link = tmp_path / "link.html"
    link.symlink_to(table)
    result = evaluate(fake_pipeline, table, "--report", link)
    assert result.exit_code == 1 and "is the input file" in said(result)


def test_evaluate_json_on_a_hard_link_to_the_input(fake_pipeline, table, tmp_path):
    """evaluate --json LINK, a hard link to the input: refused."""
    link = tmp_path / "link.json"
    os.link(table, link)
    result = evaluate(fake_pipeline, table, "--json", link)
    assert result.exit_code == 1 and "is the input file" in said(result)


def test_evaluate_plots_holding_the_input(fake_pipeline, tmp_path):
    """evaluate on a .spacy file named like a plot, --plots its folder: refused."""
    data = tmp_path / "pr_curves.png"
    data.write_bytes(b"x")
    result = evaluate(fake_pipeline, data, "--plots", tmp_path, "--report", tmp_path / "r.html")
    assert result.exit_code == 1 and "--plots" in said(result) and "is the input" in said(result)


def test_label_out_on_a_hard_link_to_the_input(fake_pipeline, table, tmp_path):
    """label --out LINK, a hard link to the input, even with --overwrite: refused."""
    link = tmp_path / "link.csv"
    os.link(table, link)
    result = label(fake_pipeline, table, "--out", link, "--overwrite")
    assert result.exit_code == 1 and "is the input file" in said(result)


def test_convert_out_on_the_input(table):
    """convert --output in.csv: refused as the input (not "cannot create the folder")."""
    result = convert(table, "--output", table)
    assert result.exit_code == 1 and "--out" in said(result) and "is the input" in said(result)


def test_train_output_holding_the_training_data(tmp_path):
    """train --output D with --paths.train D/model-best/train.spacy: refused before training."""
    corpus = tmp_path / "training" / "model-best"
    corpus.mkdir(parents=True)
    for name in ("train", "dev"):
        (corpus / f"{name}.spacy").write_bytes(b"")
    result = train(
        "--output",
        tmp_path / "training",
        "--paths.train",
        corpus / "train.spacy",
        "--paths.dev",
        corpus / "dev.spacy",
    )
    assert result.exit_code == 1
    assert "would overwrite --paths.train" in said(result)


def test_label_out_inside_the_pipeline(fake_pipeline, table):
    """label --out model-best/x.csv: refused, nothing is written into the pipeline."""
    result = label(fake_pipeline, table, "--out", fake_pipeline / "x.csv")
    assert result.exit_code == 1 and "inside" in said(result)
    assert files_in(fake_pipeline) == []


def test_evaluate_outputs_inside_the_pipeline(fake_pipeline, table):
    """evaluate --report/--plots inside the pipeline folder: refused."""
    result = evaluate(fake_pipeline, table, "--report", fake_pipeline / "r.html")
    assert result.exit_code == 1 and "--report" in said(result) and "inside" in said(result)
    result = evaluate(fake_pipeline, table, "--plots", fake_pipeline / "plots")
    assert result.exit_code == 1 and "--plots" in said(result) and "inside" in said(result)
    assert files_in(fake_pipeline) == []


def test_evaluate_report_and_json_with_one_name(fake_pipeline, table, tmp_path):
    """evaluate --report x --json x: refused, one would overwrite the other."""
    out = tmp_path / "x.out"
    result = evaluate(fake_pipeline, table, "--report", out, "--json", out)
    assert result.exit_code == 1 and "different file names" in said(result)


# --- 2. a full disk while writing ----------------------------------------------------------


def assert_disk_full_message(result, folder) -> None:
    assert result.exit_code == 1
    assert "is full" in said(result) and str(folder) in said(result)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_label_disk_full(pipeline, table, tmp_path, monkeypatch, suffix):
    """label --out x.csv/.xlsx on a full disk: "is full" naming the folder, no file left."""
    folder = tmp_path / "out"
    folder.mkdir()

    def csv_half_then_full(self, *args, **kwargs):
        self.file.write("half a row")
        disk_full()

    real_close = ExcelSink.close

    def xlsx_half_then_full(self):
        real_close(self)  # openpyxl finishes its sheet; then the file is cut short
        os.truncate(self.tmp, self.tmp.stat().st_size // 2)
        disk_full()

    if suffix == ".csv":
        monkeypatch.setattr(CsvSink, "write", csv_half_then_full)
    else:
        monkeypatch.setattr(ExcelSink, "close", xlsx_half_then_full)
    result = label(pipeline, table, "--out", folder / f"labeled{suffix}")
    assert_disk_full_message(result, folder)
    assert files_in(folder) == []


@pytest.mark.parametrize("failing", ["report.html", "metrics.json", "reliability.png"])
def test_evaluate_disk_full(pipeline, table, tmp_path, monkeypatch, failing):
    """evaluate writing HTML/JSON/PNG on a full disk: "is full", no partial or temp file."""
    folder = tmp_path / "out"
    real_open = open

    class HalfThenFull:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            disk_full()

    def full_open(path, *args, **kwargs):
        file = real_open(path, *args, **kwargs)
        return HalfThenFull(file) if f".{failing}." in str(path) else file

    monkeypatch.setattr(outputs, "open", full_open, raising=False)
    result = evaluate(
        pipeline,
        table,
        "--report",
        folder / "report.html",
        "--json",
        folder / "metrics.json",
        "--plots",
        folder,
    )
    assert_disk_full_message(result, folder)
    assert failing not in files_in(folder)
    assert not [name for name in files_in(folder) if name.endswith(".tmp")]


def test_convert_disk_full(table, tmp_path, monkeypatch):
    """convert on a full disk: "is full" naming the folder, no .spacy or temp file left."""
    monkeypatch.setattr(outputs.os, "fsync", disk_full)
    result = convert(table, "--output", tmp_path / "corpus", "--dev-size", "0.2")
    assert_disk_full_message(result, tmp_path / "corpus")
    assert files_in(tmp_path / "corpus") == []


# --- 3. --plots that is a file, or in a read-only folder ------------------------------------


def test_evaluate_plots_that_is_a_file(fake_pipeline, table, tmp_path):
    """evaluate --plots FILE: "is a file; it needs a folder", the file stays."""
    plots = tmp_path / "plots"
    plots.write_text("keep me")
    result = evaluate(fake_pipeline, table, "--plots", plots)
    assert result.exit_code == 1 and "--plots" in said(result)
    assert "is a file; it needs a folder" in said(result)
    assert plots.read_text() == "keep me"


def test_evaluate_plots_in_a_read_only_folder(fake_pipeline, table, tmp_path, monkeypatch):
    """evaluate --plots in a read-only folder: "read-only", before the evaluation runs."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        outputs.os,
        "access",
        lambda path, *args, **kw: path != locked and real_access(path, *args, **kw),
    )
    result = evaluate(fake_pipeline, table, "--plots", locked / "plots")
    assert result.exit_code == 1 and "read-only" in said(result) and str(locked) in said(result)


# --- 4. an output file that is an existing folder -------------------------------------------


def test_label_out_that_is_a_folder(fake_pipeline, table, tmp_path):
    """label --out FOLDER (with or without --overwrite): "is a folder", the folder stays."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "old.csv").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        result = label(fake_pipeline, table, "--out", folder, *extra)
        assert result.exit_code == 1
        assert "is a folder; it needs a file name" in said(result)
        assert "--overwrite" not in said(result)
    assert (folder / "old.csv").read_text() == "keep me"


def test_evaluate_report_that_is_a_folder(fake_pipeline, table, tmp_path):
    """evaluate --report FOLDER: "is a folder; it needs a file name, e.g. FOLDER/report.html"."""
    result = evaluate(fake_pipeline, table, "--report", tmp_path)
    assert result.exit_code == 1
    assert f"is a folder; it needs a file name, e.g. {tmp_path / 'report.html'}" in said(result)


def test_convert_out_that_is_a_file(table, tmp_path):
    """convert --output FILE (a folder is needed): "is a file; it needs a folder"."""
    other = tmp_path / "corpus"
    other.write_text("keep me")
    result = convert(table, "--output", other)
    assert result.exit_code == 1 and "is a file; it needs a folder" in said(result)
    assert other.read_text() == "keep me"


def test_train_output_that_is_a_file(tmp_path):
    """train --output FILE: "is a file; it needs a folder", before training."""
    (tmp_path / "train.spacy").write_bytes(b"")
    output = tmp_path / "training"
    output.write_text("keep me")
    data = tmp_path / "train.spacy"
    result = train("--output", output, "--paths.train", data, "--paths.dev", data)
    assert result.exit_code == 1 and "is a file; it needs a folder" in said(result)
    assert output.read_text() == "keep me"


# --- 5. numeric options out of their range ---------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [("--batch-size", "0", "1"), ("--batch-size", "-1", "1"), ("--chunk-size", "0", "1")],
)
def test_label_size_options_below_one(fake_pipeline, table, tmp_path, option, value, allowed):
    """label --batch-size 0 / -1, --chunk-size 0: exit 2 naming the option and its minimum."""
    result = label(fake_pipeline, table, "--out", tmp_path / "o.csv", option, value)
    assert result.exit_code == 2
    assert option in said(result) and f"greater than or equal to {allowed}" in said(result)
    assert not (tmp_path / "o.csv").exists()


def test_evaluate_batch_size_zero(fake_pipeline, table):
    """evaluate --batch-size 0: exit 2, "greater than or equal to 1"."""
    result = evaluate(fake_pipeline, table, "--batch-size", "0")
    assert result.exit_code == 2 and "greater than or equal to 1" in said(result)


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "x"])
def test_convert_split_size_out_of_range(table, tmp_path, value):
    """convert --dev-size / --test-size 1, -0.1, nan or x: exit 2, "0<=x<1"."""
    for option in ("--dev-size", "--test-size"):
        result = convert(table, "--output", tmp_path / "corpus", option, value)
        assert result.exit_code == 2 and option in said(result)
        assert "0<=x<1" in said(result) or "not a number" in said(result)
    assert not (tmp_path / "corpus").exists()


def test_convert_split_sizes_summing_to_one(table, tmp_path):
    """convert --dev-size 0.5 --test-size 0.5: "keep their sum below 1"."""
    result = convert(table, "--output", tmp_path / "c", "--dev-size", "0.5", "--test-size", "0.5")
    assert result.exit_code == 1 and "keep their sum below 1" in said(result)


def test_convert_negative_seed(table, tmp_path):
    """convert --seed -1: exit 2, "greater than or equal to 0"."""
    result = convert(table, "--output", tmp_path / "corpus", "--seed", "-1")
    assert result.exit_code == 2 and "greater than or equal to 0" in said(result)


def test_train_gpu_id_below_minus_one():
    """train --gpu-id -2: exit 2, "greater than or equal to -1"."""
    result = train("--gpu-id", "-2")
    assert result.exit_code == 2 and "greater than or equal to -1" in said(result)


# --- 6. train: missing data, bad class weights, no GPU ---------------------------------------


def test_train_missing_train_file(tmp_path):
    """train --paths.train MISSING: names the path and says to make it with bertcls convert."""
    missing = tmp_path / "corpus" / "train.spacy"
    result = train("--output", tmp_path / "t", "--paths.train", missing, "--paths.dev", missing)
    assert result.exit_code == 1
    assert f"{missing} (--paths.train) does not exist" in said(result)
    assert "bertcls convert" in said(result)


def test_train_without_train_data():
    """train with no --paths.train (the config's is null): says to pass it."""
    result = train("--output", "unused")
    assert result.exit_code == 1 and "pass --paths.train" in said(result)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("spam=nan", "the weight of 'spam' is nan"),
        ("spam=-1", "the weight of 'spam' is -1.0"),
        ("spam=0", "the weight of 'spam' is 0.0"),
        ("spam=inf", "the weight of 'spam' is inf"),
        ('{"spam": "x"}', "the weight of 'spam' is 'x'"),
        ("spam=x", "'x' is not a number"),
        ("spam:3", "label=weight pairs"),
        ("spam=1,spam=2", "gives 'spam' twice"),
    ],
)
def test_train_bad_class_weights(weights, message):
    """train --class-weights spam=nan / -1 / 0 / inf / x / spam:3 / twice: a message, no dump."""
    result = train("--class-weights", weights)
    assert result.exit_code == 1 and message in said(result)
    assert "[components" not in result.output  # no config dump


def test_train_gpu_without_cuda(monkeypatch):
    """train --gpu-id 0 where torch finds no GPU: says so and what to install, before spaCy."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = train("--gpu-id", "0")
    assert result.exit_code == 1 and "cannot train on a GPU" in said(result)
    assert "CUDA build of torch" in said(result) and "--gpu-id -1" in said(result)


def test_train_gpu_without_cupy(monkeypatch):
    """train --gpu-id 0 with a GPU but no CuPy: says to pip install cupy-cudaNNx."""
    import importlib.util

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "cupy" else real_find_spec(name, *a),
    )
    result = train("--gpu-id", "0")
    assert result.exit_code == 1 and "pip install cupy-cuda12x" in said(result)


def test_train_gpu_id_beyond_the_gpus(monkeypatch):
    """train --gpu-id 3 on a machine with one GPU: "numbered from 0 to 0"."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = train("--gpu-id", "3")
    assert result.exit_code == 1 and "has 1 GPU(s), numbered from 0 to 0" in said(result)
