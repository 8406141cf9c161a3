"""Drive the app through an analyst's session and save a PNG of each view.

    xvfb-run -s "-screen 0 1280x800x24" python spacy_bertcls_gui/screenshots.py PIPELINE \
        --output screenshots/ [--size 1280x800] [--dark]

Opens the airline tweets (or ``--file``), labels every row, then saves: the labeled table, a
filtered view, the details panel, Try a text, the evaluation (confusion matrix, PR curves),
a table filtered by a confusion-matrix cell, the pipeline info, and the Decision Threshold
dialog (``--threshold``, on ``--threshold-label``). ``--only thresholds`` saves just that
dialog. Settings go to a temporary folder, so the user's recent lists and layout are untouched.
Prints how long labeling took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QItemSelectionModel, QSettings, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from spacy_bertcls_gui.main_window import MainWindow

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "airline_tweets" / "Tweets.csv"
)


def wait_until(condition: Callable[[], bool], timeout: float = 600.0, step_ms: int = 50) -> None:
    """Run the event loop until ``condition()`` holds (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(step_ms)
    timer.timeout.connect(
        lambda: loop.quit() if condition() or time.monotonic() > deadline else None
    )
    timer.start()
    if not condition():
        loop.exec()
    timer.stop()
    if not condition():
        raise TimeoutError(f"gave up after {timeout:.0f} s")


def pause(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def use_dark_palette(app: QApplication) -> None:
    """Fusion with a dark palette, as a dark desktop theme gives the app."""
    app.setStyle("Fusion")
    palette = QPalette()
    dark, darker, text = QColor(45, 45, 48), QColor(30, 30, 30), QColor(230, 230, 230)
    for role, color in (
        (QPalette.ColorRole.Window, dark), (QPalette.ColorRole.Base, darker),
        (QPalette.ColorRole.AlternateBase, dark), (QPalette.ColorRole.Button, dark),
        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, dark),
        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(42, 130, 218)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.Link, QColor(110, 170, 255)),
    ):  # fmt: skip
        palette.setColor(role, color)
    grey = QColor(130, 130, 130)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText,
                 QPalette.ColorRole.ButtonText):  # fmt: skip
        palette.setColor(QPalette.ColorGroup.Disabled, role, grey)
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor(150, 150, 150))
    app.setPalette(palette)


def shot_thresholds(window: MainWindow, args: argparse.Namespace, shot: Callable) -> None:
    """Label > Decision Threshold with the slider moved to ``args.threshold`` (not applied),
    alone and over the window."""
    from spacy_bertcls_gui.threshold_dialog import show_threshold_dialog

    dialog = show_threshold_dialog(window)
    dialog.set_label(args.threshold_label or window.session.labels[-1])
    dialog.set_threshold(args.threshold)
    pause(400)  # the curve's point is drawn after the slider rests
    shot("08_decision_threshold", dialog)
    # The whole screen (under Xvfb: the window with the dialog over it, as a user sees them).
    dialog.move(window.geometry().center() - dialog.rect().center())
    pause(250)
    path = args.output / f"{args.prefix}08b_decision_threshold_over_window.png"
    window.screen().grabWindow(0).save(str(path))
    print(f"saved {path}")
    dialog.close()


