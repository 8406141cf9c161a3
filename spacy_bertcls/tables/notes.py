"""What readers tell the caller besides the rows.

Reading reports what it could not read as the file meant it (formulas without values, a .txt
file without a final line end) as notes: appended to the `notes` list a caller passes, or
issued as a `TableWarning`.
"""

from __future__ import annotations

import warnings


class TableWarning(UserWarning):
    """Something a reader read differently from what the file meant (see the module doc)."""


def note(notes: list[str] | None, message: str) -> None:
    """Append `message` to `notes`, or issue it as a `TableWarning` when `notes` is None."""
    if notes is None:
        warnings.warn(message, TableWarning, stacklevel=3)
    else:
        notes.append(message)
