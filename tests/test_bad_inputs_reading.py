"""Bad input files: every reader reads them whole, or refuses them with a message.

One test per case from the issues; each docstring states the case and what the user gets.
The CLI tests use a tiny spaCy "textcat" pipeline trained here (fast, no BERT needed).
"""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import spacy
from conftest import HAM, SPAM
from spacy.tokens import DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bertcls import tables
from spacy_bertcls.cli import app
from spacy_bertcls.convert import convert_table
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.labeling import label_file
from spacy_bertcls.tables import TableWarning, iter_table_chunks, read_table, write_table
from spacy_bertcls.tables.cells import MAX_CELL_CHARS
from spacy_bertcls.tables.excel import XLSX_GUARD_PROPERTY
from spacy_bertcls.tables.guards import guard_registry

runner = CliRunner()

# Texts that broke reading or round trips: CR, LF and CRLF inside cells, quotes, and the
# characters that make a spreadsheet cell a formula (with and without a user's own "'").
TRICKY = [
    "line one\rline two",
    "line one\nline two",
    "line one\r\nline two",
    'she said "hi", then left',
    "=1+1",
    "+44 20 7946 0958 call now",
    "-minus at the start",
    "@united where is my bag",
    "'=A1 is the user's own text",
    "''@two apostrophes",
    "\rstarts with CR",
    "ends with CR\r",
]


