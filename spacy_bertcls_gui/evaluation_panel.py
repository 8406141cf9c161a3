"""The Evaluation tab: scores against a gold column, a clickable confusion matrix, PR curves.

The numbers and plots are :func:`spacy_bertcls.evaluation.evaluate_predictions` and its plot
functions, the same as ``bertcls evaluate`` and its HTML report; this module only lays them out.
A multi-label pipeline's are :func:`spacy_bertcls.evaluation.evaluate_multilabel`'s (as
``bertcls evaluate --multi-label-sep``): per-label scores, micro/macro averages, subset accuracy
and Hamming loss; it has no confusion matrix, so the matrix is hidden.
"""

from __future__ import annotations

import html

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from spacy_bertcls.evaluation import EvaluationResult, MultiLabelResult, format_share
from spacy_bertcls.session import Evaluation, Session

_BLUES = colormaps["Blues"]  # the colormap of the report's confusion matrix


def heat_color(share: float) -> QColor:
    """matplotlib's "Blues" for a share in [0, 1], as in the report's confusion matrix."""
    red, green, blue, _ = _BLUES(min(max(share, 0.0), 1.0))
    return QColor.fromRgbF(red, green, blue)


class ConfusionMatrixView(QTableWidget):
    """Counts or shares of the gold row; rows are gold labels, columns predicted labels.

    Clicking a cell emits ``cell_chosen(gold_label, predicted_label)``. Headers are the bare
    labels (the axis names are in the caption) so they fit at 1280x800.
    """

    cell_chosen = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: list[str] = []
        self._result: EvaluationResult | None = None
        self.show_shares = False
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setMinimumSectionSize(44)
        self.cellClicked.connect(self._on_clicked)
        self.setToolTip(
            "Rows: gold label. Columns: predicted label. Click a cell to show its rows."
        )

    def set_show_shares(self, shares: bool) -> None:
        self.show_shares = shares
        if self._result is not None:
            self.set_result(self._result)

    def set_result(self, result: EvaluationResult) -> None:
        self._result = result
        counts = np.asarray(result.confusion, dtype=np.int64)
        self._labels = list(result.labels)
        k = len(self._labels)
        self.clear()
        self.setRowCount(k)
        self.setColumnCount(k)
        self.setHorizontalHeaderLabels(self._labels)
        self.setVerticalHeaderLabels(self._labels)
        widest = max((self.fontMetrics().horizontalAdvance(label) for label in self._labels),
                     default=40)  # fmt: skip
        self.horizontalHeader().setMinimumSectionSize(max(widest + 16, 60))
        totals = counts.sum(axis=1)
        for i in range(k):
            for j in range(k):
                share = counts[i, j] / totals[i] if totals[i] else 0.0
                if self.show_shares:
                    text = format_share(share) if totals[i] else "—"
                else:
                    text = f"{counts[i, j]:,}"
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(heat_color(share))
                item.setForeground(QColor("white") if share > 0.55 else QColor("black"))
                font = item.font()
                font.setBold(i == j)
                item.setFont(font)
                item.setToolTip(
                    f"gold {self._labels[i]}, predicted {self._labels[j]}: {counts[i, j]:,} rows "
                    f"({share:.1%} of gold {self._labels[i]}). Click to show them in the table."
                )
                self.setItem(i, j, item)

    def _on_clicked(self, row: int, column: int) -> None:
        if 0 <= row < len(self._labels) and 0 <= column < len(self._labels):
            self.cell_chosen.emit(self._labels[row], self._labels[column])


class FigurePane(QWidget):
    """Holds one matplotlib figure on a Qt canvas; a new figure replaces the old canvas."""

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel(placeholder)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self._placeholder)
        self.canvas: FigureCanvasQTAgg | None = None

    def set_figure(self, figure: Figure) -> None:
        if self.canvas is not None:
            self._layout.removeWidget(self.canvas)
            self.canvas.deleteLater()
        self._placeholder.hide()
        self.canvas = FigureCanvasQTAgg(figure)
        self.canvas.setMinimumSize(300, 250)
        self._layout.addWidget(self.canvas)


