"""Work around a reference-count bug of PySide6 6.12 on Python < 3.12.

PySide6 6.12 returns ``None``, ``True`` and ``False`` from wrapped C++ calls without taking a
reference (fine on Python 3.12+, where those objects are immortal). On Python 3.10/3.11 every
``label.setText(...)``, ``signal.emit(...)``, ``painter.fillRect(...)`` or ``processEvents()``
then drops one reference that was never taken, and after a few thousand calls (a few seconds
of scrolling a table) Python aborts with "Fatal Python error: none_dealloc". Measured in this
project's environment: -1 reference to ``None`` per ``QLabel.setText`` call, -1 to ``True`` per
``Signal.emit``.

The fix gives these three singletons a reference count so large that the leak can never drain
it, which is what Python 3.12 does for them anyway. Nothing else changes: CPython never frees
these objects.

pyproject.toml now keeps PySide6 below 6.12 (6.11.3 has no such leak, measured), because
6.12.0 also crashed the GUI tests at random with this workaround in place; it stays for
environments that have 6.12 installed anyway.
"""

from __future__ import annotations

import ctypes
import sys

_PINNED = 1 << 40  # a leak of one reference per call would need ~10**12 calls to drain this


def pin_singletons() -> bool:
    """Make ``None``, ``True`` and ``False`` effectively immortal on CPython < 3.12.

    Returns True when it changed anything. Safe to call more than once (each call adds).
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every PyObject in a release build of CPython.
        refcount = ctypes.c_ssize_t.from_address(id(obj))
        if refcount.value < _PINNED:
            refcount.value += _PINNED
    return True
