"""Start the desktop app: ``bertcls-gui [--pipeline PATH] [--file PATH] [--text-column NAME]``."""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import PySide6
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION

# The libraries Qt's X11 (xcb) platform plugin needs that a fresh Debian or Ubuntu may lack, by
# the package that has each: PySide6's wheels do not ship them, and without them Qt aborts with
# "Could not load the Qt platform plugin xcb". The plugin's other X libraries come with libgl1.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
}
# What to install: the above, libxcb-xinerama0 (named by Qt's own install notes) and EGL/GL,
# which QtGui itself needs (without them importing PySide6.QtWidgets fails already).
XCB_PACKAGES = (*XCB_LIBRARIES.values(), "libxcb-xinerama0", "libegl1", "libgl1")


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


def uses_xcb(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will start on its xcb platform (X11): on Linux, with QT_QPA_PLATFORM unset
    (or xcb) and a DISPLAY, outside a Wayland session (where Qt 6 picks its wayland plugin)."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen == "xcb"
    wayland = environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland"
    return bool(environ.get("DISPLAY")) and not wayland


def library_loads(soname: str) -> bool:
    """Whether ``soname`` loads as it will for Qt's plugin: from the system's library path
    (LD_LIBRARY_PATH included), or from PySide6's own Qt/lib, should a wheel ship it there.

    The dynamic loader is asked directly (not ``ctypes.util.find_library``, which reads
    ldconfig's cache and can miss a library that loads), so the check never blocks an app that
    would start."""
    for candidate in (soname, str(Path(PySide6.__file__).parent / "Qt" / "lib" / soname)):
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return True
    return False


def missing_xcb_packages(loads: Callable[[str], bool] = library_loads) -> list[str]:
    """The packages of the xcb libraries (`XCB_LIBRARIES`) that cannot be loaded."""
    return [package for soname, package in XCB_LIBRARIES.items() if not loads(soname)]


def xcb_libraries_message(missing: Sequence[str]) -> str:
    """Why the app cannot start on X11, and what to install (or how to run it headless)."""
    return (
        f"The desktop app cannot start: Qt's X11 (xcb) platform needs system libraries that "
        f"are not installed ({', '.join(missing)}). On Debian or Ubuntu install them with\n\n"
        f"    sudo apt-get install -y {' '.join(XCB_PACKAGES)}\n\n"
        "(other systems: the xcb-cursor, xkbcommon-x11, xcb-icccm, xcb-keysyms, xcb-image, "
        "xcb-render-util and xcb-shape libraries). Without a display, e.g. for tests or "
        "screenshots, run it with QT_QPA_PLATFORM=offscreen."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the app until its window closes; returns the exit code.

    On X11 without the libraries Qt's xcb plugin needs, it prints what to install and returns
    1, instead of letting Qt abort the process.
    """
    args = parse_args(argv)
    if QApplication.instance() is None and uses_xcb(os.environ, sys.platform):
        missing = missing_xcb_packages()
        if missing:
            print(xcb_libraries_message(missing), file=sys.stderr)
            return 1
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "bertcls-gui"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("bertcls")
    window = build_window(args)
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