def invoke(*args: object):
    # catch_exceptions=False: a traceback fails the test instead of becoming exit code 1.
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat")
    examples = [
        Example.from_dict(
            nlp.make_doc(t), {"cats": {"ham": float(t in HAM), "spam": float(t in SPAM)}}
        )
        for t in HAM + SPAM
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("pipeline") / "model-best"
    nlp.to_disk(path)
    return path


@pytest.fixture
def nlp(pipeline):
    return spacy.load(pipeline)


def label(pipeline, path, out, *options: object):
    return invoke("label", pipeline, path, "--text-column", "text", "--out", out, *options)


def convert(path, out_dir, *options: object):
    return invoke(
        "convert",
        path,
        "--text-column",
        "text",
        "--label-column",
        "gold",
        "--output",
        out_dir,
        "--dev-size",
        "0",
        "--test-size",
        "0",
        *options,
    )


def train_texts(out_dir) -> list[str]:
    docs = DocBin().from_disk(out_dir / "train.spacy").get_docs(spacy.blank("en").vocab)
    return [doc.text for doc in docs]


def gold(n: int) -> list[str]:
    return ["ham" if i % 2 else "spam" for i in range(n)]


# --- 1. line ends ----------------------------------------------------------------------------


def test_lone_cr_in_a_quoted_cell_of_a_later_column_is_read(tmp_path):
    """A quoted cell holding a lone CR after the first column: read, no _csv.Error."""
    path = tmp_path / "cr.csv"
    path.write_bytes(b'id,text\r\n1,"a\rb"\r\n2,c\r\n')
    assert read_table(path)["text"].tolist() == ["a\rb", "c"]


def test_mixed_crlf_lf_cr_line_ends_are_read(tmp_path):
    """CRLF, LF and CR-only line ends mixed in one CSV: every row is read."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(b'text,gold\r\na,x\nb,y\rc,z\r\n"d\re",w\n')
    frame = read_table(path)
    assert frame.to_dict("list") == {"text": ["a", "b", "c", "d\re"], "gold": ["x", "y", "z", "w"]}


def test_cr_only_csv_from_excel_for_mac_is_read(tmp_path):
    """A CSV with CR-only line ends ("CSV (Macintosh)"): read with all rows, also in chunks."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"text;gold\ra;x\rb;y\rc;z\r")
    assert read_table(path).to_dict("list") == {"text": ["a", "b", "c"], "gold": ["x", "y", "z"]}
    assert sum(len(chunk) for chunk in iter_table_chunks(path, chunk_size=2)) == 3


def test_label_output_round_trips_through_convert(pipeline, tmp_path):
    """`label` writes CR/LF/quotes/= + - @ texts; `convert` reads them back unchanged."""
    source = tmp_path / "in.csv"
    write_table(pd.DataFrame({"id": range(len(TRICKY)), "text": TRICKY}), source)
    frame = read_table(source)
    frame["gold"] = gold(len(TRICKY))
    frame.to_parquet(tmp_path / "in.parquet")  # an input without any formula guard
    for suffix in (".csv", ".tsv", ".xlsx"):
        if suffix == ".xlsx":
            texts = [text.replace("\r\n", "\n").replace("\r", "\n") for text in TRICKY]
        else:
            texts = TRICKY  # XML turns every CR into LF, so .xlsx cannot keep them
        out = tmp_path / f"labeled{suffix}"
        result = label(pipeline, tmp_path / "in.parquet", out)
        assert result.exit_code == 0, result.output
        result = convert(out, tmp_path / suffix)
        assert result.exit_code == 0, result.output
        assert train_texts(tmp_path / suffix) == texts, suffix


# --- 2. UTF-16 without a byte-order mark -----------------------------------------------------


def test_utf16_without_bom_is_named_with_the_option_to_pass(tmp_path):
    """UTF-16-LE without BOM: the message names it and says --encoding utf-16-le."""
    path = tmp_path / "utf16.csv"
    path.write_bytes("text,gold\nhello,x\nworld,y\n".encode("utf-16-le"))
    result = convert(path, tmp_path / "corpus")
    assert result.exit_code == 1
    assert "looks like UTF-16 without a byte-order mark" in result.output
    assert "--encoding utf-16-le" in result.output and "\\x00" not in result.output


def test_utf16_le_and_be_read_with_the_encoding_option(tmp_path, pipeline):
    """With --encoding utf-16-le/-be, such files read; label/convert/evaluate have --encoding."""
    for command in ("convert", "label", "evaluate"):
        assert "--encoding" in invoke(command, "--help").output
    for encoding in ("utf-16-le", "utf-16-be"):
        path = tmp_path / f"{encoding}.tsv"
        path.write_bytes("text\tgold\nçà\tx\n".encode(encoding))
        with pytest.raises(BertclsError, match=f"--encoding {encoding}"):
            read_table(path)
        assert read_table(path, encoding=encoding).to_dict("list") == {
            "text": ["çà"],
            "gold": ["x"],
        }
        with pytest.raises(BertclsError, match="encoding='cp1252' was given, but"):
            read_table(path, encoding="cp1252")
        out = tmp_path / f"{encoding}.csv"
        result = label(pipeline, path, out, "--encoding", encoding)
        assert result.exit_code == 0, result.output


# --- 3. a huge cell --------------------------------------------------------------------------


def limit_cells(monkeypatch, chars):
    """Set MAX_CELL_CHARS to `chars` in every module that reads it: each reader imports it."""
    for module in (
        tables.cells,
        tables.delimited,
        tables.excel,
        tables.jsonl,
        tables.parquet,
        tables.text,
    ):
        monkeypatch.setattr(module, "MAX_CELL_CHARS", chars)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".jsonl", ".xlsx", ".parquet"])
def test_a_cell_over_the_limit_is_refused_by_every_reader(tmp_path, monkeypatch, suffix):
    """A cell over MAX_CELL_CHARS (1,000,000): refused by every format, naming row/column/size."""
    assert MAX_CELL_CHARS == 1_000_000
    limit_cells(monkeypatch, 1000)  # the same rule, a smaller file
    texts = ["short", "x" * 1001, "short"]
    path = tmp_path / f"big{suffix}"
    if suffix == ".txt":
        path.write_text("\n".join(texts) + "\n")
    else:
        write_table(pd.DataFrame({"text": texts}), path)
    # Rows as the user sees them: the line of a text file, the sheet row of Excel (after the
    # header), the data row of CSV (with its line) and Parquet.
    where = {".txt": "line 2", ".jsonl": "line 2", ".xlsx": "sheet 'Sheet1' row 3"}.get(
        suffix, "row 2"
    )
    message = f"{where}.*column 'text' holds a cell of 1,001 characters, more than the 1,000"
    with pytest.raises(BertclsError, match=message):
        read_table(path)
    with pytest.raises(BertclsError, match=message):
        list(iter_table_chunks(path, chunk_size=1))


