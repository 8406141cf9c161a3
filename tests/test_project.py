"""The spaCy project: the demo-corpus preparation, and `spacy project run all` end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_demo  # noqa: E402


def project_copy(tmp_path: Path) -> Path:
    """The project's own files, as a fresh clone would have them (no outputs)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts", "demo"):
        shutil.copytree(ROOT / folder, project / folder)
    return project


def test_prepare_unpacks_the_shipped_corpus_offline(tmp_path, monkeypatch):
    """A fresh clone has no assets/ and no network: the shipped gzip copy is unpacked and
    checked, and a second run keeps it."""
    monkeypatch.chdir(tmp_path)
    assert prepare_demo.SHIPPED.is_file()
    assert prepare_demo.main(str(prepare_demo.DEMO)) == 0
    digest = hashlib.sha256(prepare_demo.DEMO.read_bytes()).hexdigest()
    assert digest == prepare_demo.DEMO_SHA256
    assert prepare_demo.main(str(prepare_demo.DEMO)) == 0
    assert not list(Path("assets").glob("*.tmp"))


def test_prepare_checks_a_copy_put_in_place_by_hand(sms_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prepare_demo, "SHIPPED", tmp_path / "not_shipped.tsv.gz")
    Path("assets").mkdir()
    assert prepare_demo.main(str(prepare_demo.DEMO)) == 1  # missing: says what to do
    shutil.copy(sms_file, prepare_demo.DEMO)
    assert prepare_demo.main(str(prepare_demo.DEMO)) == 0
    prepare_demo.DEMO.write_text("Label\tSMS\nham\thello\n")
    assert prepare_demo.main(str(prepare_demo.DEMO)) == 1  # wrong file: refused


def test_prepare_unpacks_the_canonical_zip(sms_file, tmp_path, monkeypatch):
    # The UCI archive holds the same file without its header line.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prepare_demo, "SHIPPED", tmp_path / "not_shipped.tsv.gz")
    Path("assets").mkdir()
    body = sms_file.read_bytes().split(b"\n", 1)[1]
    with zipfile.ZipFile("assets/smsspamcollection.zip", "w") as archive:
        archive.writestr("SMSSpamCollection", body)
        archive.writestr("readme", "SMS Spam Collection v.1")
    assert prepare_demo.main(str(prepare_demo.DEMO), "assets/smsspamcollection.zip") == 0
    digest = hashlib.sha256(prepare_demo.DEMO.read_bytes()).hexdigest()
    assert digest == prepare_demo.DEMO_SHA256


def test_prepare_is_not_needed_for_other_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("mine.csv").write_text("text,label\na,b\n")
    assert prepare_demo.main("mine.csv") == 0
    assert prepare_demo.main("missing.csv") == 1


@pytest.mark.integration
def test_project_runs_all_and_packages(sms_file, tmp_path):
    """The whole workflow on 800 SMS with the real encoder, bounded to a few training steps
    by a config made from configs/frozen.cfg."""
    project = project_copy(tmp_path)
    df = pd.read_csv(sms_file, sep="\t", quoting=3)
    df.groupby("Label").sample(frac=800 / len(df), random_state=0).to_csv(
        project / "sms_sample.csv", index=False
    )
    config = (project / "configs" / "frozen.cfg").read_text()
    config = config.replace("max_epochs = 15", "max_epochs = 3")
    assert "max_epochs = 3" in config
    (project / "configs" / "ci.cfg").write_text(config)
    run = [
        sys.executable, "-m", "spacy", "project", "run", "all", str(project),
        "--vars.data", "sms_sample.csv", "--vars.config", "ci",
        "--vars.text_column", "SMS", "--vars.label_column", "Label",
    ]  # fmt: skip
    out = subprocess.run(run, capture_output=True, text=True, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Evaluation report: reports/test_report.html" in out.stdout
    # 3 epochs of 599 texts are 57 steps, fewer than frozen.cfg's eval_frequency of 150:
    # train evaluates more often, or model-best would be the model after one step.
    assert "evaluating every 6 steps instead" in out.stdout
    metrics = json.loads((project / "reports" / "test_metrics.json").read_text())
    assert metrics["n_evaluated"] > 100
    print(f"project run all, 3 epochs on 599 SMS: test macro-F1 {metrics['macro']['f1']:.3f}")
    assert metrics["macro"]["f1"] > 0.9  # measured 0.982 and 1.000 (120 test texts, 16 spam)
    assert (project / "reports" / "confusion_matrix.png").exists()
    assert (project / "training" / "model-best" / "bert_textcat" / "model").is_dir()

    package = [
        sys.executable, "-m", "spacy", "project", "run", "package", str(project),
        "--vars.package_name", "ci_demo",
    ]  # fmt: skip
    out = subprocess.run(package, capture_output=True, text=True, cwd=project)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "spacy.load('en_ci_demo') works" in out.stdout


def test_every_package_is_listed_for_the_wheel():
    """pyproject lists packages by hand; a package left out works editable but not installed."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for top in ("spacy_bertcls", "spacy_bertcls_gui")
        for init in (root / top).rglob("__init__.py")
    }
    assert found == listed
