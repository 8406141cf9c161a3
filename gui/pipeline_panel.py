"""The Pipeline tab: choose a trained pipeline and see what it is.

The facts come from the pipeline itself: ``nlp.meta`` (name, version, training scores) and the
text classifier's block of ``nlp.config``, shown generically so any component's settings
(``freeze_encoder``, ``class_weights``, ``model.encoder`` for ``bert_textcat``) appear as they are.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from spacy.language import Language

from spacy_bertcls.labeling import find_textcat, pipeline_labels

from .charts import label_color


@dataclass
class PipelineInfo:
    """What the info panel shows about a loaded pipeline."""

    path: str
    name: str
    version: str
    spacy_version: str
    components: list[str]
    textcat: str
    factory: str
    labels: list[str]
    encoder: str | None
    freeze_encoder: bool | None
    class_weights: str | None = None
    settings: list[tuple[str, str]] = field(default_factory=list)
    scores: list[tuple[str, str]] = field(default_factory=list)

    @property
    def training(self) -> str:
        if self.freeze_encoder is None:
            return "not set (the component has no freeze_encoder setting)"
        return (
            "frozen encoder (only the head was trained)"
            if self.freeze_encoder
            else "fine-tuned encoder"
        )


def textcat_name(nlp: Language) -> str:
    """The name of the pipeline's text classifier, whatever ``find_textcat`` returns."""
    found = find_textcat(nlp)
    if isinstance(found, str):
        return found
    if isinstance(found, tuple):
        return str(found[0])
    for name, pipe in nlp.pipeline:
        if pipe is found:
            return name
    raise ValueError("find_textcat returned a component that is not in the pipeline")


def describe_pipeline(nlp: Language, path: str | Path) -> PipelineInfo:
    """Collect the facts about ``nlp`` (loaded from ``path``) for the info panel."""
    name = textcat_name(nlp)
    return pipeline_info(
        path,
        meta=dict(nlp.meta or {}),
        component_config=dict(nlp.config.get("components", {}).get(name, {})),
        textcat=name,
        components=list(nlp.pipe_names),
        labels=list(pipeline_labels(nlp)),
    )


def pipeline_info(
    path: str | Path,
    *,
    meta: dict[str, Any],
    component_config: dict[str, Any],
    textcat: str,
    components: list[str],
    labels: list[str],
) -> PipelineInfo:
    """The facts from a pipeline's meta and its text classifier's config block.

    ``freeze_encoder`` and the encoder (``model.encoder``, or ``model.name`` as spacy-transformers
    calls it) are picked out when the component has them; every setting is listed anyway.
    """
    settings = _flatten(component_config)
    encoder = None
    freeze = None
    for key, value in settings:
        last = key.rsplit(".", 1)[-1]
        if encoder is None and last in ("encoder", "name") and key.startswith("model"):
            encoder = value
        if key == "freeze_encoder":
            freeze = value.lower() == "true"
    class_weights = dict(settings).get("class_weights")
    return PipelineInfo(
        path=str(path),
        name=f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}",
        version=str(meta.get("version", "")),
        spacy_version=str(meta.get("spacy_version", "")),
        components=components,
        textcat=textcat,
        factory=str(component_config.get("factory", "")),
        labels=labels,
        encoder=encoder,
        freeze_encoder=freeze,
        class_weights=class_weights,
        settings=settings,
        scores=_flatten(dict(meta.get("performance") or {}), numbers_only=True),
    )


def info_html(info: PipelineInfo) -> str:
    """The info panel's text as HTML (also used for the screenshot)."""
    e = html.escape
    swatches = " ".join(
        f'<span style="background:{label_color(i).name()}; color:white">&nbsp;{e(label)}&nbsp;</span>'
        for i, label in enumerate(info.labels)
    )
    facts = [
        ("Pipeline", f"{info.name} {info.version}"),
        ("Folder", info.path),
        ("Components", ", ".join(info.components)),
        ("Text classifier", f"{info.textcat} (factory {info.factory})"),
        ("Encoder", info.encoder or "—"),
        ("Training", info.training),
        ("class_weights", info.class_weights if info.class_weights is not None else "—"),
        ("spaCy", info.spacy_version or "—"),
    ]
    rows = "".join(f"<tr><td><b>{e(key)}</b></td><td>{e(value)}</td></tr>" for key, value in facts)
    rows += f"<tr><td><b>Labels</b></td><td>{swatches}</td></tr>"
    parts = [f"<h3>{e(info.name)} {e(info.version)}</h3>", f"<table cellpadding='3'>{rows}</table>"]
    parts.append("<h4>Dev-split scores of the saved model (nlp.meta['performance'])</h4>")
    if info.scores:
        overall = [(key, value) for key, value in info.scores if "_per_type." not in key]
        parts.append(_key_value_table(overall))
        parts.append(_per_type_table(info.scores, info.labels))
    else:
        parts.append("<p><i>No scores stored with this pipeline.</i></p>")
    parts.append(f"<h4>Settings of {e(info.textcat)} (nlp.config)</h4>")
    parts.append(_key_value_table(info.settings))
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


def _flatten(
    data: dict[str, Any], prefix: str = "", numbers_only: bool = False
) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items += _flatten(value, f"{name}.", numbers_only)
        elif isinstance(value, bool):
            items.append((name, str(value).lower()))
        elif isinstance(value, float):
            items.append((name, f"{value:.4f}"))
        elif numbers_only and not isinstance(value, int):
            continue
        else:
            items.append((name, str(value)))
    return items


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
        self.status_label.setText(f"Loaded {info.path}")
        self.info.setHtml(info_html(info))
