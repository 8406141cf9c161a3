"""What the app remembers between runs: recent pipelines and files, the window layout.

Everything goes through one ``QSettings`` object that the window receives, so tests hand it an
INI file in a temporary folder and never touch the user's settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "spacy-bertcls"
APPLICATION = "bertcls-gui"
MAX_RECENT = 8


def open_settings() -> QSettings:
    """The user's settings for the app (native format, per user)."""
    return QSettings(ORGANIZATION, APPLICATION)


class RecentList:
    """A most-recent-first list of paths stored under one settings key."""

    def __init__(self, settings: QSettings, key: str, max_items: int = MAX_RECENT) -> None:
        self._settings = settings
        self._key = key
        self._max_items = max_items

    def items(self) -> list[str]:
        """The stored paths, most recent first."""
        value = self._settings.value(self._key, [])
        if value is None:
            return []
        if isinstance(value, str):
            # QSettings hands back a one-element list as a plain string in some formats.
            value = [value] if value else []
        return [str(item) for item in value if item]

    def add(self, path: str | Path) -> None:
        """Put ``path`` first, dropping an older entry for it and anything past the limit."""
        path = str(Path(path).resolve())
        items = [item for item in self.items() if item != path]
        self._store([path, *items][: self._max_items])

    def remove(self, path: str | Path) -> None:
        """Forget ``path`` (e.g. after it turned out to be gone)."""
        target = str(Path(path).resolve())
        self._store([item for item in self.items() if item not in (str(path), target)])

    def _store(self, items: list[str]) -> None:
        self._settings.setValue(self._key, items)
        self._settings.sync()
