"""Bad pipelines someone could send you: each test is one case and what loading it does.

A pipeline is trained and saved once; every test damages or tampers with its own copy. Where a
case could run code, the planted code or pickle would write a marker file: the test checks that
it does not exist afterwards. Loading goes through ``spacy.load`` (what the library does) or
``bertcls info`` (the CLI's and the app's ``load_pipeline``), whose message has no traceback.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import spacy
import torch
from safetensors.torch import load_file
from test_textcat import make_examples, make_nlp, train
from typer.testing import CliRunner

from spacy_bertcls import BertclsError
from spacy_bertcls.cli import app

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_bertcls"


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory, tiny_encoder) -> Path:
    nlp = make_nlp(tiny_encoder)
    train(nlp, make_examples(nlp), epochs=1)
    path = tmp_path_factory.mktemp("saved") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture
def pipeline(saved_pipeline, tmp_path) -> Path:
    """A fresh copy of the saved pipeline, for one test to damage."""
    return Path(shutil.copytree(saved_pipeline, tmp_path / "pipeline"))


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file planted code would write if it ever ran."""
    return tmp_path / "code-ran.txt"


def model_dir(pipeline: Path) -> Path:
    return pipeline / "bert_textcat" / "model"


def encoder_dir(pipeline: Path) -> Path:
    return model_dir(pipeline) / "encoder"


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def plant_code(directory: Path, marker: Path) -> None:
    """A module that writes the marker when imported, with the classes an auto_map names."""
    (directory / "evil.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertTokenizerFast\n"
        "class EvilConfig(BertConfig):\n"
        "    model_type = 'evilbert'\n"
        "class EvilTokenizer(BertTokenizerFast):\n"
        "    pass\n"
    )


class Payload:
    """Pickled, it calls exec on unpickling: what a malicious pytorch_model.bin does."""

    def __init__(self, marker: Path):
        self.code = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')"

    def __reduce__(self):
        return (exec, (self.code,))


