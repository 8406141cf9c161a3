"""Noticing that the open file changed on disk, and offering to reload it (labels are kept
for rows whose text is unchanged). A mixin of ``MainWindow``: it needs the window's dialogs
and its busy state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QTimer


class FileWatchMixin:
    def _setup_file_watch(self) -> None:
        self._file_stat: tuple[int, int] | None = None
        self._pending_file_check = False
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(lambda _: self._watch_timer.start())
        self._watch_timer = QTimer(self)
        self._watch_timer.setSingleShot(True)
        self._watch_timer.setInterval(300)  # editors write in bursts; look once they are done
        self._watch_timer.timeout.connect(self.check_file_changed)

    def _stop_file_watch(self) -> None:
        self._watch_timer.stop()

    @staticmethod
    def _stat(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _watch(self, path: Path, stat: tuple[int, int] | None) -> None:
        """Watch ``path`` (read when it had ``stat``) instead of the file watched so far."""
        for watched in self.watcher.files():
            self.watcher.removePath(watched)
        self.watcher.addPath(str(path))
        self._file_stat = stat

    def _written_over_source(self, path: Path) -> None:
        """Our own write replaced the open file: do not offer to reload it."""
        self._file_stat = self._stat(path)

    def _after_busy(self) -> None:
        if self._pending_file_check and not self.is_busy():
            self._pending_file_check = False
            self.check_file_changed()

    def check_file_changed(self) -> None:
        """If the open file changed on disk, offer to reload it (labels are kept by text)."""
        path = self.session.file_path
        if path is None:
            return
        if str(path) not in self.watcher.files() and path.exists():
            self.watcher.addPath(str(path))  # replaced by rename: watch the new file
        stat = self._stat(path)
        if stat == self._file_stat:
            return
        if self.is_busy():
            self._pending_file_check = True
            self.statusBar().showMessage(
                f"{path.name} changed on disk; asking when the work in progress ends"
            )
            return
        self._file_stat = stat
        if stat is None:
            self._show_info(
                "File removed",
                f"{path} was deleted or moved. The table and its labels stay open here; "
                "export them to keep them.",
            )
            return
        question = (
            f"{path.name} was changed on disk by another program.\n\nReload it? The labels "
            "computed so far are kept for every row whose text is unchanged. "
            "No keeps the version shown now."
        )
        if self._ask("File changed on disk", question):
            self.open_file(path, sheet=self.session.sheet, reload=True)
        else:
            self.statusBar().showMessage(f"Kept the version of {path.name} loaded earlier", 8000)