class EvaluationPanel(QWidget):
    """Summary, per-class table, confusion matrix and plots of one :class:`Evaluation`."""

    evaluate_requested = Signal()
    export_requested = Signal()
    cell_chosen = Signal(str, str)
    error_row_chosen = Signal(int)  # a file row from "most confident errors"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evaluation: Evaluation | None = None
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Compare predicted_label with the gold column")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.export_button = QPushButton("Export Report…")
        self.export_button.setToolTip("Write the HTML report (and JSON, PNG plots) the CLI writes")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_requested)
        self.summary = QLabel("Choose a gold column and label the file, then click Evaluate.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.metrics = QTableWidget(0, 4)
        self.metrics.setHorizontalHeaderLabels(["precision", "recall", "F1", "support"])
        self.metrics.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.confusion = ConfusionMatrixView()
        self.confusion.cell_chosen.connect(self.cell_chosen)
        self.pr_pane = FigurePane("Precision-recall curves appear after an evaluation.")
        self.reliability_pane = FigurePane("The reliability diagram appears after an evaluation.")
        self.errors = QTableWidget(0, 5)
        self.errors.setHorizontalHeaderLabels(
            ["row", "gold", "predicted_label", "confidence", "text"]
        )
        self.errors.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.errors.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.errors.horizontalHeader().setStretchLastSection(True)
        self.errors.verticalHeader().hide()
        self.errors.cellDoubleClicked.connect(self._on_error_clicked)
        self.plots = QTabWidget()
        self.plots.addTab(self.pr_pane, "Precision-recall curves")
        self.plots.addTab(self.reliability_pane, "Reliability")
        self.plots.addTab(self.errors, "Most confident errors")

        buttons = QHBoxLayout()
        buttons.addWidget(self.evaluate_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.summary)
        left_layout.addWidget(self.metrics)
        self.matrix_caption = matrix_caption = QLabel(
            "Confusion matrix: rows are the gold label, columns predicted_label. "
            "Click a cell to show its rows."
        )
        matrix_caption.setWordWrap(True)
        self.shares_box = QCheckBox("shares of the gold row")
        self.shares_box.setToolTip("Show each cell as a share of its gold row instead of a count")
        self.shares_box.toggled.connect(self.confusion.set_show_shares)
        caption_row = QHBoxLayout()
        caption_row.addWidget(matrix_caption, 1)
        caption_row.addWidget(self.shares_box)
        left_layout.addLayout(caption_row)
        left_layout.addWidget(self.confusion, 1)
        # Takes the room of the hidden matrix (multi-label), so the scores stay at the top.
        left_layout.addStretch(0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("evaluationSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.plots)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

    def set_evaluation(self, evaluation: Evaluation, session: Session) -> None:
        self.evaluation = evaluation
        self._session = session
        result = evaluation.result
        if isinstance(result, MultiLabelResult):
            self._set_multilabel(evaluation, result)
            return
        self._show_matrix(True)
        self.metrics.setMinimumWidth(0)
        self.errors.setHorizontalHeaderItem(2, QTableWidgetItem("predicted_label"))
        e = html.escape
        lines = [
            f"<b>accuracy {result.accuracy:.3f}</b> · macro F1 {result.macro['f1']:.3f} · "
            f"weighted F1 {result.weighted['f1']:.3f} · "
            f"{result.n_evaluated:,} rows evaluated against <b>{e(evaluation.gold_column)}</b>"
        ]
        # Dark amber on a light window, light amber on a dark one: readable in both themes.
        dark = self.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5
        amber = "#f0c674" if dark else "#8a6d00"
        lines += [f"<span style='color:{amber}'>⚠ {e(note)}</span>" for note in result.notes()]
        self.summary.setText("<br>".join(lines))
        self._fill_metrics(result)
        self.confusion.set_result(result)
        self.pr_pane.set_figure(evaluation.pr_figure)
        self.reliability_pane.set_figure(evaluation.reliability_figure)
        self._fill_errors(evaluation)
        self.export_button.setEnabled(True)

    def _show_matrix(self, shown: bool) -> None:
        for widget in (self.matrix_caption, self.shares_box, self.confusion):
            widget.setVisible(shown)

    def _set_multilabel(self, evaluation: Evaluation, result: MultiLabelResult) -> None:
        """The numbers ``bertcls evaluate --multi-label-sep`` prints, without a confusion
        matrix (labels are not exclusive)."""
        e = html.escape
        lines = [
            f"<b>micro F1 {result.micro['f1']:.3f}</b> · macro F1 {result.macro['f1']:.3f} · "
            f"subset accuracy {result.subset_accuracy:.3f} · "
            f"Hamming loss {result.hamming_loss:.3f}",
            f"{result.n_scored:,} of {result.n_rows:,} rows scored against the label sets of "
            f"<b>{e(evaluation.gold_column)}</b> (labels joined by “;”)",
        ]
        dark = self.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5
        amber = "#f0c674" if dark else "#8a6d00"
        lines += [f"<span style='color:{amber}'>⚠ {e(note)}</span>" for note in result.notes()]
        self.summary.setText("<br>".join(lines))
        n_gold = sum(int(scores["support"]) for scores in result.per_label.values())
        rows = list(result.per_label.items())
        rows += [(f"{name} avg", {**getattr(result, name), "support": n_gold})
                 for name in ("micro", "macro", "weighted")]  # fmt: skip
        self._fill_rows(rows)
        self._show_matrix(False)
        # Long label names: the per-label table keeps room for its numbers (the splitter
        # would otherwise squeeze them to "…" beside a dozen PR curves).
        names = max(self.fontMetrics().horizontalAdvance(name) for name, _ in rows)
        self.metrics.setMinimumWidth(names + 4 * 80 + 30)
        self.pr_pane.set_figure(evaluation.pr_figure)
        self.reliability_pane.set_figure(evaluation.reliability_figure)
        self.errors.setHorizontalHeaderItem(2, QTableWidgetItem("predicted_labels"))
        self._fill_errors(evaluation)
        self.export_button.setEnabled(True)

    def clear(self, message: str = "") -> None:
        self.evaluation = None
        self.export_button.setEnabled(False)
        if message:
            self.summary.setText(html.escape(message))

    def _fill_metrics(self, result: EvaluationResult) -> None:
        rows = [(label, scores) for label, scores in result.per_class.items()]
        rows.append(("macro avg", {**result.macro, "support": result.n_evaluated}))
        rows.append(("weighted avg", {**result.weighted, "support": result.n_evaluated}))
        self._fill_rows(rows)

    def _fill_rows(self, rows: list[tuple[str, dict]]) -> None:
        """One row of precision, recall, F1 and support per (name, scores)."""
        self.metrics.setRowCount(len(rows))
        self.metrics.setVerticalHeaderLabels([name for name, _ in rows])
        height = self.metrics.horizontalHeader().height() + 2 * self.metrics.frameWidth()
        height += sum(self.metrics.verticalHeader().sectionSize(i) for i in range(len(rows)))
        self.metrics.setFixedHeight(height + 2)
        for i, (_, scores) in enumerate(rows):
            values = [
                f"{scores['precision']:.3f}",
                f"{scores['recall']:.3f}",
                f"{scores['f1']:.3f}",
                f"{int(scores['support']):,}",
            ]
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.metrics.setItem(i, j, item)

    def _fill_errors(self, evaluation: Evaluation) -> None:
        errors = evaluation.result.most_confident_errors
        self.errors.setRowCount(len(errors))
        for i, error in enumerate(errors):
            row = int(evaluation.rows[int(error["row"])])
            gold, predicted = error["gold"], error["predicted"]
            if isinstance(predicted, list):  # multi-label: label sets
                gold, predicted = "; ".join(gold), "; ".join(predicted)
            values = [
                f"{self._session.row_number(row):,}",
                str(gold),
                str(predicted),
                f"{error['confidence']:.3f}",
                str(error.get("text") or ""),
            ]
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, row)
                if j == 4:
                    item.setToolTip(value)
                self.errors.setItem(i, j, item)
        self.errors.resizeColumnsToContents()
        self.errors.setColumnWidth(4, 400)

    def _on_error_clicked(self, row: int, column: int) -> None:
        item = self.errors.item(row, 0)
        if item is not None:
            self.error_row_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))
