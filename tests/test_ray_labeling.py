"""`bertcls label --engine ray`: Ray Data on a local cluster gives the rows `label_file` gives.

One local Ray cluster (two labeling workers) serves the whole module; every run of the engine
starts its actors anew, each loading the tiny BERT pipeline, so the tests that label are few
and each checks several things.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import HAM, SPAM
from test_cli import invoke, train_tiny_pipeline

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import CONFIDENCE, PREDICTED_LABEL, label_file, prob_column
from spacy_bertcls.pipelines import load_pipeline
from spacy_bertcls.tables import read_table, write_table

ray = pytest.importorskip("ray")

from spacy_bertcls import ray_labeling  # noqa: E402
from spacy_bertcls.ray_labeling import (  # noqa: E402
    WorkerPlan,
    _header_lines,
    _shared_out,
    label_file_ray,
    ray_session,
)

ROWS = 120
BLANK = ["", "   ", None]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module, started and shut down as the CLI does it."""
    with ray_session(None, 2) as plan:
        yield plan
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def pipeline(tiny_encoder, tmp_path_factory):
    return train_tiny_pipeline(tiny_encoder, tmp_path_factory.mktemp("pipeline") / "model-best")


def messages(n: int = ROWS) -> pd.DataFrame:
    """Texts with blank ones among them, and cells that type inference would change."""
    texts = [(HAM + SPAM + BLANK)[i % 21] for i in range(n)]
    return pd.DataFrame(
        {
            "id": [f"{i:05d}" for i in range(n)],  # leading zeros stay
            "message": texts,
            "price": ["1.50", "NA", "=SUM(A1)"] * (n // 3),  # neither 1.5, nor missing
        }
    )


def reference(pipeline, path, out, chunk_size: int) -> pd.DataFrame:
    """What the default engine writes for the same input, read back (in chunks of the Ray
    run's blocks, so that the model sees the same batches)."""
    label_file(load_pipeline(pipeline), path, text_column="message", out=out, chunk_size=chunk_size)
    return read_table(out)


def assert_same_rows(labeled: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Row for row the default engine's output: the same columns and types, every input cell
    the same, the probabilities equal up to float32 rounding (the workers may run torch with
    another number of threads), and so the same labels but where two probabilities tie."""
    numbers = [CONFIDENCE, prob_column("ham"), prob_column("spam")]
    assert list(labeled.columns) == list(expected.columns)
    assert list(labeled.dtypes) == list(expected.dtypes)
    rest = [PREDICTED_LABEL, *numbers]
    pd.testing.assert_frame_equal(labeled.drop(columns=rest), expected.drop(columns=rest))
    np.testing.assert_allclose(
        labeled[numbers].astype(float), expected[numbers].astype(float), rtol=1e-5, atol=1e-6
    )
    tie = (expected[prob_column("ham")].astype(float) - 0.5).abs() < 1e-5
    differs = labeled[PREDICTED_LABEL].fillna("") != expected[PREDICTED_LABEL].fillna("")
    assert not (differs & ~tie).any()


def test_csv_to_one_file_equals_label_file(cluster, pipeline, tmp_path):
    source = tmp_path / "messages.csv"
    write_table(messages(), source)  # with a BOM, and "'=SUM(A1)" guarded as this project does
    out = tmp_path / "labeled.csv"
    summary = label_file_ray(
        pipeline, source, text_column="message", out=out, chunk_size=16, workers=2
    )
    expected = reference(pipeline, source, tmp_path / "expected.csv", 16)
    labeled = read_table(out)
    assert_same_rows(labeled, expected)
    assert labeled["id"].tolist() == messages()["id"].tolist()
    assert labeled["price"].tolist()[:3] == ["1.50", "NA", "=SUM(A1)"]
    blank = messages()["message"].isin(BLANK) | messages()["message"].isna()
    assert labeled.loc[blank, PREDICTED_LABEL].isna().all()
    assert labeled.loc[blank, CONFIDENCE].isna().all()
    assert labeled.loc[~blank, PREDICTED_LABEL].isin(["ham", "spam"]).all()
    assert summary.rows == ROWS and summary.rows_empty == int(blank.sum())
    assert summary.output == out and sum(summary.label_counts.values()) == (~blank).sum()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_parquet_to_parts_folder_equals_label_file(cluster, pipeline, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_labeling, "PART_ROWS", 50)  # several parts, to keep in order
    source = tmp_path / "messages.parquet"
    frame = messages()
    frame["count"] = pd.array([None if i % 4 == 0 else i for i in range(ROWS)], dtype="Int64")
    frame.to_parquet(source, index=False)
    out = tmp_path / "labeled"  # no suffix: a folder of Parquet parts
    summary = label_file_ray(
        pipeline, source, text_column="message", out=out, chunk_size=16, workers=2
    )
    expected = reference(pipeline, source, tmp_path / "expected.parquet", 16)
    assert [len(pd.read_parquet(part)) for part in sorted(out.iterdir())] == [50, 50, 20]
    labeled = read_parts(out)
    assert_same_rows(labeled, expected)
    assert str(labeled["count"].dtype) == "Int64"  # integers with empty cells stay integers
    assert pd.read_parquet(out)["id"].tolist() == frame["id"].tolist()  # parts sort in order
    assert summary.rows == ROWS and summary.output == out.absolute()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "expected.parquet",
        "labeled",
        "messages.parquet",
    ]


def read_parts(folder) -> pd.DataFrame:
    """A parts folder read back with the Parquet reader's types, in the parts' name order."""
    frames = [read_table(part) for part in sorted(folder.glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True)


def test_cli_engine_ray_jsonl(cluster, pipeline, tmp_path):
    source = tmp_path / "messages.jsonl"
    messages().to_json(source, orient="records", lines=True)
    out = tmp_path / "labeled.parquet"
    args = ["label", pipeline, source, "--text-column", "message", "--out", out]
    result = invoke(*args, "--engine", "ray", "--ray-workers", "1", "--chunk-size", "50")
    assert result.exit_code == 0, result.output
    assert f"Labeled {ROWS} rows" in result.output
    expected = reference(pipeline, source, tmp_path / "expected.parquet", 50)
    assert_same_rows(read_table(out), expected)
    probs = read_table(out)[[prob_column("ham"), prob_column("spam")]].dropna()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Run again: the output exists now.
    result = invoke(*args, "--engine", "ray")
    assert result.exit_code == 1 and "--overwrite" in result.output


def test_a_file_arrow_cannot_parse_is_refused(cluster, pipeline, tmp_path):
    source = tmp_path / "short.csv"
    source.write_text("id,message\n1,hello\n2\n3,call me\n")  # row 2 has one cell of two
    out = tmp_path / "labeled.csv"
    with pytest.raises(BertclsError, match="Arrow's reader refused it.*default engine"):
        label_file_ray(pipeline, source, text_column="message", out=out, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.csv"]


def test_header_lines_counts_blank_lines_and_quoted_line_ends(tmp_path):
    source = tmp_path / "t.csv"
    source.write_text('\n  \nid,"long\nname"\n1,a\n')
    assert _header_lines(source, "utf-8", ",", 0) == 4


@pytest.mark.parametrize("name", ["book.xlsx", "book.xls", "book.xlsm"])
def test_excel_is_refused(cluster, pipeline, tmp_path, name):
    source = tmp_path / name
    source.write_bytes(b"not really a workbook")
    with pytest.raises(BertclsError, match="Convert it to Parquet or CSV first"):
        label_file_ray(pipeline, source, text_column="message", out=tmp_path / "o.csv")


def test_other_formats_are_refused(cluster, pipeline, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("one\ntwo\n")
    with pytest.raises(BertclsError, match="default engine"):
        label_file_ray(pipeline, source, text_column="text", out=tmp_path / "o.csv")


def test_existing_outputs_are_refused(cluster, pipeline, tmp_path):
    source = tmp_path / "messages.csv"
    messages().to_csv(source, index=False)
    out_file = tmp_path / "labeled.csv"
    out_file.write_text("keep me")
    with pytest.raises(BertclsError, match="exists already. Pass --overwrite"):
        label_file_ray(pipeline, source, text_column="message", out=out_file)
    with pytest.raises(BertclsError, match="is the input file"):
        label_file_ray(pipeline, source, text_column="message", out=source, overwrite=True)
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(BertclsError, match="exists already. Pass --overwrite"):
        label_file_ray(pipeline, source, text_column="message", out=folder)
    with pytest.raises(BertclsError, match="holding more than Parquet parts"):
        label_file_ray(pipeline, source, text_column="message", out=folder, overwrite=True)
    with pytest.raises(BertclsError, match="holds the input"):
        label_file_ray(pipeline, source, text_column="message", out=tmp_path, overwrite=True)
    assert out_file.read_text() == "keep me" and (folder / "notes.txt").read_text() == "mine"


def test_bad_column_is_refused_before_labeling(cluster, pipeline, tmp_path):
    source = tmp_path / "messages.csv"
    messages().to_csv(source, index=False)
    with pytest.raises(BertclsError, match="no column 'mesage'"):
        label_file_ray(pipeline, source, text_column="mesage", out=tmp_path / "o.csv")
    labeled = tmp_path / "labeled.csv"
    label_file(load_pipeline(pipeline), source, text_column="message", out=labeled)
    with pytest.raises(BertclsError, match="already has the column"):
        label_file_ray(pipeline, labeled, text_column="message", out=tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


def test_cli_options_that_need_the_other_engine(cluster, pipeline, tmp_path):
    source = tmp_path / "messages.csv"
    messages().to_csv(source, index=False)
    args = ["label", pipeline, source, "--text-column", "message", "--out", tmp_path / "o.csv"]
    result = invoke(*args, "--engine", "ray", "--device", "0")
    assert result.exit_code == 1 and "default engine" in result.output
    result = invoke(*args, "--ray-workers", "2")
    assert result.exit_code == 1 and "--engine ray" in result.output
    result = invoke(*args, "--engine", "spark")
    assert result.exit_code == 2 and "'local', 'ray'" in result.output


def test_workers_and_threads(cluster, pipeline, tmp_path):
    assert _shared_out(2, None) == WorkerPlan(workers=1, threads=2)
    assert _shared_out(16, None) == WorkerPlan(workers=4, threads=4)
    assert _shared_out(16, 3) == WorkerPlan(workers=3, threads=5)
    source = tmp_path / "messages.csv"
    messages().to_csv(source, index=False)
    with pytest.raises(BertclsError, match="The Ray cluster has 3 CPUs: 3 workers need 4"):
        label_file_ray(pipeline, source, text_column="message", out=tmp_path / "o", workers=3)


def test_without_ray_installed(pipeline, tmp_path, monkeypatch):
    source = tmp_path / "messages.csv"
    messages().to_csv(source, index=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    args = ["label", pipeline, source, "--text-column", "message", "--out", tmp_path / "o.csv"]
    result = invoke(*args, "--engine", "ray")
    assert result.exit_code == 1 and "pip install -e '.[ray]'" in result.output
