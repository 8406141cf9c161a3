"""Metrics, plots and reports for a classifier's predictions against gold labels.

The CLI (``bertcls evaluate``), the spaCy project's evaluate step and the desktop app all call
:func:`evaluate_predictions` and show the same :class:`EvaluationResult`, so the numbers agree
wherever a user looks. Every metric comes from scikit-learn; this package only decides which rows
take part (:mod:`.metrics`) and how the results are shown (:mod:`.plots`, :mod:`.report`).

Only :mod:`.files` loads a pipeline: its ``evaluate_file`` predicts a file's texts with one
and scores them. It is not imported here, so the app and the metrics do not pull in the
labeling code (import ``spacy_bertcls.evaluation.files``).
"""

from .metrics import Calibration, EvaluationResult, PRCurve, evaluate_predictions
from .plots import format_share, plot_confusion_matrix, plot_pr_curves, plot_reliability
from .report import check_report_paths, format_summary, report_paths, write_report

__all__ = [
    "Calibration",
    "EvaluationResult",
    "PRCurve",
    "check_report_paths",
    "evaluate_predictions",
    "format_share",
    "format_summary",
    "plot_confusion_matrix",
    "plot_pr_curves",
    "plot_reliability",
    "report_paths",
    "write_report",
]
