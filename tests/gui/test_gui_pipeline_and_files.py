"""Loading pipelines and files: info panel, recent lists, formats, sheets, bad input."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import spacy
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from .gui_support import LABELS, TRAIN, label, load, make_pipeline, make_rows, wait_idle

pytestmark = pytest.mark.gui


def test_load_pipeline_shows_info_and_is_remembered(qtbot, make_window, pipeline_dir, settings):
    window = make_window()
    load(qtbot, window, pipeline=pipeline_dir)
    info = window.session.pipeline_info
    assert info.labels == LABELS
    assert info.text_classifier == "textcat" and info.factory == "textcat"
    assert info.scores["cats_score"] == 0.91
    assert info.freeze_encoder is None  # spaCy's textcat has no freeze_encoder setting
    shown = window.pipeline_panel.info.toPlainText()
    for text in ("tiny_sentiment", "negative", "neutral", "positive", "cats_score\n0.9100"):
        assert text in shown
    assert "freeze_encoder\n— (no freeze_encoder setting)" in shown
    assert window.filters.label_filter.count() == 1 + len(LABELS)
    # Remembered across runs: a new window with the same settings lists it.
    window.close()
    again = make_window(settings)
    assert again.recent_pipelines.items()[0] == str(pipeline_dir.resolve())
    assert again.pipeline_panel.recent_list.count() == 1
    assert any(str(pipeline_dir) in a.text() for a in again.recent_pipelines_menu.actions())
    # ... and the settings went to the temporary INI file, not the user's.
    assert Path(settings.fileName()).is_file()


def test_info_for_bert_textcat(bert_pipeline_dir, tiny_encoder):
    """The Pipeline tab shows `pipeline_info`: plain values (freeze_encoder a bool), every fact
    worded by `PipelineInfo.facts` as `bertcls info` prints it."""
    from spacy_bertcls.pipelines import load_pipeline, pipeline_info
    from spacy_bertcls_gui.pipeline_panel import info_html

    nlp = load_pipeline(bert_pipeline_dir)
    nlp.meta["performance"] = {
        "cats_macro_f": 0.81,
        "cats_f_per_type": {"positive": {"p": 0.8, "r": 0.7, "f": 0.75}},
        "speed": 1234,
    }
    info = pipeline_info(nlp)
    assert info.path == str(bert_pipeline_dir)
    assert info.text_classifier == "bert_textcat" and info.factory == "bert_textcat"
    assert info.encoder == tiny_encoder and info.freeze_encoder is False
    assert info.class_weights_used is None and info.settings["class_weights"] is None
    assert info.scores["cats_f_per_type.positive.f"] == 0.75 and info.scores["speed"] == 1234
    assert info.settings["model.max_length"] == 32
    page = info_html(info)
    for caption, text in info.facts():
        assert html.escape(caption) in page
        assert caption == "Labels" or html.escape(text) in page
    assert "false (fine-tuned encoder)" in page and "none (unweighted)" in page
    assert "cats_macro_f" in page and "Per label" in page and "0.7000" in page
    frozen = replace(info, freeze_encoder=True, class_weights_used={"negative": 2.0})
    page = info_html(frozen)
    assert "true (frozen encoder: only the head was trained)" in page and "negative=2" in page


def test_float_gold_column_matches_labels_0_and_1(qtbot, window, tmp_path):
    """Parquet (and Excel) give a 0/1 column with an empty cell as floats 0.0/1.0/NaN; they are
    the labels "0" and "1", as `bertcls evaluate` reads them: the app guesses that column as
    gold and marks the rows whose prediction differs from it."""
    pipeline = make_pipeline(tmp_path / "binary", labels=["0", "1"])
    texts = TRAIN["negative"] + TRAIN["neutral"]
    gold = [0.0] * 10 + [1.0] * 10
    gold[0], gold[10], gold[5] = 1.0, 0.0, np.nan  # two wrong gold labels and one missing
    table = tmp_path / "binary.parquet"
    pd.DataFrame({"text": texts, "is_question": gold}).to_parquet(table)
    load(qtbot, window, pipeline, table)
    model = window.model
    assert window.session.frame["is_question"].dtype == np.float64
    assert window.session.gold_column == "is_question"
    label(qtbot, window)
    column = model.column_index("predicted_label")
    marked = [
        model.data(model.index(row, column), Qt.ItemDataRole.ForegroundRole) is not None
        for row in range(model.rowCount())
    ]
    predicted = [
        window.session.results.predicted_label(model.source_row(row))
        for row in range(model.rowCount())
    ]
    expected = [
        not np.isnan(gold[model.source_row(row)])
        and predicted[row] != str(int(gold[model.source_row(row)]))
        for row in range(model.rowCount())
    ]
    assert marked == expected and sum(marked) >= 2  # at least the two wrong gold labels


def test_folder_that_is_not_a_pipeline(qtbot, window, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    window.load_pipeline(tmp_path)
    wait_idle(qtbot, window)
    assert window.session.nlp is None
    title, message = window.dialogs.errors[-1]
    assert title == "Could not load the pipeline"
    assert "not a spaCy pipeline" in message
    window.load_pipeline(tmp_path / "missing")
    wait_idle(qtbot, window)
    assert "does not exist" in window.dialogs.errors[-1][1]
    assert str((tmp_path / "missing").resolve()) not in window.recent_pipelines.items()


@pytest.fixture(scope="module")
def bert_pipeline_dir(tiny_encoder, tmp_path_factory) -> Path:
    """A bert_textcat pipeline on the tiny random BERT (initialized, not trained)."""
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe(
        "bert_textcat", config={"model": {"encoder": tiny_encoder, "max_length": 32, "stride": 16}}
    )
    for name in LABELS:
        textcat.add_label(name)
    nlp.initialize()
    path = tmp_path_factory.mktemp("bert_pipeline") / "tiny_bert"
    nlp.to_disk(path)
    return path


def test_damaged_or_code_running_pipeline_shows_a_message(
    qtbot, window, bert_pipeline_dir, tmp_path
):
    """A pipeline with a cut-short head, or one asking to run its own code: a dialog that
    names the problem, no traceback, and no code run."""
    window.load_pipeline(bert_pipeline_dir)
    wait_idle(qtbot, window)
    intact = window.session.nlp
    assert intact is not None  # the intact copy loads, and stays loaded after the failures
    damaged = tmp_path / "damaged"
    shutil.copytree(bert_pipeline_dir, damaged)
    head = damaged / "bert_textcat" / "model" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:100])
    window.load_pipeline(damaged)
    wait_idle(qtbot, window)
    assert window.session.nlp is intact
    title, message = window.dialogs.errors[-1]
    assert title == "Could not load the pipeline"
    assert "head.safetensors is damaged" in message and "Traceback" not in message

    code = tmp_path / "code"
    shutil.copytree(bert_pipeline_dir, code)
    encoder = code / "bert_textcat" / "model" / "encoder"
    marker = tmp_path / "code_ran"
    (encoder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((encoder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (encoder / "config.json").write_text(json.dumps(config))
    window.load_pipeline(code)
    wait_idle(qtbot, window)
    assert window.session.nlp is intact
    assert "asks to run its own code" in window.dialogs.errors[-1][1]
    assert not marker.exists()


def test_table_with_duplicate_column_names_is_refused(qtbot, window, tmp_path):
    table = tmp_path / "dupes.csv"
    table.write_text("text,note,note\nhello,a,b\n")
    window.open_file(table)
    wait_idle(qtbot, window)
    assert window.session.file_path is None
    assert "several columns named 'note'" in window.dialogs.errors[-1][1]


def test_reading_warnings_are_shown(qtbot, window, tmp_path):
    """Formula cells without a saved value: the app says so, as the command line does."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["text", "n"])
    workbook.active.append(["hello there", "=1+1"])
    workbook.save(tmp_path / "formulas.xlsx")
    window.open_file(tmp_path / "formulas.xlsx")
    wait_idle(qtbot, window)
    assert window.session.file_path == tmp_path / "formulas.xlsx"
    title, message = window.dialogs.infos[-1]
    assert title == "Read formulas.xlsx with warnings"
    assert "1 formula cells" in message or "1 formula cell" in message


