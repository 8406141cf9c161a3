"""Starting the app on X11 without the libraries Qt's xcb plugin needs: a message, not an abort."""

from __future__ import annotations

import ctypes
import sys

import pytest

pytest.importorskip("PySide6", reason="the desktop app needs the 'gui' extra (PySide6)")

from spacy_bertcls_gui import app as app_module  # noqa: E402


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
        (
            {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
            "linux",
            False,
        ),
        ({}, "linux", False),  # no display: not the libraries' fault
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"DISPLAY": ":0"}, "win32", False),
    ],
)
def test_uses_xcb(environ, platform, expected):
    assert app_module.uses_xcb(environ, platform) is expected


def test_missing_xcb_packages_names_the_packages():
    assert app_module.missing_xcb_packages(lambda soname: True) == []
    missing = app_module.missing_xcb_packages(lambda soname: "cursor" not in soname)
    assert missing == ["libxcb-cursor0"]
    assert app_module.library_loads("libc.so.6")
    assert not app_module.library_loads("libno-such-library-bertcls.so.0")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Qt's Linux platform")
def test_main_without_xcb_cursor_exits_with_a_message(monkeypatch, capsys):
    real_cdll = ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if "libxcb-cursor.so" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real_cdll(name, *args, **kwargs)

    class NoApplication:
        """Stands in for QApplication: none exists yet, and none may be made."""

        @staticmethod
        def instance():
            return None

        def __init__(self, *args):
            raise AssertionError("QApplication was created: Qt would have aborted")

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(app_module, "QApplication", NoApplication)
    monkeypatch.setenv("DISPLAY", ":0")
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)

    assert app_module.main([]) == 1
    message = capsys.readouterr().err
    assert "libxcb-cursor0" in message
    assert "apt-get install -y libxcb-cursor0 libxkbcommon-x11-0" in message
    assert "QT_QPA_PLATFORM=offscreen" in message
