"""`bertcls audit` (spacy_bertcls.audit) on a tiny random BERT and a small separable table."""

from __future__ import annotations

import numpy
import pandas as pd
import pytest
from conftest import HAM, ROOT, SPAM
from typer.testing import CliRunner

from spacy_bertcls import BertclsError, feature_store
from spacy_bertcls.audit import (
    AUDIT_COLUMNS,
    FROZEN_MODEL_SETTINGS,
    audit_file,
    find_suspects,
    out_of_fold_probabilities,
)
from spacy_bertcls.cli import app
from spacy_bertcls.tables import read_table
from spacy_bertcls.testing import make_tiny_bert

# Rows 3, 10 (ham) and 45, 52 (spam) get the other label.
FLIPPED = [3, 10, 45, 52]


def pair_texts(texts: list[str], n: int) -> list[str]:
    """``n`` different texts, each two of ``texts``."""
    pairs = [(a, b) for a in texts for b in texts if a != b]
    return [f"{a} {b}" for a, b in pairs[:: max(1, len(pairs) // n)][:n]]


@pytest.fixture(scope="module")
def table_texts() -> tuple[list[str], list[str]]:
    texts = pair_texts(HAM, 40) + pair_texts(SPAM, 30)
    gold = ["ham"] * 40 + ["spam"] * 30
    return texts, gold


@pytest.fixture(scope="module")
def four_layer_bert(tmp_path_factory, table_texts) -> str:
    """The audit's default settings concatenate four layers: a tiny BERT that has them."""
    return str(make_tiny_bert(tmp_path_factory.mktemp("bert4"), table_texts[0], layers=4))


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    root = tmp_path / "features"
    monkeypatch.setenv(feature_store.CACHE_ENV, str(root))
    return root


def noisy_table(path, table_texts) -> pd.DataFrame:
    texts, gold = table_texts
    labels = list(gold)
    for i in FLIPPED:
        labels[i] = "spam" if labels[i] == "ham" else "ham"
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": labels}
    )
    # Rows without a text or a label are kept, not audited.
    extra = pd.DataFrame({"id": ["e1", "e2"], "text": ["", "free prize now"], "label": ["ham", ""]})
    frame = pd.concat([frame, extra], ignore_index=True)
    frame.to_csv(path, index=False)
    return frame


def test_audit_flags_the_flipped_rows_and_keeps_every_row(tmp_path, table_texts, four_layer_bert):
    data = noisy_table(tmp_path / "data.csv", table_texts)
    before = (tmp_path / "data.csv").read_bytes()
    out = tmp_path / "audit" / "data_audit.csv"
    summary = audit_file(
        tmp_path / "data.csv",
        text_column="text",
        label_column="label",
        out=out,
        encoder=four_layer_bert,
        folds=4,
    )
    assert (tmp_path / "data.csv").read_bytes() == before
    result = read_table(out)
    assert list(result.columns) == ["id", "text", "label", *AUDIT_COLUMNS]
    assert result["id"].tolist() == data["id"].tolist()  # every row, in file order
    audited = result["audited"].astype(str) == "True"
    assert audited.tolist() == [True] * 70 + [False, False]
    suspect = result["suspect"].astype(str) == "True"
    assert suspect[FLIPPED].all(), result.loc[FLIPPED]
    # Few clean rows rank above a flipped one.
    assert pd.to_numeric(result.loc[FLIPPED, "suspect_rank"]).max() <= 2 * len(FLIPPED)
    ranks = pd.to_numeric(result["suspect_rank"])
    assert sorted(ranks[suspect].astype(int)) == list(range(1, suspect.sum() + 1))
    assert ranks[~suspect].isna().all()
    truth = ["ham" if i < 40 else "spam" for i in FLIPPED]
    assert result.loc[FLIPPED, "suggested_label"].tolist() == truth
    quality = pd.to_numeric(result["label_quality"])
    assert quality[~audited].isna().all() and quality[audited].between(0, 1).all()
    assert quality[FLIPPED].max() < quality[audited & ~suspect].median()
    assert summary.rows == 72 and summary.rows_audited == 70
    assert summary.n_suspects == suspect.sum()
    assert "Audited 70 of 72 rows" in summary.format()

    # A rerun takes every feature from the disk store.
    again = audit_file(
        tmp_path / "data.csv",
        text_column="text",
        label_column="label",
        out=tmp_path / "again.xlsx",
        encoder=four_layer_bert,
        folds=4,
    )
    assert again.features_from_store == 70
    assert read_table(tmp_path / "again.xlsx").shape == result.shape


def test_audit_never_writes_over_the_input_and_writes_atomically(
    tmp_path, table_texts, four_layer_bert, monkeypatch
):
    noisy_table(tmp_path / "data.csv", table_texts)
    kwargs = {"text_column": "text", "label_column": "label", "encoder": four_layer_bert}
    with pytest.raises(BertclsError, match="is the input file"):
        audit_file(tmp_path / "data.csv", out=tmp_path / "data.csv", **kwargs)
    old = tmp_path / "old.csv"
    old.write_text("old contents\n")
    with pytest.raises(BertclsError, match="--overwrite"):
        audit_file(tmp_path / "data.csv", out=old, **kwargs)
    with pytest.raises(BertclsError, match="suffix"):
        audit_file(tmp_path / "data.csv", out=tmp_path / "out.docx", **kwargs)

    from spacy_bertcls.tables import TableWriter

    def fail(self, df):
        raise OSError("disk on fire")

    monkeypatch.setattr(TableWriter, "write", fail)
    with pytest.raises(OSError, match="disk on fire"):
        audit_file(tmp_path / "data.csv", out=old, overwrite=True, **kwargs)
    assert old.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "features", "old.csv"]


def test_audit_refuses_what_it_cannot_do(tmp_path, table_texts, four_layer_bert):
    data = noisy_table(tmp_path / "data.csv", table_texts)
    kwargs = {"text_column": "text", "label_column": "label", "encoder": four_layer_bert}
    with pytest.raises(BertclsError, match="'labl'"):
        audit_file(
            tmp_path / "data.csv", out=tmp_path / "o.csv", **{**kwargs, "label_column": "labl"}
        )
    data.assign(suspect=1).to_csv(tmp_path / "audited.csv", index=False)
    with pytest.raises(BertclsError, match="audited file"):
        audit_file(tmp_path / "audited.csv", out=tmp_path / "o.csv", **kwargs)
    data.assign(label="ham").to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(BertclsError, match="at least 2"):
        audit_file(tmp_path / "one.csv", out=tmp_path / "o.csv", **kwargs)
    with pytest.raises(BertclsError, match="folds"):
        audit_file(tmp_path / "data.csv", out=tmp_path / "o.csv", folds=1, **kwargs)


def test_audit_with_a_pipeline_uses_its_encoder(tmp_path, tiny_encoder, table_texts):
    from test_textcat import make_examples, make_nlp, train

    nlp = make_nlp(tiny_encoder, freeze_encoder=True)
    train(nlp, make_examples(nlp), epochs=1)
    nlp.to_disk(tmp_path / "pipeline")
    noisy_table(tmp_path / "data.csv", table_texts)
    result = CliRunner().invoke(
        app,
        [
            "audit",
            str(tmp_path / "data.csv"),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--pipeline",
            str(tmp_path / "pipeline"),
            "--folds",
            "4",
            "--head",
            "mlp",
            "--out",
            str(tmp_path / "out.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Audited 70 of 72 rows" in result.output
    assert read_table(tmp_path / "out.csv").shape == (72, 3 + len(AUDIT_COLUMNS))

    multi = make_nlp(tiny_encoder, freeze_encoder=True, exclusive_classes=False)
    train(multi, make_examples(multi), epochs=1)
    multi.to_disk(tmp_path / "multi")
    with pytest.raises(BertclsError, match="multi-label data is not supported yet"):
        audit_file(
            tmp_path / "data.csv",
            text_column="text",
            label_column="label",
            out=tmp_path / "o.csv",
            pipeline=tmp_path / "multi",
        )


@pytest.mark.parametrize("head", ["logistic", "linear", "mlp"])
def test_out_of_fold_heads_and_a_label_rarer_than_the_folds(head):
    rng = numpy.random.default_rng(0)
    labels = numpy.array([0] * 30 + [1] * 30)
    features = rng.normal(size=(60, 8)).astype("f") + labels[:, None] * 3.0
    settings = {"hidden_width": 8, "dropout": 0.0}
    probs = out_of_fold_probabilities(
        features, labels, 2, folds=5, head=head, head_settings=settings
    )
    assert probs.shape == (60, 2)
    numpy.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert (probs.argmax(axis=1) == labels).mean() > 0.9

    # Label 2 has one row: the head of its fold never saw the label.
    labels = numpy.append(labels, 2)
    features = numpy.vstack([features, features[:1] + 6.0])
    probs = out_of_fold_probabilities(
        features, labels, 3, folds=5, head=head, head_settings=settings
    )
    assert probs[60, 2] == 0.0
    found = find_suspects(labels, probs)
    # cleanlab never flags the last row of a label; its label quality is the lowest there is.
    assert found.quality[60] == 0.0 and not found.suspect[60]
    assert any("too few examples" in note for note in found.notes)


def test_default_settings_are_the_frozen_configs():
    from spacy.util import load_config

    model = load_config(ROOT / "configs" / "frozen.cfg")["components"]["bert_textcat"]["model"]
    assert {k: model[k] for k in FROZEN_MODEL_SETTINGS} == FROZEN_MODEL_SETTINGS