def test_open_csv_guesses_columns(qtbot, window, pipeline_dir, sample_csv):
    load(qtbot, window, pipeline_dir, sample_csv)
    model = window.model
    assert model.rowCount() == 300
    assert window.session.text_column == "text"
    assert window.table_panel.text_column_combo.currentData() == "text"
    assert (
        window.session.gold_column == "airline_sentiment"
    )  # every filled cell is a pipeline label
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[:4] == ["id", "airline_sentiment", "text", "airline"]
    assert headers[4:] == [
        "predicted_label",
        "confidence",
        "prob_negative",
        "prob_neutral",
        "prob_positive",
        "corrected_label",
    ]
    assert window.table.columnWidth(2) >= 400  # the text column gets room
    assert "300 rows" in window.table_panel.file_label.text()
    assert window.recent_files.items()[0] == str(sample_csv.resolve())


@pytest.mark.parametrize("suffix", [".tsv", ".parquet", ".jsonl", ".txt"])
def test_open_other_formats(qtbot, window, tmp_path, suffix):
    frame = make_rows(40)
    path = tmp_path / f"rows{suffix}"
    if suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        path.write_text("\n".join(frame["text"].fillna("")) + "\n")
    load(qtbot, window, table=path)
    assert window.session.text_column == "text"
    assert window.model.rowCount() >= 36