def test_label_and_convert_refuse_the_same_huge_cell(pipeline, tmp_path, monkeypatch):
    """A huge cell from a quote never closed: label and convert give the same message."""
    limit_cells(monkeypatch, 1000)
    path = tmp_path / "broken.csv"
    body = "".join(f"{i},text {i},ham\n" for i in range(300))
    path.write_text(f'id,text,gold\n0,"opened and never closed,ham\n{body}1,closed",spam\n')
    results = [convert(path, tmp_path / "corpus"), label(pipeline, path, tmp_path / "o.csv")]
    for result in results:
        assert result.exit_code == 1
        assert "row 1 (line 2), column 'text' holds a cell of" in result.output
        assert "a quote that is never closed" in result.output
    assert not (tmp_path / "o.csv").exists()


# --- 4. columns and types kept ---------------------------------------------------------------


def test_duplicate_column_names_are_kept_in_label_output(pipeline, tmp_path):
    """Duplicate headers ("note", "note") stay as they are in CSV and XLSX output."""
    path = tmp_path / "dup.csv"
    path.write_text("note,text,note\na,call me when you get home please,b\n")
    for suffix in (".csv", ".xlsx"):
        out = tmp_path / f"dup_labeled{suffix}"
        assert label(pipeline, path, out).exit_code == 0
        frame = read_table(out)
        assert frame.columns.tolist()[:3] == ["note", "text", "note"]
        assert frame.iloc[0, :3].tolist() == ["a", "call me when you get home please", "b"]


def test_duplicate_column_names_are_refused_for_parquet_and_jsonl(pipeline, tmp_path):
    """Parquet/JSONL cannot hold duplicate names: refused before labeling, with the fix."""
    path = tmp_path / "dup.csv"
    path.write_text("note,text,note\na,hello,b\n")
    for suffix in (".parquet", ".jsonl"):
        result = label(pipeline, path, tmp_path / f"o{suffix}")
        assert result.exit_code == 1
        assert "several columns named 'note' (2 times)" in result.output
        assert "Write .csv or .xlsx" in result.output and "Labeling" not in result.output


def test_duplicated_text_column_is_refused_by_name(pipeline, tmp_path):
    """--text-column naming two columns: refused, naming their positions."""
    path = tmp_path / "dup.csv"
    path.write_text("text,text\na,b\n")
    result = label(pipeline, path, tmp_path / "o.csv")
    assert result.exit_code == 1 and "has 2 columns named 'text' (columns 1, 2)" in result.output


def test_parquet_structs_lists_and_nullable_ints_keep_their_types(pipeline, tmp_path):
    """Parquet structs, lists, decimals, dates, ints with nulls: same Arrow types after label."""
    import datetime
    import decimal

    table = pa.table(
        {
            "text": ["call me when you get home please", "win a free prize now call 0800 claim"],
            "meta": pa.array(
                [{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int32()), ("b", pa.string())])
            ),
            "tags": pa.array([["x", "y"], []], pa.list_(pa.string())),
            "price": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(5, 2)),
            "day": pa.array([datetime.date(2024, 1, 2), None], pa.date32()),
            "n": pa.array([12345678901234567, None], pa.int64()),
            "flag": pa.array([True, None], pa.bool_()),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    out = tmp_path / "labeled.parquet"
    assert label(pipeline, path, out).exit_code == 0
    written = pq.read_table(out).select(table.column_names)
    assert [field.type for field in written.schema] == [field.type for field in table.schema]
    assert written.to_pylist() == table.to_pylist()


def test_jsonl_integers_stay_integers(pipeline, tmp_path):
    """JSONL integers next to nulls stay integers (not 1.0, no lost digits) after label."""
    path = tmp_path / "ints.jsonl"
    rows = [
        {"id": 12345678901234567, "text": "see you at the station at six", "n": 1},
        {"id": None, "text": "urgent you have won cash", "n": 2, "extra": {"k": [1, 2]}},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "labeled.jsonl"
    assert label(pipeline, path, out, "--chunk-size", "1").exit_code == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in written] == [12345678901234567, None]
    assert [row["n"] for row in written] == [1, 2]
    assert written[1]["extra"] == {"k": [1, 2]} and written[0]["extra"] is None


