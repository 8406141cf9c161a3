"""Start the desktop app: ``bertcls-gui [--pipeline PATH] [--file PATH] [--text-column NAME]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: an optional pipeline and file to open at start."""
    parser = argparse.ArgumentParser(
        prog="bertcls-gui",
        description="Label a spreadsheet with a trained pipeline; inspect, correct, evaluate.",
    )
    parser.add_argument("--pipeline", metavar="PATH", help="a trained pipeline folder to load")
    parser.add_argument("--file", metavar="PATH", help="a table file to open")
    parser.add_argument(
        "--text-column", metavar="NAME", help="text_column of --file (guessed when left out)"
    )
    return parser.parse_args(list(sys.argv[1:] if argv is None else argv))


def build_window(args: argparse.Namespace, settings: QSettings | None = None) -> MainWindow:
    """The main window with ``--pipeline`` and ``--file`` loading (in the background)."""
    window = MainWindow(settings=settings)
    if args.pipeline:
        window.load_pipeline(args.pipeline)
    if args.file:
        window.open_file(args.file, text_column=args.text_column)
    return window


def main(argv: list[str] | None = None) -> int:
    """Run the app until its window closes; returns the exit code."""
    args = parse_args(argv)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "bertcls-gui"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("bertcls")
    window = build_window(args)
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