def test_excel_with_several_sheets_asks_which(qtbot, window, tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["x"]}).to_excel(writer, sheet_name="About", index=False)
        make_rows(20).to_excel(writer, sheet_name="Data", index=False)
    window.dialogs.sheet_answer = "Data"
    load(qtbot, window, table=path)
    assert window.dialogs.sheets == [["About", "Data"]]
    assert window.session.sheet == "Data"
    assert window.model.rowCount() == 20
    # Cancelling the sheet picker opens nothing.
    window.dialogs.sheet_answer = None
    other = tmp_path / "book2.xlsx"
    path.rename(other)
    window.open_file(other)
    wait_idle(qtbot, window)
    assert window.session.file_path == path


def test_change_text_column_and_gold_column(qtbot, window, pipeline_dir, sample_csv):
    load(qtbot, window, pipeline_dir, sample_csv)
    window.set_text_column("airline")
    assert window.session.text_column == "airline"
    window.set_gold_column(None)
    assert window.session.gold_column is None
    assert not window.evaluate_action.isEnabled()


def test_unreadable_files(qtbot, window, tmp_path):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a zip file")
    window.open_file(broken)
    wait_idle(qtbot, window)
    assert window.session.file_path is None
    assert window.dialogs.errors, "a dialog names the problem"
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n3,4,5,6\n")
    window.open_file(bad_csv)
    wait_idle(qtbot, window)
    assert window.session.file_path is None
    assert "bad.csv" in window.dialogs.errors[-1][1]
    window.open_file(tmp_path / "nothing.csv")
    assert "does not exist" in window.dialogs.errors[-1][1]
    other = tmp_path / "data.xls"
    other.write_text("x")
    window.open_file(other)
    assert "unsupported suffix" in window.dialogs.errors[-1][1]


def test_missing_text_column_named_at_start(qtbot, window, sample_csv):
    window.open_file(sample_csv, text_column="tweet_text")
    wait_idle(qtbot, window)
    title, message = window.dialogs.errors[-1]
    assert title == "Missing text column"
    assert "'tweet_text'" in message and "'text'" in message
    assert window.session.text_column == "text"  # guessed instead


def test_drag_and_drop_file_and_pipeline(qtbot, window, pipeline_dir, sample_csv):
    for path in (pipeline_dir, sample_csv):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        event = QDropEvent(
            QPointF(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        window.dropEvent(event)
        wait_idle(qtbot, window)
    assert window.session.nlp is not None
    assert window.session.file_path == sample_csv


def test_recent_files_menu_opens_file(qtbot, make_window, settings, sample_csv):
    first = make_window()
    load(qtbot, first, table=sample_csv)
    second = make_window(settings)
    actions = [a for a in second.recent_files_menu.actions() if str(sample_csv) in a.text()]
    assert actions
    actions[0].trigger()
    wait_idle(qtbot, second)
    assert second.session.file_path == sample_csv


def test_column_guesses_on_the_real_data():
    """text_column and gold column guesses on the shared data sets (skipped without them)."""
    from spacy_bertcls.session import guess_gold_column, guess_text_column
    from spacy_bertcls.tables import read_table

    root = Path(__file__).resolve().parents[3] / "shared" / "data"
    tweets = root / "airline_tweets" / "Tweets.csv"
    sms = root / "sms_spam" / "SMSSpamCollection.tsv"
    if not tweets.exists() or not sms.exists():
        pytest.skip("../shared/data is not available")
    frame = read_table(tweets, nrows=3000)
    assert guess_text_column(frame) == "text"
    assert guess_gold_column(frame, LABELS, "text") == "airline_sentiment"
    frame = read_table(sms, nrows=3000)
    assert guess_text_column(frame) == "SMS"
    assert guess_gold_column(frame, ["ham", "spam"], "SMS") == "Label"


def test_one_question_before_predictions_are_cleared(
    qtbot, labeled_window, second_pipeline_dir, sample_csv
):
    """Loading another pipeline, opening another file and switching text_column ask the same
    question (one implementation), and "no" keeps everything."""
    window = labeled_window
    n = window.session.results.labeled_count()
    window.dialogs.answers[:] = [False, False, False]
    window.load_pipeline(second_pipeline_dir)
    window.open_file(sample_csv)
    other = [c for c in window.session.frame.columns if c != window.session.text_column][0]
    window._on_text_column_chosen(
        window.table_panel.text_column_combo.findData(other)
    )  # as if picked
    wait_idle(qtbot, window)
    titles = [title for title, _ in window.dialogs.questions[-3:]]
    assert titles == ["Load another pipeline?", "Open another file?", "Change text_column?"]
    for _, question in window.dialogs.questions[-3:]:
        assert f"clears the {n:,} predictions and 0 corrections of {sample_csv.name}" in question
    assert window.session.results.labeled_count() == n
