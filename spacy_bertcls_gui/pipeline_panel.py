"""The Pipeline tab: choose a trained pipeline and see what it is.

The facts are ``spacy_bertcls.pipelines.pipeline_info``'s, the ones ``bertcls info`` prints, in
the same words: ``nlp.meta`` (name, version, dev scores) and the text classifier's block of
``nlp.config``, every setting as it is (``freeze_encoder``, ``class_weights``, ``model.encoder``).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.pipelines import NO_SCORES, SCORES_HEADING, PipelineInfo

from .charts import label_color


def info_html(info: PipelineInfo) -> str:
    """The info panel's text as HTML (also used for the screenshot): ``info.facts()``, the
    scores and the settings, worded as ``bertcls info`` prints them; labels as color swatches."""
    e = html.escape
    swatches = " ".join(
        f'<span style="background:{label_color(i).name()}; color:white">&nbsp;{e(label)}&nbsp;</span>'
        for i, label in enumerate(info.labels)
    )
    cells = [
        (caption, swatches if caption == "Labels" else e(text)) for caption, text in info.facts()
    ]
    rows = "".join(
        f"<tr><td><b>{e(caption)}</b></td><td>{cell}</td></tr>" for caption, cell in cells
    )
    parts = [f"<h3>{e(info.name)} {e(info.version)}</h3>", f"<table cellpadding='3'>{rows}</table>"]
    parts.append(f"<h4>{e(SCORES_HEADING)}</h4>")
    scores = info.score_lines()
    if scores:
        overall = [(key, value) for key, value in scores if "_per_type." not in key]
        parts.append(_key_value_table(overall))
        parts.append(_per_type_table(scores, info.labels))
    else:
        parts.append(f"<p><i>{e(NO_SCORES)}</i></p>")
    parts.append(f"<h4>{e(info.settings_heading)}</h4>")
    parts.append(_key_value_table(info.setting_lines()))
    return "".join(parts)


# spaCy's per-label scores, e.g. cats_f_per_type.<label>.p and cats_auc_per_type.<label>
_PER_TYPE_COLUMNS = {"p": "precision", "r": "recall", "f": "F1", "": "AUC"}


def _per_type_table(scores: list[tuple[str, str]], labels: list[str]) -> str:
    """Per-label training scores as one table: a row per label, precision/recall/F1/AUC."""
    cells: dict[str, dict[str, str]] = {}
    for key, value in scores:
        if "_per_type." not in key:
            continue
        prefix, rest = key.split("_per_type.", 1)
        # "auc" maps a label to one number; the others map a label to p, r and f.
        label, metric = (rest, "") if prefix.endswith("auc") else rest.rpartition(".")[::2]
        if metric in _PER_TYPE_COLUMNS:
            cells.setdefault(label, {})[_PER_TYPE_COLUMNS[metric]] = value
    if not cells:
        return ""
    columns = [
        name for name in _PER_TYPE_COLUMNS.values() if any(name in c for c in cells.values())
    ]
    order = [label for label in labels if label in cells] + [
        name for name in cells if name not in labels
    ]
    e = html.escape
    head = "".join(f"<th align='right'>{e(name)}</th>" for name in columns)
    rows = "".join(
        f"<tr><td>{e(label)}</td>"
        + "".join(f"<td align='right'>{e(cells[label].get(name, ''))}</td>" for name in columns)
        + "</tr>"
        for label in order
    )
    return f"<p>Per label:</p><table cellpadding='3'><tr><th></th>{head}</tr>{rows}</table>"


def _key_value_table(items: list[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in items
    )
    return f"<table cellpadding='2' border='0'>{rows}</table>"


class PipelinePanel(QWidget):
    """Recent pipelines, an Open button and the loaded pipeline's facts."""

    open_requested = Signal()
    recent_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.open_button = QPushButton("Open Pipeline…")
        self.open_button.clicked.connect(self.open_requested)
        self.recent_list = QListWidget()
        self.recent_list.setToolTip("Double-click to load")
        self.recent_list.itemActivated.connect(
            lambda item: self.recent_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
        )
        recent_box = QGroupBox("Recent pipelines")
        recent_layout = QVBoxLayout(recent_box)
        recent_layout.addWidget(self.recent_list)
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        self.status_label = QLabel("No pipeline loaded.")
        top.addWidget(self.status_label, 1)
        self.info = QTextBrowser()
        self.info.setOpenLinks(False)
        self.info.setHtml(
            "<p><i>Load a trained pipeline folder (e.g. training/model-best).</i></p>"
        )
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("pipelineSplitter")
        self.splitter.addWidget(recent_box)
        self.splitter.addWidget(self.info)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([110, 700])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.current: PipelineInfo | None = None

    def set_recent(self, paths: list[str]) -> None:
        self.recent_list.clear()
        for path in paths:
            item = QListWidgetItem(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(path)
            self.recent_list.addItem(item)

    def set_loading(self, path: str) -> None:
        self.status_label.setText(f"Loading {path} …")

    def set_info(self, info: PipelineInfo | None) -> None:
        self.current = info
        if info is None:
            self.status_label.setText("No pipeline loaded.")
            return
        self.status_label.setText(f"Loaded {info.path or info.name}")
        self.info.setHtml(info_html(info))
