"""The window's size, splitters and tab, remembered between runs and fitted to the screen.
A mixin of ``MainWindow``."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QShowEvent
from PySide6.QtWidgets import QSplitter

#: The share of the screen a first start takes; later starts use the remembered geometry.
FIRST_START_SHARE = 0.9


class LayoutMixin:
    def _restore_layout(self) -> None:
        self._splitters_restored = False
        geometry = self.settings.value("layout/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self._fit_screen()
        self._keep_on_screen()
        state = self.settings.value("layout/windowState")
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("layout/view")
        if tab is not None:
            self.views.setCurrentIndex(int(tab))

    def _available(self):
        screen = self.screen() or QGuiApplication.primaryScreen()
        return screen.availableGeometry() if screen is not None else None

    def _fit_screen(self) -> None:
        """Most of the screen, centred: 1280x800 and 1920x1080 alike."""
        area = self._available()
        if area is None:
            self.resize(1280, 800)
            return
        width = int(area.width() * FIRST_START_SHARE)
        height = int(area.height() * FIRST_START_SHARE)
        self.resize(width, height)
        self.move(area.x() + (area.width() - width) // 2, area.y() + (area.height() - height) // 2)
        self.table_splitter.setSizes([int(width * 0.72), int(width * 0.28)])

    def _keep_on_screen(self) -> None:
        """A geometry remembered on a bigger screen is shrunk to this one."""
        area = self._available()
        if area is None or self.isMaximized():
            return
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        width = min(self.width(), area.width() - extra_w)
        height = min(self.height(), area.height() - extra_h)
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        x = min(max(self.x(), area.x()), area.right() - self.frameGeometry().width() + 1)
        y = min(max(self.y(), area.y()), area.bottom() - self.frameGeometry().height() + 1)
        self.move(x, y)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._splitters_restored:
            # Once the window has its restored size, so the saved sizes apply as they were.
            self._splitters_restored = True
            self.layout().activate()
            for key, splitter in self._splitters().items():
                value = self.settings.value(f"layout/{key}")
                if value is not None:
                    splitter.restoreState(value)

    def _splitters(self) -> dict[str, QSplitter]:
        return {
            "tableSplitter": self.table_splitter,
            "evaluationSplitter": self.evaluation_panel.splitter,
            "pipelineSplitter": self.pipeline_panel.splitter,
        }

    def save_layout(self) -> None:
        self.settings.setValue("layout/geometry", self.saveGeometry())
        self.settings.setValue("layout/windowState", self.saveState())
        for key, splitter in self._splitters().items():
            self.settings.setValue(f"layout/{key}", splitter.saveState())
        self.settings.setValue("layout/view", self.views.currentIndex())
        self.settings.sync()
