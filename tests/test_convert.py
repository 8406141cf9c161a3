"""Tests for spacy_bertcls.convert: spreadsheet -> train/dev/test .spacy files."""

from pathlib import Path

import pandas as pd
import pytest
import spacy
from spacy.tokens import DocBin

from spacy_bertcls.convert import EMPTY_LABEL, EMPTY_TEXT, convert_table, write_corpus
from spacy_bertcls.errors import BertclsError
from spacy_bertcls.tables import write_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SMS = DATA / "sms_spam" / "SMSSpamCollection.tsv"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")


def labeled_frame(n_per_label: int = 20, labels: tuple[str, ...] = ("pos", "neg")) -> pd.DataFrame:
    rows = [
        {"id": f"{label}{i}", "review": f"{label} review number {i}", "label": label}
        for label in labels
        for i in range(n_per_label)
    ]
    return pd.DataFrame(rows)


def load_docs(path: Path) -> list[spacy.tokens.Doc]:
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def convert(path: Path, out_dir: Path, **options: object):
    options = {"text_column": "review", "label_column": "label", **options}
    return convert_table(path, out_dir=out_dir, **options)


def test_convert_writes_three_stratified_splits(tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.rows_read == summary.rows_kept == 40
    assert summary.labels == ["neg", "pos"]
    assert summary.split_sizes == {"train": 32, "dev": 4, "test": 4}
    for split in ("train", "dev", "test"):
        path = tmp_path / "corpus" / f"{split}.spacy"
        assert summary.output_paths[split] == path
        docs = load_docs(path)
        assert len(docs) == summary.split_sizes[split]
        assert summary.label_counts[split] == {"neg": len(docs) // 2, "pos": len(docs) // 2}
        for doc in docs:
            assert set(doc.cats) == {"neg", "pos"} and sorted(doc.cats.values()) == [0.0, 1.0]
            assert doc.cats[doc.text.split()[0]] == 1.0
    assert not [p for p in (tmp_path / "corpus").iterdir() if p.suffix == ".tmp"]


def test_split_is_reproducible_by_seed(tmp_path):
    source = tmp_path / "reviews.jsonl"
    write_table(labeled_frame(), source)

    def dev_texts(seed: int, name: str) -> list[str]:
        convert(source, tmp_path / name, seed=seed)
        return [doc.text for doc in load_docs(tmp_path / name / "dev.spacy")]

    assert dev_texts(1, "a") == dev_texts(1, "b")
    assert dev_texts(1, "a") != dev_texts(2, "c")


def test_empty_texts_and_labels_are_dropped_and_counted(tmp_path):
    frame = labeled_frame()
    frame.loc[0, "review"] = None
    frame.loc[1, "review"] = "   "
    frame.loc[2, "label"] = None
    frame.loc[3, ["review", "label"]] = None
    source = tmp_path / "gaps.xlsx"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.rows_read == 40 and summary.rows_kept == 36
    assert summary.dropped == {EMPTY_TEXT: 3, EMPTY_LABEL: 1}
    assert "dropped 3 empty text, 1 empty label" in summary.format()


def test_numeric_labels_are_strings_without_decimals(tmp_path):
    frame = labeled_frame()
    frame["label"] = [1.0 if label == "pos" else 0.0 for label in frame["label"]]
    source = tmp_path / "numbers.parquet"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.labels == ["0", "1"]
    assert set(load_docs(tmp_path / "corpus" / "train.spacy")[0].cats) == {"0", "1"}


def test_numbers_and_long_strings_in_text_column(tmp_path):
    frame = labeled_frame()
    frame["review"] = frame["review"].astype(object)
    frame.loc[0, "review"] = 12345
    frame.loc[1, "review"] = "long " * 20_000  # 100,000 characters
    source = tmp_path / "mixed.jsonl"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.rows_kept == 40
    texts = {
        doc.text
        for split in ("train", "dev", "test")
        for doc in load_docs(tmp_path / "corpus" / f"{split}.spacy")
    }
    assert "12345" in texts and "long " * 20_000 in texts


def test_single_class_is_refused(tmp_path):
    frame = labeled_frame(labels=("pos",))
    source = tmp_path / "one.csv"
    write_table(frame, source)
    with pytest.raises(BertclsError, match=r"only one class \('pos', 20 rows\)"):
        convert(source, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_copies_of_a_text_stay_in_one_split(tmp_path):
    frame = labeled_frame(n_per_label=30)
    # Rows 40..59 repeat rows 0..19 (some with other case and spacing): 40 distinct texts.
    copies = frame.iloc[:20].copy()
    copies["review"] = [t.upper() if i % 2 else f"  {t}  " for i, t in enumerate(copies["review"])]
    frame = pd.concat([frame.iloc[:40], copies], ignore_index=True)
    source = tmp_path / "dupes.csv"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.rows_kept == 60  # kept, not removed
    split_of: dict[str, set[str]] = {}
    for split in ("train", "dev", "test"):
        for doc in load_docs(summary.output_paths[split]):
            split_of.setdefault(" ".join(doc.text.casefold().split()), set()).add(split)
    assert len(split_of) == 40 and all(len(splits) == 1 for splits in split_of.values())
    assert summary.duplicate_texts == 0
    assert sum(summary.split_sizes.values()) == 60


def test_no_duplicates_reported_as_none(tmp_path):
    source = tmp_path / "unique.csv"
    write_table(labeled_frame(), source)
    summary = convert(source, tmp_path / "corpus")
    assert summary.duplicate_texts == 0
    assert "no text occurs in more than one split" in summary.format()


def test_missing_column_lists_columns(tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    with pytest.raises(BertclsError, match=r"'lable' \(did you mean 'label'\?\).*'id', 'review'"):
        convert(source, tmp_path / "corpus", label_column="lable")


def test_missing_file(tmp_path):
    with pytest.raises(BertclsError, match="does not exist"):
        convert(tmp_path / "nope.csv", tmp_path / "corpus")


def test_header_only_file_has_no_usable_rows(tmp_path):
    source = tmp_path / "header.csv"
    source.write_text("review,label\n")
    with pytest.raises(BertclsError, match="no usable rows"):
        convert(source, tmp_path / "corpus")


def test_rare_label_is_refused_with_advice(tmp_path):
    frame = pd.concat([labeled_frame(), labeled_frame(2, labels=("rare",))])
    source = tmp_path / "rare.csv"
    write_table(frame, source)
    with pytest.raises(BertclsError, match=r"fewer distinct texts than the 3 splits: 'rare' \(2\)"):
        convert(source, tmp_path / "corpus")
    summary = convert(source, tmp_path / "corpus", dev_size=0.0)  # two splits are enough
    assert summary.label_counts["test"]["rare"] == 1 and summary.split_sizes["dev"] == 0
    assert "dev.spacy is empty (dev_size=0)" in summary.format()


def test_split_smaller_than_label_count_is_refused(tmp_path):
    frame = labeled_frame(3, labels=tuple("abcdefgh"))
    source = tmp_path / "many.csv"
    write_table(frame, source)
    with pytest.raises(BertclsError, match=r"test gets 3 of 24 distinct texts for 8 labels.*Raise"):
        convert(source, tmp_path / "corpus")


def test_rare_label_left_out_by_rounding_is_moved_into_dev_and_test(tmp_path):
    frame = pd.concat([labeled_frame(60), labeled_frame(3, labels=("rare",))])
    source = tmp_path / "rounding.csv"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus")
    for split in ("train", "dev", "test"):
        assert summary.label_counts[split].get("rare", 0) >= 1


@pytest.mark.parametrize(
    ("dev_size", "test_size", "message"),
    [
        (-0.1, 0.1, "dev_size must be"),
        (0.1, 1.0, "test_size must be"),
        (0.5, 0.5, "below 1"),
        (0.5, 0.49, "train gets 0 of 40 distinct texts for 2 labels.*Lower"),
    ],
)
def test_bad_split_sizes(tmp_path, dev_size, test_size, message):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    with pytest.raises(BertclsError, match=message):
        convert(source, tmp_path / "corpus", dev_size=dev_size, test_size=test_size)


def test_same_text_and_label_column_is_refused(tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    with pytest.raises(BertclsError, match="both 'review'"):
        convert(source, tmp_path / "corpus", label_column="review")


def test_multi_label(tmp_path):
    frame = labeled_frame()
    frame["label"] = [
        f"{label}; extra " if i % 2 else f"{label};" for i, label in enumerate(frame["label"])
    ]
    source = tmp_path / "multi.csv"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus", multi_label_sep=";")
    assert summary.multi_label and summary.labels == ["extra", "neg", "pos"]
    doc = next(d for d in load_docs(tmp_path / "corpus" / "train.spacy") if d.cats["extra"])
    assert sum(doc.cats.values()) == 2.0


def test_multi_label_falls_back_to_plain_split(tmp_path):
    frame = labeled_frame()
    frame.loc[0, "label"] = "unique;pos"
    source = tmp_path / "multi.csv"
    write_table(frame, source)
    summary = convert(source, tmp_path / "corpus", multi_label_sep=";")
    assert sum(summary.split_sizes.values()) == 40
    assert "plain shuffled split" in summary.format()


def test_unknown_language(tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    with pytest.raises(BertclsError, match="no language 'english'"):
        convert(source, tmp_path / "corpus", lang="english")


def test_existing_output_is_replaced(tmp_path):
    source = tmp_path / "reviews.csv"
    write_table(labeled_frame(), source)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.spacy").write_text("old")
    convert(source, tmp_path / "corpus")
    assert len(load_docs(tmp_path / "corpus" / "train.spacy")) == 32
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == [
        "dev.spacy",
        "test.spacy",
        "train.spacy",
    ]


@needs_data
def test_sms_spam(tmp_path):
    summary = convert_table(SMS, text_column="SMS", label_column="Label", out_dir=tmp_path)
    assert summary.rows_read == summary.rows_kept == 5574
    assert summary.labels == ["ham", "spam"]
    assert sum(summary.split_sizes.values()) == 5574
    total = {
        label: sum(summary.label_counts[s][label] for s in summary.label_counts)
        for label in summary.labels
    }
    assert total == {"ham": 4827, "spam": 747}
    # The corpus repeats some messages; copies stay in one split.
    assert summary.duplicate_texts == 0


def test_write_corpus_one_or_several_labels_per_text(tmp_path):
    path = write_corpus(
        tmp_path / "c.spacy", ["good one", "bad", "both"], ["a", ["b"], ["a", "b"]], ["a", "b", "c"]
    )
    docs = load_docs(path)
    assert [doc.text for doc in docs] == ["good one", "bad", "both"]
    assert [doc.cats for doc in docs] == [
        {"a": 1.0, "b": 0.0, "c": 0.0},
        {"a": 0.0, "b": 1.0, "c": 0.0},
        {"a": 1.0, "b": 1.0, "c": 0.0},
    ]
    with pytest.raises(BertclsError, match=r"\['x'\] are not among the labels"):
        write_corpus(tmp_path / "d.spacy", ["t"], ["x"], ["a", "b"])
    with pytest.raises(BertclsError, match="2 texts but 1 rows"):
        write_corpus(tmp_path / "d.spacy", ["t", "u"], ["a"], ["a", "b"])
    assert not (tmp_path / "d.spacy").exists()
