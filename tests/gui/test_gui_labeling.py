"""Labeling in the worker: progress, results in the table, cancel, close mid-run, faults."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from typer.testing import CliRunner

from spacy_bertcls.cli import app
from spacy_bertcls.labeling import label_frame
from spacy_bertcls.pipelines import load_pipeline
from spacy_bertcls.tables import read_table

from .gui_support import LABELS, label, load, make_rows, wait_idle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    """100,000 rows: labeling them all would take too long for a test; it runs and is cancelled."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    frame = make_rows(1000)
    pd.concat([frame] * 100, ignore_index=True).assign(id=range(100_000)).to_csv(path, index=False)
    return path


def test_label_fills_table_like_label_frame(qtbot, window, pipeline_dir, sample_csv):
    load(qtbot, window, pipeline_dir, sample_csv)
    progress_seen = []
    window.worker_progress_probe = progress_seen
    label(qtbot, window)
    model = window.model
    assert window.session.results.labeled_count() == 300
    # The same numbers as the core function the CLI uses.
    expected = label_frame(load_pipeline(pipeline_dir), pd.read_csv(sample_csv), text_column="text")
    probs = expected[[f"prob_{label}" for label in LABELS]].to_numpy(dtype=float)
    np.testing.assert_allclose(window.session.results.probs, probs, rtol=1e-5, equal_nan=True)
    exported = window.session.labeled_frame()
    pd.testing.assert_series_equal(exported["predicted_label"], expected["predicted_label"])
    # Empty text cells: no prediction, shown as a dash, and counted.
    empty = expected["text"].isna()
    assert empty.sum() > 0
    assert (window.session.results.predicted[empty.to_numpy()] == -1).all()
    row = int(np.flatnonzero(empty)[0])
    column = model.column_index("predicted_label")
    assert model.data(model.index(model.view_row(row), column)) == "—"
    assert "Labeled 300 rows" in window.statusBar().currentMessage()
    assert window.last_run["state"] == "done"
    # With a gold column, an evaluation follows by itself.
    assert window.evaluation is not None


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl"])
def test_app_export_equals_cli_output(qtbot, window, pipeline_dir, tmp_path, suffix):
    """`bertcls label` and the app's Label + Export write the same cells, empty texts included
    (no label, NaN confidence and probabilities), in every output format."""
    source = tmp_path / "rows.csv"
    rows = make_rows(30)
    rows.loc[7, "text"] = "   "  # blanks only: not sent to the model either
    rows.to_csv(source, index=False)
    cli_out, app_out = tmp_path / f"cli{suffix}", tmp_path / f"app{suffix}"
    command = ["label", str(pipeline_dir), str(source), "--text-column", "text"]
    result = CliRunner().invoke(app, [*command, "--out", str(cli_out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    load(qtbot, window, pipeline_dir, source)
    label(qtbot, window)
    window.export_table(app_out)
    wait_idle(qtbot, window)
    assert not window.dialogs.errors
    from_cli, from_app = read_table(cli_out), read_table(app_out)
    pd.testing.assert_frame_equal(from_app, from_cli)  # cell by cell, dtypes included
    assert from_cli["predicted_label"].isna().tolist() == [i in (5, 7) for i in range(30)]
    if suffix in (".csv", ".jsonl"):  # text formats: the very same bytes
        assert app_out.read_bytes() == cli_out.read_bytes()


def test_cancel_keeps_rows_and_continue_finishes(qtbot, window, pipeline_dir, big_csv):
    load(qtbot, window, pipeline_dir, big_csv)
    chunks = []
    window.start_labeling()
    window.worker.chunk_ready.connect(lambda chunk: chunks.append(len(chunk.rows)))
    qtbot.waitUntil(lambda: window.session.results.labeled_count() > 500, timeout=20000)
    assert window.progress.isVisible() or window.progress.value() > 0
    assert "rows/s" in window.speed_label.text()
    pressed = time.perf_counter()
    window.cancel_button.click()
    qtbot.waitUntil(lambda: not window.is_labeling(), timeout=5000)
    stopped_after = time.perf_counter() - pressed
    assert stopped_after < 1.0, f"cancel took {stopped_after:.2f} s"
    done = window.session.results.labeled_count()
    assert 500 < done < 100_000
    assert window.last_run["state"] == "cancelled"
    assert "kept" in window.statusBar().currentMessage()
    assert max(chunks) <= 512  # chunks small enough to cancel quickly and show progress
    labeled = window.session.results.labeled
    assert labeled[:done].all() and not labeled[done:].any()
    # Label again continues with the rest only (rows done stay done).
    before = window.session.results.probs[:done].copy()
    window.start_labeling()
    assert window.worker.total_rows == 100_000 - done
    window.cancel_labeling()
    qtbot.waitUntil(lambda: not window.is_labeling(), timeout=5000)
    np.testing.assert_array_equal(window.session.results.probs[:done], before)


def test_ui_stays_responsive_while_labeling_100k_rows(qtbot, window, pipeline_dir, big_csv):
    load(qtbot, window, pipeline_dir, big_csv)
    gaps = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    window.start_labeling()
    # While it runs, the table can be scrolled, sorted and filtered.
    qtbot.wait(600)
    window.table.scrollToBottom()
    window.table.sortByColumn(window.model.column_index("confidence"), Qt.SortOrder.AscendingOrder)
    window.filters.search_edit.setText("delayed")
    qtbot.wait(1200)
    timer.stop()
    window.cancel_labeling()
    qtbot.waitUntil(lambda: not window.is_labeling(), timeout=5000)
    assert len(gaps) > 50
    print(
        f"UI timer gaps while labeling: max {max(gaps)} ms, median {sorted(gaps)[len(gaps) // 2]} ms"
    )
    assert max(gaps) < 400, f"the UI thread was blocked for {max(gaps)} ms"
    assert sorted(gaps)[len(gaps) // 2] < 40  # typical frame: about the timer interval
    assert window.session.results.labeled_count() > 0


def test_close_mid_run_asks_then_stops_worker(qtbot, make_window, pipeline_dir, big_csv):
    window = make_window()
    load(qtbot, window, pipeline_dir, big_csv)
    window.start_labeling()
    qtbot.waitUntil(lambda: window.session.results.labeled_count() > 0, timeout=10000)
    worker = window.worker
    window.dialogs.answers = [False]
    assert not window.close()  # "No": the window stays and labeling goes on
    assert worker.isRunning()
    assert "running" in window.dialogs.questions[-1][1]
    window.dialogs.answers = [True]
    assert window.close()
    assert worker.isFinished()  # stopped and waited for, not destroyed while running
    assert worker.state == "cancelled"
    assert window.session.results.labeled_count() > 0


def test_labeling_error_keeps_rows_done(qtbot, window, pipeline_dir, sample_csv, monkeypatch):
    from spacy_bertcls import labeling

    calls = []
    label_chunk = labeling.label_chunk

    def flaky(nlp, texts, rows, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3:
            raise MemoryError("out of memory in chunk 3")
        return label_chunk(nlp, texts, rows, **kwargs)

    monkeypatch.setattr(labeling, "label_chunk", flaky)
    load(qtbot, window, pipeline_dir, sample_csv)
    label(qtbot, window)
    title, message = window.dialogs.errors[-1]
    assert title == "Labeling failed" and "out of memory" in message
    assert window.session.results.labeled_count() == calls[0] + calls[1]
    assert window.last_run["state"] == "failed"


def test_label_without_pipeline_or_file(qtbot, window, pipeline_dir):
    window.start_labeling()
    assert window.dialogs.errors[-1][0] == "No pipeline"
    load(qtbot, window, pipeline_dir)
    window.start_labeling()
    assert window.dialogs.errors[-1][0] == "No file"


def test_file_changed_on_disk_offers_reload_and_keeps_labels(qtbot, window, pipeline_dir, tmp_path):
    path = tmp_path / "rows.csv"
    frame = make_rows(90)
    frame.to_csv(path, index=False)
    load(qtbot, window, pipeline_dir, path)
    label(qtbot, window)
    probs = window.session.results.probs.copy()
    window.session.correct([4], "positive")
    # Another program inserts a row at the top and changes row 10's text.
    changed = frame.copy()
    changed.loc[10, "text"] = "a completely new text"
    changed = pd.concat(
        [
            pd.DataFrame(
                [
                    {
                        "id": -1,
                        "airline_sentiment": "neutral",
                        "text": "new first row",
                        "airline": "A",
                    }
                ]
            ),
            changed,
        ],
        ignore_index=True,
    )
    time.sleep(0.01)
    changed.to_csv(path, index=False)
    window.dialogs.answers = [True]
    qtbot.waitUntil(lambda: len(window.session.frame) == 91, timeout=5000)  # the watcher noticed
    wait_idle(qtbot, window)
    assert window.dialogs.questions[-1][0] == "File changed on disk"
    assert not window.session.results.labeled[0]  # the new row
    assert not window.session.results.labeled[11]  # the changed text
    unchanged = [i for i in range(1, 91) if i != 11 and isinstance(changed.loc[i, "text"], str)]
    np.testing.assert_allclose(
        window.session.results.probs[unchanged], probs[[i - 1 for i in unchanged]]
    )
    assert window.session.results.corrected_label(5) == "positive"
    # Declining a reload keeps the table as it is.
    pd.concat([changed, changed.head(3)]).to_csv(path, index=False)
    window.dialogs.answers = [False]
    qtbot.waitUntil(lambda: len(window.dialogs.questions) >= 2, timeout=5000)
    assert len(window.session.frame) == 91
    # A deleted file: the table stays and a dialog says so.
    path.unlink()
    window.check_file_changed()
    assert window.dialogs.infos[-1][0] == "File removed"
    assert window.session.results.labeled_count() > 80