# --- 5. labels differing only by case --------------------------------------------------------


def test_labels_differing_only_by_case_are_warned_in_convert(tmp_path):
    """spam/Spam/SPAM: convert's summary warns, naming the group and how to merge it."""
    labels = ["ham"] * 10 + ["spam"] * 6 + ["Spam"] * 3 + ["SPAM"] * 3
    path = tmp_path / "cases.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(len(labels))], "gold": labels}).to_csv(
        path, index=False
    )
    summary = convert_table(
        path,
        text_column="text",
        label_column="gold",
        out_dir=tmp_path / "c",
        dev_size=0,
        test_size=0,
    )
    text = summary.format()
    assert "warning: labels that differ only by case are separate classes" in text
    assert "'SPAM' (3 rows), 'Spam' (3 rows), 'spam' (6 rows)" in text
    assert ".str.lower()" in text


# --- 6. a file still being written -----------------------------------------------------------


def test_csv_with_a_cut_last_row_is_refused(pipeline, tmp_path):
    """Last CSV line without line end and too few cells: refused as maybe still being written."""
    path = tmp_path / "growing.csv"
    path.write_text("id,text,gold\n1,see you at six,ham\n2,win a free")
    result = label(pipeline, path, tmp_path / "o.csv")
    assert result.exit_code == 1
    assert "last line (line 3) has no line end and holds 2 of the header's 3 cells" in result.output
    assert "may still be being written" in result.output and "wait" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_csv_ending_inside_an_open_quote_is_refused(tmp_path):
    """Last CSV line without line end inside an open quote: refused as maybe still written."""
    path = tmp_path / "growing.csv"
    path.write_text('id,text\r\n1,"multi\r\nline"\r\n2,"half a tex')
    with pytest.raises(BertclsError, match=r"line 4\) has no line end and ends inside a quoted"):
        read_table(path)


def test_complete_files_without_a_final_line_end_are_read(tmp_path):
    """A complete CSV/JSONL whose last line lacks a line end (as Excel writes): read as usual."""
    csv_path = tmp_path / "done.csv"
    csv_path.write_text('id,text\n1,a\n2,"b"')
    assert read_table(csv_path)["text"].tolist() == ["a", "b"]
    jsonl_path = tmp_path / "done.jsonl"
    jsonl_path.write_text('{"text": "a"}\n{"text": "b"}')
    assert read_table(jsonl_path)["text"].tolist() == ["a", "b"]


def test_jsonl_with_a_cut_last_line_is_refused(tmp_path):
    """Last JSONL line without line end and not valid JSON: refused as maybe still written."""
    path = tmp_path / "growing.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b", "lab')
    with pytest.raises(BertclsError, match=r"line 2\) has no line end and is not valid JSON"):
        list(iter_table_chunks(path))


def test_txt_without_a_final_line_end_is_read_with_a_warning(tmp_path):
    """A .txt cannot tell cut from complete: the last line is read, with a warning."""
    path = tmp_path / "texts.txt"
    path.write_text("first\nsecond")
    notes: list[str] = []
    assert read_table(path, notes=notes)["text"].tolist() == ["first", "second"]
    assert len(notes) == 1 and "(line 2) has no line end" in notes[0]
    with pytest.warns(TableWarning, match="may be cut off"):
        read_table(path)


def test_a_file_growing_while_it_is_read_is_refused(tmp_path):
    """Rows appended while chunks are being read: refused after the last chunk."""
    path = tmp_path / "growing.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(10)))
    chunks = iter_table_chunks(path, chunk_size=4)
    next(chunks)
    with open(path, "a") as file:
        file.write("row 10\nrow 1")
    with pytest.raises(BertclsError, match="changed while it was being read"):
        list(chunks)


# --- 7. Excel formulas without saved values --------------------------------------------------