def shot_loop(window: MainWindow, args: argparse.Namespace, shot: Callable) -> None:
    """The analyst's loop: Suspect labels (an audit of the gold column), Why this label? on
    the first suspect, corrections, then Label > Retrain and its result. Prints the audit's
    and the retrain's wall times."""
    session = window.session
    started = time.perf_counter()
    window.show_suspect_labels()
    wait_until(lambda: window.job is None and not window.is_busy(), timeout=3600)
    audit_seconds = time.perf_counter() - started
    suspects = session.suspect_rows()
    print(f"audit: {audit_seconds:.1f} s, {suspects.size:,} suspects of {len(session.frame):,}")
    # Predictions for the rows shown, so the table and "Why this label?" have some.
    session.label(suspects[:60])
    window.table_panel.show_row(int(suspects[0]))
    window.detail_panel.why_button.setChecked(True)
    # "Words for <label>: ..." once the attribution is done ("Finding the words…" before).
    wait_until(lambda: "Words for" in window.detail_panel.why_label.text(), timeout=300)
    shot("08_suspect_labels")
    shot("09_why_this_label", window.side_tabs)
    # Accept the audit's suggestion for the ten most suspect rows, as an analyst might.
    window.table_panel.accept_suggestions(suspects[:10])
    dialog = window.open_retrain_dialog()
    started = time.perf_counter()
    dialog.start()
    wait_until(lambda: dialog.job is None, timeout=3600)
    retrain_seconds = time.perf_counter() - started
    if dialog.result is None:
        raise SystemExit(f"the retrain did not finish: {dialog.result_label.text()}")
    print(f"retrain: {retrain_seconds:.1f} s wall in the app")
    print(dialog.result.format())
    shot("10_retrain_result", dialog)
    timings = {"audit_seconds": round(audit_seconds, 1), "retrain_seconds": round(retrain_seconds, 1),
               "new_pipeline": str(dialog.result.pipeline), "file": str(args.file)}  # fmt: skip
    (args.output / f"{args.prefix}loop_timings.json").write_text(json.dumps(timings, indent=2))
    dialog.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", type=Path, help="a trained pipeline folder")
    parser.add_argument(
        "--output", type=Path, default=Path("screenshots"), help="folder for the PNGs"
    )
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the table to label")
    parser.add_argument("--text-column", default=None, help="text_column (guessed if left out)")
    parser.add_argument("--gold-column", default="airline_sentiment", help="gold column, if any")
    parser.add_argument("--prefix", default="", help="prefix for the PNG names")
    parser.add_argument(
        "--try-text", default="Flight was delayed two hours but the crew were lovely, thanks!"
    )
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--dark", action="store_true", help="a dark palette (Fusion style)")
    parser.add_argument(
        "--threshold-label", default=None, help="the label of the threshold scene (default: last)"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.3, help="the threshold the threshold scene shows"
    )
    parser.add_argument(
        "--only",
        choices=["thresholds", "loop"],
        default=None,
        help="save only this scene: thresholds (after labeling), or loop: Suspect labels, "
        "Why this label? and Retrain (audits and retrains, labels only the rows it shows)",
    )
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationDisplayName("bertcls")
    if args.dark:
        use_dark_palette(app)
    settings_dir = tempfile.mkdtemp(prefix="bertcls-gui-shots-")
    settings = QSettings(str(Path(settings_dir) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    errors: list[tuple[str, str]] = []
    window._show_error = lambda title, message: errors.append((title, message))
    window._show_info = lambda title, message: None
    window._ask = lambda title, question: True
    width, height = (int(n) for n in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    pause(300)

    def shot(name: str, widget=None) -> None:
        pause(250)  # let the last paint land
        path = args.output / f"{args.prefix}{name}.png"
        (widget or window).grab().save(str(path))
        print(f"saved {path}")

    def check() -> None:
        if errors:
            raise SystemExit(f"the app reported an error: {errors[-1]}")

    window.load_pipeline(args.pipeline)
    wait_until(lambda: not window.is_busy())
    check()
    window.open_file(args.file, text_column=args.text_column)
    wait_until(lambda: not window.is_busy())
    check()
    if args.gold_column in window.session.frame.columns:
        window.set_gold_column(args.gold_column)

    if args.only == "loop":
        shot_loop(window, args, shot)
        window.close()
        return 0

    started = time.perf_counter()
    window.start_labeling()
    pause(1500)
    shot("00_labeling_in_progress")
    wait_until(lambda: not window.is_busy(), timeout=3600)
    wall = time.perf_counter() - started
    check()
    run = dict(window.last_run)
    run.pop("started", None)
    run["wall_seconds_including_evaluation"] = round(wall, 2)
    run["pipeline"] = str(args.pipeline)
    run["file"] = str(args.file)
    print(
        f"labeled {run.get('done')} rows in {run.get('seconds', 0):.1f} s ({run.get('rate', 0):.0f} rows/s)"
    )

    if args.only == "thresholds":
        shot_thresholds(window, args, shot)
        window.close()
        return 0

    model = window.model
    table = window.table

    def select(view_row: int) -> None:
        index = model.index(view_row, model.column_index(window.session.text_column))
        table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        table.scrollTo(index)
        table.horizontalScrollBar().setValue(0)

    window.views.setCurrentIndex(0)
    select(0)
    shot("01_table_labeled")

    window.filters.label_filter.setCurrentIndex(
        window.filters.label_filter.findData(window.session.labels[0])
    )
    window.filters.confidence_min.setValue(0.4)
    window.filters.confidence_max.setValue(0.8)
    window.filters.search_edit.setText("delay")
    window.apply_filters()
    if model.rowCount():
        select(0)
    shot("02_filtered")
    window.clear_filters()

    window.filters.least_confident_button.click()
    # Correct a wrong prediction among the least confident rows, as an analyst would.
    wrong = next(
        (
            r
            for r in range(min(model.rowCount(), 200))
            if window.session.gold_column
            and str(window.session.frame[window.session.gold_column].iat[model.source_row(r)])
            in window.session.labels
            and str(window.session.frame[window.session.gold_column].iat[model.source_row(r)])
            != window.session.results.predicted_label(model.source_row(r))
        ),
        3,
    )
    row = model.source_row(wrong)
    gold = (
        str(window.session.frame[window.session.gold_column].iat[row])
        if window.session.gold_column
        else window.session.labels[-1]
    )
    window.correct_rows([row], gold if gold in window.session.labels else window.session.labels[-1])
    select(wrong)
    shot("03_least_confident_details")
    shot("03b_details_panel", window.side_tabs)

    window.side_tabs.setCurrentWidget(window.try_panel)
    window.try_panel.editor.setPlainText(args.try_text)
    wait_until(lambda: window.try_panel.last_seconds is not None, timeout=60)
    pause(300)
    shot("04_try_a_text")
    run["try_a_text_ms"] = round(1000 * (window.try_panel.last_seconds or 0), 1)

    if window.evaluation is not None:
        window.views.setCurrentIndex(1)
        shot("05_evaluation")
        window.evaluation_panel.plots.setCurrentIndex(1)
        shot("05b_evaluation_reliability")
        window.evaluation_panel.plots.setCurrentIndex(2)
        shot("05c_evaluation_errors")
        window.evaluation_panel.plots.setCurrentIndex(0)
        result = window.evaluation.result
        run["accuracy"] = round(result.accuracy, 4)
        run["macro_f1"] = round(result.macro["f1"], 4)
        # The largest off-diagonal cell: the commonest confusion.
        k = len(result.labels)
        cells = [(result.confusion[i][j], i, j) for i in range(k) for j in range(k) if i != j]
        _, i, j = max(cells)
        window.evaluation_panel.confusion.cellClicked.emit(i, j)
        select(0)
        shot("06_confusion_cell_rows")

    window.views.setCurrentIndex(2)
    shot("07_pipeline_info")
    shot_thresholds(window, args, shot)
    (args.output / f"{args.prefix}timings.json").write_text(json.dumps(run, indent=2) + "\n")
    print(json.dumps(run, indent=2))
    window._ask = lambda title, question: True
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
