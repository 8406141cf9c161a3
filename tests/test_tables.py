"""Tests for spacy_bertcls.tables: reading and writing spreadsheets."""

import csv
import os
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.outputs import check_not_same_file
from spacy_bertcls.tables import (
    SUPPORTED_SUFFIXES,
    TableWriter,
    count_rows,
    iter_table_chunks,
    list_sheets,
    read_table,
    require_columns,
    write_table,
)
from spacy_bertcls.tables.cells import label_text, text_values

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMS = DATA / "sms_spam" / "SMSSpamCollection.tsv"
TWEETS = DATA / "airline_tweets" / "Tweets.csv"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")


def sample_frame(n: int = 25) -> pd.DataFrame:
    """A small table with text, numbers and empty cells."""
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "text": [None if i % 7 == 3 else f"text, number {i}" for i in range(n)],
            "label": ["a" if i % 2 else "b" for i in range(n)],
        }
    )


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def assert_chunks_equal_whole(path: Path, chunk_size: int = 4, **options: object) -> pd.DataFrame:
    whole = read_table(path, **options)
    chunks = list(iter_table_chunks(path, chunk_size=chunk_size, **options))
    assert all(len(chunk) <= chunk_size for chunk in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    return whole


# --- bad inputs ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(BertclsError, match="nope.csv does not exist"):
        read_table(missing)
    with pytest.raises(BertclsError, match="does not exist"):
        list(iter_table_chunks(missing))


def test_directory_is_not_a_table(tmp_path):
    with pytest.raises(BertclsError, match="is a directory"):
        read_table(tmp_path)


def test_unsupported_suffix_lists_supported(tmp_path):
    path = tmp_path / "data.xls"
    path.write_bytes(b"x")
    with pytest.raises(BertclsError, match=r"\.xls.*Save it as \.xlsx.*\.csv"):
        read_table(path)


def test_require_columns_lists_columns_and_close_match():
    with pytest.raises(BertclsError) as error:
        require_columns(["Label", "SMS"], ["Labl"], source="sms.tsv")
    message = str(error.value)
    assert "'Labl'" in message and "did you mean 'Label'" in message
    assert "'Label', 'SMS'" in message and "sms.tsv" in message


def test_require_columns_case_insensitive_hint():
    with pytest.raises(BertclsError, match="did you mean 'Text'"):
        require_columns(["Text", "y"], ["text"], source="f.csv")


def test_require_columns_ok():
    require_columns(["a", "b"], ["b"], source="f.csv")


def test_empty_files_are_refused(tmp_path):
    for name in ("empty.csv", "empty.tsv", "empty.txt", "empty.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(BertclsError, match="empty"):
            read_table(path)


def test_blank_lines_only_csv_is_empty(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n\n")
    with pytest.raises(BertclsError, match="empty"):
        read_table(path)


def test_header_only_csv_gives_columns_and_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    df = read_table(path)
    assert list(df.columns) == ["text", "label"] and len(df) == 0
    chunks = list(iter_table_chunks(path))
    assert len(chunks) == 1 and list(chunks[0].columns) == ["text", "label"]
    assert count_rows(path) == 0


def test_header_only_xlsx(tmp_path):
    path = write_xlsx(tmp_path / "h.xlsx", {"data": [["text", "label"]]})
    df = read_table(path)
    assert list(df.columns) == ["text", "label"] and len(df) == 0


def test_empty_excel_sheet_is_refused(tmp_path):
    path = write_xlsx(tmp_path / "e.xlsx", {"data": []})
    with pytest.raises(BertclsError, match="'data'.*empty"):
        read_table(path)


def test_excel_several_sheets_needs_a_choice(tmp_path):
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {"Notes": [["note"], ["hello"]], "Data": [["text", "label"], ["good", "pos"]]},
    )
    assert list_sheets(path) == ["Notes", "Data"]
    with pytest.raises(BertclsError, match=r"2 sheets: 'Notes', 'Data'.*--sheet"):
        read_table(path)
    with pytest.raises(BertclsError, match="2 sheets"):
        count_rows(path)
    assert read_table(path, sheet="Data").to_dict("list") == {"text": ["good"], "label": ["pos"]}
    assert read_table(path, sheet=0).columns.tolist() == ["note"]
    with pytest.raises(BertclsError, match="no sheet 'Dta'.*Did you mean 'Data'"):
        read_table(path, sheet="Dta")
    with pytest.raises(BertclsError, match="no sheet number 5"):
        read_table(path, sheet=5)


def test_sheet_for_a_csv_is_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n")
    with pytest.raises(BertclsError, match="not an Excel file"):
        read_table(path, sheet="Data")


def test_not_really_an_excel_file(tmp_path):
    path = tmp_path / "fake.xlsx"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(BertclsError, match="could not be opened as an Excel workbook"):
        read_table(path)


def test_unknown_encoding_name(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n")
    with pytest.raises(BertclsError, match="Unknown encoding 'utf-9'"):
        read_table(path, encoding="utf-9")


def test_row_wider_than_header_is_refused(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("text\nhello, world\n")
    with pytest.raises(BertclsError, match="line 2 has 2 cells but the header has 1"):
        read_table(path)


def test_bad_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(BertclsError, match="line 2 is not valid JSON"):
        read_table(path)
    path.write_text('{"text": "a"}\n["b"]\n')
    with pytest.raises(BertclsError, match="line 2 is a JSON list"):
        read_table(path)


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_legacy_encoding_refused_with_hint_then_read(tmp_path, encoding):
    path = tmp_path / "legacy.csv"
    path.write_bytes("text,label\ncafé crème,pos\nnaïve,neg\n".encode(encoding))
    with pytest.raises(BertclsError) as error:
        read_table(path)
    message = str(error.value)
    assert "not UTF-8" in message and "line 2" in message
    assert "café crème" in message and "encoding='cp1252'" in message
    df = read_table(path, encoding=encoding)
    assert df["text"].tolist() == ["café crème", "naïve"]
    assert pd.concat(iter_table_chunks(path, encoding=encoding, chunk_size=1)).equals(df)


def test_legacy_byte_at_end_of_file_and_after_a_block(tmp_path):
    path = tmp_path / "end.csv"
    path.write_bytes(b"text\n" + b"a" * (1 << 20) + "\nlast café".encode("cp1252"))
    with pytest.raises(BertclsError, match=r"byte 0xE9 on line 3 .*'last café'"):
        read_table(path)


def test_wrong_explicit_encoding_is_refused(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("text\ncafé\n", encoding="utf-8")
    with pytest.raises(BertclsError, match="cannot be read as ascii"):
        read_table(path, encoding="ascii")


def test_utf8_bom_and_utf16(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("text,label\nçà,x\n".encode("utf-8-sig"))
    assert read_table(bom).columns.tolist() == ["text", "label"]
    utf16 = tmp_path / "excel_unicode.tsv"
    utf16.write_text("text\tlabel\nçà\tx\n", encoding="utf-16")
    assert read_table(utf16).to_dict("list") == {"text": ["çà"], "label": ["x"]}


def test_non_ascii_after_a_block_boundary(tmp_path):
    # A multi-byte character cut by the 1 MiB read block must not count as an error.
    # Two rows, so that no cell is over MAX_CELL_CHARS; "é" starts 1 byte before 1 MiB.
    path = tmp_path / "long.csv"
    first = "a" * 500_000
    second = "a" * ((1 << 20) - 1 - len("text\n") - len(first) - 1) + "é"
    path.write_text(f"text\n{first}\n{second}\n", encoding="utf-8")
    assert path.read_bytes().index("é".encode()) == (1 << 20) - 1
    assert read_table(path)["text"][1].endswith("é")


# --- cells -----------------------------------------------------------------------------------


def test_text_values_nan_numbers_and_long_strings():
    long_text = "x" * 100_000
    series = pd.Series([np.nan, None, 1.0, 2.5, 7, long_text, "ok", True], dtype=object)
    assert text_values(series) == ["", "", "1", "2.5", "7", long_text, "ok", "True"]


def test_csv_cells_are_text_and_only_empty_is_missing(tmp_path):
    path = tmp_path / "cells.csv"
    long_text = "y" * 100_000
    path.write_text(f"id,text\n007,NA\n1.50,\n3,{long_text}\n")
    df = read_table(path)
    assert df["id"].tolist() == ["007", "1.50", "3"]
    assert df["text"][0] == "NA" and pd.isna(df["text"][1]) and df["text"][2] == long_text
    assert text_values(df["text"]) == ["NA", "", long_text]


def test_semicolon_csv_is_sniffed(tmp_path):
    path = tmp_path / "excel_de.csv"
    path.write_text("text;label\nHallo, Welt;pos\nTschüss;neg\n")
    assert read_table(path).to_dict("list") == {
        "text": ["Hallo, Welt", "Tschüss"],
        "label": ["pos", "neg"],
    }


def test_quoted_csv_with_newlines_and_delimiters(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('text,label\n"line one\nline two, still",a\n"say ""hi""",b\n')
    df = assert_chunks_equal_whole(path, chunk_size=1)
    assert df["text"].tolist() == ["line one\nline two, still", 'say "hi"']
    assert count_rows(path) == 2


def test_unquoted_tsv_with_leading_quotes(tmp_path):
    # Like the SMS Spam Collection: no quoting, texts may start with a quote.
    path = tmp_path / "sms.tsv"
    rows = ['ham\t"Hello" he said', "spam\tFree entry", 'ham\t"Ok', 'ham\tbye"', "ham\tlast"]
    path.write_text("Label\tSMS\n" + "\n".join(rows) + "\n")
    df = assert_chunks_equal_whole(path, chunk_size=2)
    assert len(df) == 5 and count_rows(path) == 5
    assert df["SMS"].tolist()[0] == '"Hello" he said' and df["SMS"][2] == '"Ok'


def test_txt_is_one_text_per_line(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("first text\n\nthird, with comma\tand tab\n")
    df = assert_chunks_equal_whole(path, chunk_size=2)
    assert df.columns.tolist() == ["text"]
    assert text_values(df["text"]) == ["first text", "", "third, with comma\tand tab"]
    assert count_rows(path) == 3


def test_read_table_nrows(tmp_path):
    path = tmp_path / "n.csv"
    write_table(sample_frame(), path)
    assert len(read_table(path, nrows=5)) == 5
    assert len(read_table(tmp_path / "n.csv", nrows=0)) == 0


# --- chunked reading equals whole reading, for every format ----------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".tab", ".xlsx", ".parquet", ".jsonl"])
def test_chunks_equal_whole_after_write(tmp_path, suffix):
    frame = sample_frame()
    path = tmp_path / f"table{suffix}"
    write_table(frame, path)
    whole = assert_chunks_equal_whole(path)
    assert whole.columns.tolist() == ["id", "text", "label"]
    assert text_values(whole["text"]) == text_values(frame["text"])
    assert whole["label"].tolist() == frame["label"].tolist()
    assert count_rows(path) == len(frame)


def test_xlsx_keeps_types_and_interior_empty_rows(tmp_path):
    path = write_xlsx(
        tmp_path / "typed.xlsx",
        {
            "data": [
                ["text", "score", "n"],
                ["a", 1.5, 1],
                [None, None, None],
                ["c", None, 3],
                ["d", 2.0, 4],
                [None, None, None],  # trailing empty rows are dropped
            ]
        },
    )
    df = assert_chunks_equal_whole(path, chunk_size=2)
    assert len(df) == 4 and df["score"].dtype == np.float64
    assert pd.isna(df["text"][1]) and df["n"].tolist()[0] == 1


def test_xlsx_value_without_header_is_refused(tmp_path):
    path = write_xlsx(tmp_path / "h.xlsx", {"data": [["text"], ["a", "stray"]]})
    with pytest.raises(BertclsError, match="beyond the last column with a name"):
        read_table(path)


def test_json_array_and_ndjson(tmp_path):
    array = tmp_path / "rows.json"
    array.write_text('[{"text": "a", "label": 1}, {"text": null, "label": 2}, {"text": "c"}]')
    df = assert_chunks_equal_whole(array, chunk_size=2)
    assert df.columns.tolist() == ["text", "label"] and len(df) == 3
    assert count_rows(array) is None
    lines = tmp_path / "rows.ndjson"
    lines.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": 0, "extra": true}\n')
    df = assert_chunks_equal_whole(lines, chunk_size=1)
    assert df.columns.tolist() == ["text", "label", "extra"]
    assert count_rows(lines) == 2


def test_jsonl_column_empty_in_a_chunk_keeps_its_dtype(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"t": "a", "x": 1.5}\n{"t": "b", "x": null}\n{"t": "c", "x": 2.5}\n')
    chunks = list(iter_table_chunks(path, chunk_size=1))
    assert [chunk["x"].dtype for chunk in chunks] == [np.float64] * 3
    pd.testing.assert_frame_equal(pd.concat(chunks), read_table(path))


def test_all_supported_suffixes_are_readable(tmp_path):
    for suffix in SUPPORTED_SUFFIXES:
        path = tmp_path / f"t{suffix}"
        if suffix in (".xlsm", ".json", ".txt"):
            continue  # covered by their own tests (xlsm: same reader as xlsx)
        write_table(sample_frame(3), path)
        assert len(read_table(path)) == 3


# --- writing ---------------------------------------------------------------------------------


FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "plain", "-5", "+1.5"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_formulas_neutralized_in_delimited_output(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    write_table(pd.DataFrame({"text": FORMULAS, "n": range(len(FORMULAS))}), path)
    sep = "," if suffix == ".csv" else "\t"
    with open(path, encoding="utf-8-sig", newline="") as file:
        cells = [row[0] for row in csv.reader(file, delimiter=sep)][1:]
    assert cells == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\rx", "plain", "-5", "+1.5"]


def test_xlsx_writes_formula_like_texts_as_text_cells_without_a_quote(tmp_path):
    # Excel shows a written "'" as part of the text; a text cell (with Excel's own quote
    # prefix, what it stores for a typed "'@x") keeps the text exact and never a formula.
    texts = ["@united hi", "=1+1", "+44 123", "-x", "=", "#N/A", "'=x", "plain", "-5"]
    path = tmp_path / "out.xlsx"
    write_table(pd.DataFrame({"text": texts, "=n": range(len(texts))}), path)
    sheet = openpyxl.load_workbook(path).active
    header, *rows = list(sheet.iter_rows())
    assert [cell.value for cell in header] == ["text", "=n"]
    assert header[1].data_type == "s" and header[1].quotePrefix
    assert [row[0].value for row in rows] == texts
    assert all(row[0].data_type == "s" for row in rows)  # no "f" (formula), no "e" (error)
    assert [row[0].quotePrefix for row in rows] == [True] * 5 + [False] * 4
    assert [row[1].value for row in rows] == list(range(len(texts)))
    formulas = openpyxl.load_workbook(path, data_only=False).active
    assert not [c for row in formulas.iter_rows() for c in row if c.data_type == "f"]
    assert read_table(path)["text"].tolist() == texts
    assert pd.read_excel(path, keep_default_na=False)["text"].tolist() == texts
    # CSV keeps its "'" guard: there a cell has no type that would say "text".
    write_table(pd.DataFrame({"text": texts}), tmp_path / "out.csv")
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as file:
        cells = [row[0] for row in csv.reader(file)][1:]
    assert cells == ["'@united hi", "'=1+1", "'+44 123", "'-x", "'=", "#N/A", "''=x", "plain", "-5"]
    assert read_table(tmp_path / "out.csv")["text"].tolist() == texts


def test_xlsx_written_with_a_quote_by_older_versions_still_reads_exactly(tmp_path):
    # Files written before text cells carry the property with the value "'": their guard
    # "'" is removed on reading, only before = + - @ (and exactly one of several).
    from openpyxl.packaging.custom import StringProperty

    from spacy_bertcls.tables.excel import XLSX_GUARD_PROPERTY

    workbook = openpyxl.Workbook()
    workbook.custom_doc_props.append(StringProperty(name=XLSX_GUARD_PROPERTY, value="'"))
    sheet = workbook.active
    for row in [["text"], ["'@united hi"], ["'=1+1"], ["''=x"], ["'plain"], ["it's"]]:
        sheet.append(row)
    path = tmp_path / "old.xlsx"
    workbook.save(path)
    expected = ["@united hi", "=1+1", "'=x", "'plain", "it's"]
    assert read_table(path)["text"].tolist() == expected


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".xlsx"])
def test_formula_guards_removed_on_reading_so_texts_round_trip(tmp_path, suffix):
    # Texts that already start with "'" before a formula character keep it: the writer adds
    # one "'" and the reader removes exactly one.
    texts = [*FORMULAS[:5], *FORMULAS[6:], "'=x", "''@y", "'5", "'", "it's"]
    frame = pd.DataFrame({"text": texts, "@col": range(len(texts))})
    path = tmp_path / f"out{suffix}"
    write_table(frame, path)
    assert read_table(path)["text"].tolist() == texts
    chunks = list(iter_table_chunks(path, chunk_size=4))
    assert pd.concat(chunks)["text"].tolist() == texts
    assert list(chunks[0].columns) == ["text", "@col"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_formulas_unchanged_in_parquet_and_jsonl(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    write_table(pd.DataFrame({"text": FORMULAS}), path)
    assert read_table(path)["text"].tolist() == FORMULAS


def test_xlsx_refuses_overlong_cells(tmp_path):
    path = tmp_path / "long.xlsx"
    with pytest.raises(BertclsError, match="100,000 characters"):
        write_table(pd.DataFrame({"text": ["z" * 100_000]}), path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_long_texts_round_trip_in_csv_and_parquet(tmp_path):
    texts = ["z" * 100_000, "short"]
    for suffix in (".csv", ".parquet", ".jsonl"):
        path = tmp_path / f"long{suffix}"
        write_table(pd.DataFrame({"text": texts}), path)
        assert read_table(path)["text"].tolist() == texts


class Boom(Exception):
    pass


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl"])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_write_leaves_nothing_on_error(tmp_path, suffix, error):
    path = tmp_path / f"out{suffix}"
    with pytest.raises(error):
        with TableWriter(path) as writer:
            writer.write(sample_frame(5))
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_older_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old,content\n")
    with pytest.raises(Boom):
        with TableWriter(path) as writer:
            writer.write(sample_frame(5))
            assert path.read_text() == "old,content\n"  # nothing visible while writing
            raise Boom()
    assert path.read_text() == "old,content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_writer_in_chunks_replaces_older_file(tmp_path):
    path = tmp_path / "out.parquet"
    path.write_text("old")
    frame = sample_frame(10)
    with TableWriter(path) as writer:
        writer.write(frame.iloc[:4])
        writer.write(frame.iloc[4:])
    pd.testing.assert_frame_equal(read_table(path), frame, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_writer_with_no_rows_writes_header(tmp_path):
    path = tmp_path / "empty.csv"
    with TableWriter(path, columns=["text", "label"]):
        pass
    assert read_table(path).columns.tolist() == ["text", "label"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl"])
def test_writer_empty_chunks_write_one_header(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    frame = sample_frame(3)
    with TableWriter(path) as writer:
        writer.write(frame.iloc[:0])
        writer.write(frame)
        writer.write(frame.iloc[:0])
    assert read_table(path)["id"].tolist() == ["0", "1", "2"]
    if suffix != ".jsonl":  # JSON lines without rows cannot name columns
        write_table(frame.iloc[:0], path)
        assert read_table(path).columns.tolist() == ["id", "text", "label"]


def test_writer_refuses_new_columns_in_later_chunks(tmp_path):
    with pytest.raises(BertclsError, match=r"columns \['x'\]"):
        with TableWriter(tmp_path / "o.csv") as writer:
            writer.write(pd.DataFrame({"a": [1]}))
            writer.write(pd.DataFrame({"a": [2], "x": [3]}))
    assert list(tmp_path.iterdir()) == []


def test_unsupported_output_suffix(tmp_path):
    with pytest.raises(BertclsError, match=r"'\.docx'.*\.csv, \.tsv"):
        TableWriter(tmp_path / "out.docx")


def test_output_into_missing_directory(tmp_path):
    path = tmp_path / "missing" / "out.csv"
    with pytest.raises(BertclsError, match="missing.*does not exist"):
        write_table(sample_frame(2), path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_output_into_read_only_directory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(BertclsError, match="out.csv"):
            write_table(sample_frame(2), folder / "out.csv")
    finally:
        folder.chmod(0o755)


def test_output_directory_not_writable(tmp_path, monkeypatch):
    # Works as root too, where a chmod-ed directory stays writable.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("spacy_bertcls.outputs.os.open", refuse)
    with pytest.raises(BertclsError, match="Cannot write .*out.csv: Permission denied"):
        write_table(sample_frame(2), tmp_path / "out.csv")


def test_output_equal_to_input_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    with pytest.raises(BertclsError, match="is the input file.*data_labeled.csv"):
        check_not_same_file(path, tmp_path / "." / "data.csv")
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    with pytest.raises(BertclsError, match="is the input file"):
        check_not_same_file(path, link)
    check_not_same_file(path, tmp_path / "other.csv")


# --- the real data (skipped without ../shared/data) ------------------------------------------


@needs_data
def test_sms_tsv_reads_all_rows():
    df = assert_chunks_equal_whole(SMS, chunk_size=1000)
    assert df.shape == (5574, 2) and df.columns.tolist() == ["Label", "SMS"]
    assert df["Label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}
    assert count_rows(SMS) == 5574


@needs_data
def test_tweets_csv_reads_all_rows():
    df = assert_chunks_equal_whole(TWEETS, chunk_size=4000)
    assert df.shape == (14640, 15) and df.columns[10] == "text"
    assert df["airline_sentiment"].value_counts().to_dict() == {
        "negative": 9178,
        "neutral": 3099,
        "positive": 2363,
    }
    assert df["negativereason"].isna().sum() > 0 and df["text"].notna().all()
    assert count_rows(TWEETS) == 14640


def test_label_text_is_how_every_label_cell_is_read():
    """A 0/1 column read as floats (Excel, Parquet) gives the labels "0"/"1"; blank is none."""
    cells = [0.0, 1.0, np.float32(1), np.int64(0), 2, " spam ", "", "  ", None, np.nan, pd.NA]
    expected = ["0", "1", "1", "0", "2", "spam", None, None, None, None, None]
    assert [label_text(cell) for cell in cells] == expected