def test_xlsx_formulas_without_saved_values_keep_their_text(pipeline, tmp_path):
    """openpyxl-written formulas (no saved value): formula text kept, counted in a warning."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["text", "n"])
    sheet.append(["call me when you get home please", "=1+1"])
    sheet.append(['=A2&" now"', 3])
    workbook.save(tmp_path / "formulas.xlsx")
    out = tmp_path / "labeled.csv"
    result = label(pipeline, tmp_path / "formulas.xlsx", out)
    assert result.exit_code == 0, result.output
    assert "warning: 2 formula cells of sheet 'Sheet' in" in result.output
    assert "(first: B2)" in result.output and "open the file in Excel" in result.output
    frame = read_table(out)
    assert frame["n"].tolist() == ["=1+1", "3"] and frame["text"][1] == '=A2&" now"'
    # evaluate reports the same warning in its summary and report, not as a Python warning.
    sheet.cell(row=1, column=3, value="gold")
    sheet.cell(row=2, column=3, value="ham")
    sheet.cell(row=3, column=3, value="spam")
    workbook.save(tmp_path / "formulas.xlsx")
    result = runner.invoke(
        app,
        ["evaluate", str(pipeline), str(tmp_path / "formulas.xlsx"), "--text-column", "text",
         "--label-column", "gold", "--json", str(tmp_path / "metrics.json"),
         "--report", str(tmp_path / "report.html")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "formula cells of sheet 'Sheet'" in result.output
    notes = json.loads((tmp_path / "metrics.json").read_text())["notes"]
    assert any("formula cells" in note for note in notes)


# --- 8. formula guards: only those this project wrote are removed ----------------------------


def test_a_users_own_apostrophe_before_a_formula_character_survives(tmp_path):
    """'=A1 or '@x in a file bertcls did not write: read with the apostrophe."""
    texts = ["'=A1", "'@united", "''+x", "plain"]
    csv_path = tmp_path / "own.csv"
    pd.DataFrame({"text": texts}).to_csv(csv_path, index=False)
    assert read_table(csv_path)["text"].tolist() == texts
    xlsx_path = tmp_path / "own.xlsx"
    pd.DataFrame({"text": texts}).to_excel(xlsx_path, index=False)
    assert read_table(xlsx_path)["text"].tolist() == texts


def test_texts_written_by_bertcls_round_trip_exactly(tmp_path):
    """Guards bertcls wrote (CSV/TSV: recorded by SHA-256; XLSX: a property) are removed."""
    texts = ["=1+1", "'=A1", "''@x", "@united", "-5", "it's", "'"]
    for suffix in (".csv", ".tsv", ".xlsx"):
        path = tmp_path / f"out{suffix}"
        write_table(pd.DataFrame({"text": texts, "@n": range(len(texts))}), path)
        frame = read_table(path)
        assert frame["text"].tolist() == texts and frame.columns.tolist() == ["text", "@n"]
    assert len(list(guard_registry().iterdir())) == 2  # the CSV and the TSV file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.tsv", "out.xlsx"]
    workbook = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert [prop.name for prop in workbook.custom_doc_props] == [XLSX_GUARD_PROPERTY]
    moved = tmp_path / "renamed.csv"
    (tmp_path / "out.csv").rename(moved)  # the file's bytes count, not its name
    assert read_table(moved)["text"].tolist() == texts


def test_an_edited_bertcls_csv_keeps_its_apostrophes(tmp_path):
    """A guarded CSV changed after writing is no longer bertcls's: its "'" are kept."""
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"text": ["=1+1", "b"]}), path)
    with open(path, "a", encoding="utf-8", newline="") as file:
        file.write("'=A1\r\n")
    assert read_table(path)["text"].tolist() == ["'=1+1", "b", "'=A1"]


def test_label_file_reports_reading_notes_in_its_summary(nlp, tmp_path):
    """label_file puts reading warnings (here: .txt without final line end) in its summary."""
    path = tmp_path / "texts.txt"
    path.write_text("see you at six\nwin a free prize")
    summary = label_file(nlp, path, text_column="text", out=tmp_path / "o.csv")
    assert summary.rows == 2 and "warning: The last line of" in summary.format()
