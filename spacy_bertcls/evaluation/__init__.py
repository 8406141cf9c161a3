"""Metrics, plots and reports for a classifier's predictions against gold labels.

The CLI (``bertcls evaluate``), the spaCy project's evaluate step and the desktop app all call
:func:`evaluate_predictions` and show the same :class:`EvaluationResult`, so the numbers agree
wherever a user looks. Every metric comes from scikit-learn; this package only decides which rows
take part (:mod:`.metrics`) and how the results are shown (:mod:`.plots`, :mod:`.report`).
Multi-label predictions (several labels per row, a threshold per label) are scored by
:func:`evaluate_multilabel` (:mod:`.multilabel`) into a :class:`MultiLabelResult`, with its
own summary, plots and report beside the single-label ones.

Only :mod:`.files` loads a pipeline: its ``evaluate_file`` predicts a file's texts with one
and scores them. It is not imported here, so the app and the metrics do not pull in the
labeling code (import ``spacy_bertcls.evaluation.files``).
"""

from .metrics import Calibration, EvaluationResult, PRCurve, evaluate_predictions
from .multilabel import MultiLabelResult, evaluate_multilabel
from .plots import (
    format_share,
    plot_confusion_matrix,
    plot_multilabel_pr_curves,
    plot_multilabel_reliability,
    plot_pr_curves,
    plot_reliability,
)
from .report import (
    check_report_paths,
    format_multilabel_summary,
    format_summary,
    multilabel_html_section,
    multilabel_report_paths,
    report_paths,
    write_multilabel_report,
    write_report,
)

__all__ = [
    "Calibration",
    "EvaluationResult",
    "MultiLabelResult",
    "PRCurve",
    "check_report_paths",
    "evaluate_multilabel",
    "evaluate_predictions",
    "format_multilabel_summary",
    "format_share",
    "format_summary",
    "multilabel_html_section",
    "multilabel_report_paths",
    "plot_confusion_matrix",
    "plot_multilabel_pr_curves",
    "plot_multilabel_reliability",
    "plot_pr_curves",
    "plot_reliability",
    "report_paths",
    "write_multilabel_report",
    "write_report",
]