def bertcls(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def refused_by_cli(pipeline: Path, match: str) -> str:
    """`bertcls info` exits 1 with the message (and no traceback); returns the message."""
    result = bertcls("info", pipeline, input="y\n")  # "y" would answer a run-the-code prompt
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert match in " ".join(result.output.split())
    return result.output


# Code from the pipeline -------------------------------------------------------------------


def test_auto_map_in_encoder_config_is_refused_and_never_run(pipeline, marker):
    """config.json has an auto_map to a .py file in the encoder directory (the case that made
    transformers ask "Do you wish to run the custom code?"): refused before transformers reads
    it, also when the user would answer "y"; the code never runs."""
    plant_code(encoder_dir(pipeline), marker)
    edit_json(
        encoder_dir(pipeline) / "config.json",
        model_type="evilbert",
        auto_map={"AutoConfig": "evil.EvilConfig"},
    )
    with pytest.raises(BertclsError, match="asks to run its own code: config.json has an auto_map"):
        spacy.load(pipeline)
    refused_by_cli(pipeline, "spacy-bertcls never runs code that comes with a pipeline or model")
    assert not marker.exists()


def test_auto_map_in_tokenizer_config_is_refused_and_never_run(pipeline, marker):
    """tokenizer_config.json has an auto_map to a .py file: refused, the code never runs."""
    plant_code(encoder_dir(pipeline), marker)
    edit_json(
        encoder_dir(pipeline) / "tokenizer_config.json",
        auto_map={"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]},
    )
    with pytest.raises(BertclsError, match="tokenizer_config.json has an auto_map"):
        spacy.load(pipeline)
    refused_by_cli(pipeline, "Re-save the encoder without custom code")
    assert not marker.exists()


def test_python_file_in_encoder_directory_is_refused(pipeline, marker):
    """A .py file in the encoder directory, named by no auto_map: refused all the same."""
    plant_code(encoder_dir(pipeline), marker)
    with pytest.raises(BertclsError, match=r"contains Python files \(evil\.py\)"):
        spacy.load(pipeline)
    assert not marker.exists()


# Pickles ------------------------------------------------------------------------------------


def test_pickled_encoder_weights_are_never_read(pipeline, marker):
    """model.safetensors removed, a (malicious) pytorch_model.bin in its place: refused naming
    both files; the pickle is not read, so its payload never runs."""
    (encoder_dir(pipeline) / "model.safetensors").unlink()
    torch.save({"weights": Payload(marker)}, encoder_dir(pipeline) / "pytorch_model.bin")
    with pytest.raises(
        BertclsError, match="no model.safetensors, only pytorch_model.bin, a pickle"
    ):
        spacy.load(pipeline)
    refused_by_cli(pipeline, "bertcls convert-encoder")
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_refused(pipeline, marker):
    """A pickle saved as model.safetensors: reported as a damaged file, never unpickled."""
    torch.save({"weights": Payload(marker)}, encoder_dir(pipeline) / "model.safetensors")
    with pytest.raises(BertclsError, match=r"model\.safetensors is damaged"):
        spacy.load(pipeline)
    assert not marker.exists()


@pytest.fixture
def pickled_encoder(tiny_encoder, tmp_path) -> Path:
    """The tiny encoder with its weights as pytorch_model.bin only (a harmless pickle)."""
    path = Path(shutil.copytree(tiny_encoder, tmp_path / "pickled_encoder"))
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


def test_pickled_only_encoder_setting_is_refused_at_training(pickled_encoder):
    """The `encoder` setting names a directory with pytorch_model.bin only: training refuses
    it and names `bertcls convert-encoder`."""
    nlp = make_nlp(str(pickled_encoder))
    with pytest.raises(BertclsError, match="bertcls convert-encoder"):
        nlp.initialize(lambda: make_examples(nlp))


def test_convert_encoder_resaves_a_trusted_pickle_as_safetensors(
    pickled_encoder, tiny_encoder, tmp_path
):
    """`bertcls convert-encoder SRC DEST` (the explicit opt-in): DEST holds model.safetensors
    with the same weights and a tokenizer, no pickle, and trains as an encoder."""
    dest = tmp_path / "converted"
    result = bertcls("convert-encoder", pickled_encoder, dest)
    assert result.exit_code == 0, result.output
    assert (dest / "model.safetensors").exists() and (dest / "tokenizer.json").exists()
    assert not list(dest.glob("*.bin"))
    original, converted = (
        load_file(Path(tiny_encoder) / "model.safetensors"),
        load_file(dest / "model.safetensors"),
    )
    for name, tensor in original.items():
        assert torch.equal(converted[name], tensor), name
    nlp = make_nlp(str(dest))
    train(nlp, make_examples(nlp), epochs=1)


def test_convert_encoder_refuses_a_pickle_that_runs_code(pickled_encoder, marker, tmp_path):
    """convert-encoder on a malicious pytorch_model.bin: torch.load(weights_only=True) refuses
    it with a message; its payload never runs and nothing is written."""
    torch.save({"weights": Payload(marker)}, pickled_encoder / "pytorch_model.bin")
    result = bertcls("convert-encoder", pickled_encoder, tmp_path / "converted")
    assert result.exit_code == 1, result.output
    assert "as plain tensors" in result.output and "Traceback" not in result.output
    assert not marker.exists()
    assert not (tmp_path / "converted").exists()


# Damaged files -------------------------------------------------------------------------------


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_encoder_weights(pipeline):
    """model.safetensors cut short (an interrupted copy): "... is damaged", naming the file."""
    cut_in_half(encoder_dir(pipeline) / "model.safetensors")
    with pytest.raises(BertclsError, match=r"encoder/model\.safetensors is damaged"):
        spacy.load(pipeline)


def test_truncated_head_weights(pipeline):
    """head.safetensors cut short: "... is damaged", naming the file; the CLI shows no
    traceback."""
    cut_in_half(model_dir(pipeline) / "head.safetensors")
    with pytest.raises(BertclsError, match=r"head\.safetensors is damaged"):
        spacy.load(pipeline)
    refused_by_cli(pipeline, "head.safetensors is damaged")


def test_classifier_json_is_not_json(pipeline):
    """classifier.json is not valid JSON: "... is damaged: it is not valid JSON"."""
    (model_dir(pipeline) / "classifier.json").write_text('{"n_labels": 2,')
    with pytest.raises(BertclsError, match=r"classifier\.json is damaged: it is not valid JSON"):
        spacy.load(pipeline)


def test_cfg_is_not_json(pipeline):
    """bert_textcat/cfg is not valid JSON: "... is damaged: it is not valid JSON"."""
    (pipeline / "bert_textcat" / "cfg").write_text("labels: ham, spam")
    with pytest.raises(BertclsError, match=r"cfg is damaged: it is not valid JSON"):
        spacy.load(pipeline)


def test_tokenizer_json_is_not_json(pipeline):
    """The encoder's tokenizer.json is not valid JSON (transformers would try to rebuild the
    tokenizer and fail on a missing library): "... tokenizer.json is damaged"."""
    (encoder_dir(pipeline) / "tokenizer.json").write_text("{")
    with pytest.raises(BertclsError, match=r"tokenizer\.json is damaged"):
        spacy.load(pipeline)


# Files that disagree --------------------------------------------------------------------------


def test_n_labels_differs_from_head(pipeline):
    """classifier.json says n_labels = 3, head.safetensors has 2 outputs: an error naming both
    files, not torch's "size mismatch"."""
    edit_json(model_dir(pipeline) / "classifier.json", n_labels=3)
    with pytest.raises(BertclsError, match=r"head\.safetensors has 2 outputs .* n_labels = 3"):
        spacy.load(pipeline)


def test_cfg_labels_differ_from_head(pipeline):
    """cfg lists 3 labels, the head has 2 outputs (which gave an empty prob_eggs column):
    refused, naming cfg as the file to fix."""
    edit_json(pipeline / "bert_textcat" / "cfg", labels=["ham", "spam", "eggs"])
    with pytest.raises(BertclsError, match=r"cfg lists 3 labels .* has 2 outputs"):
        spacy.load(pipeline)
    refused_by_cli(pipeline, 'fix "labels" in')


def test_intact_copy_loads(pipeline):
    """The untouched copy loads: the checks above refuse only what is wrong."""
    nlp = spacy.load(pipeline)
    assert nlp.get_pipe("bert_textcat").labels == ("ham", "spam")


# The rule in the code -------------------------------------------------------------------------


def test_every_from_pretrained_call_passes_trust_remote_code_false():
    """Every from_pretrained call in spacy_bertcls/ says trust_remote_code=False (directly or
    in a ** dict that says so), so transformers never prompts and never runs a model's code."""
    calls = []
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
                calls.append((source.name, node.lineno, ast.unparse(node)))
    assert calls
    for name, line, code in calls:
        safe = "trust_remote_code=False" in code or "**safe" in code
        assert safe, f"{name}:{line}: {code}"
    encoder_source = (PACKAGE / "encoder.py").read_text(encoding="utf8")
    assert '"trust_remote_code": False' in encoder_source
