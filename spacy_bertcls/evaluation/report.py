"""Reports of an :class:`EvaluationResult`: a terminal summary, and the self-contained HTML
report written with its JSON and PNG plots (:func:`write_report`). A multi-label
:class:`MultiLabelResult` has its own: :func:`format_multilabel_summary` and
:func:`write_multilabel_report`, in the same style.

Reports name a row by the number a spreadsheet shows for it (``EvaluationResult.row_numbers``:
the header is row 1, so a CSV's first data row is row 2; a .txt file's first line is row 1),
the number the app shows too.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from ..errors import BertclsError
from ..outputs import (
    check_output_file,
    check_output_folder,
    make_output_folder,
    write_bytes_atomic,
)
from .metrics import EvaluationResult
from .multilabel import MultiLabelResult
from .plots import (
    plot_confusion_matrix,
    plot_multilabel_pr_curves,
    plot_multilabel_reliability,
    plot_pr_curves,
    plot_reliability,
)

if TYPE_CHECKING:
    from ..explain import Explanation

# Longer texts are cut in the HTML error table so one pasted document cannot swamp the page.
_MAX_TEXT_CHARS_HTML = 1000
_PLOT_NAMES = ("confusion_matrix", "pr_curves", "reliability")
# The details key under which `evaluation.files.evaluate_file` hands write_report the
# explanations of the most confident errors (shown in the errors table, not the header).
EXPLANATIONS_DETAIL = "explanations"
_MULTILABEL_PLOT_NAMES = ("pr_curves", "reliability")
_ROW_CAPTION = (
    "Rows are numbered as a spreadsheet shows them: the header is row 1, so the first data "
    "row is row 2. In a file without a header (.txt, JSON lines) the first row is row 1."
)


def format_summary(result: EvaluationResult) -> str:
    """A plain-text table for the terminal: per-class scores, averages, accuracy and row counts.

    result (EvaluationResult): The evaluation to summarize.
    RETURNS (str): Lines joined by newlines, no trailing newline.
    """
    name_width = max(len("weighted avg"), *(len(label) for label in result.labels))
    header = f"{'':>{name_width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
    lines = [
        f"Evaluated {result.n_evaluated:,} of {result.n_rows:,} rows "
        f"(missing gold: {result.n_missing_gold:,}, unknown gold: {result.n_unknown_gold:,}, "
        f"no prediction: {result.n_no_prediction:,})",
        "",
        header,
        "",
    ]
    for label, scores in result.per_class.items():
        lines.append(
            f"{label:>{name_width}}  {scores['precision']:>9.3f}  {scores['recall']:>9.3f}  "
            f"{scores['f1']:>9.3f}  {scores['support']:>9,}"
        )
    lines.append("")
    lines.append(
        f"{'accuracy':>{name_width}}  {'':>9}  {'':>9}  {result.accuracy:>9.3f}  "
        f"{result.n_evaluated:>9,}"
    )
    for name, scores in (("macro avg", result.macro), ("weighted avg", result.weighted)):
        lines.append(
            f"{name:>{name_width}}  {scores['precision']:>9.3f}  {scores['recall']:>9.3f}  "
            f"{scores['f1']:>9.3f}  {result.n_evaluated:>9,}"
        )
    lines.append("")
    auc = "n/a" if result.macro_roc_auc is None else f"{result.macro_roc_auc:.3f}"
    ece = f"ECE: {result.calibration.ece:.3f}"
    if result.calibration_before is not None:
        ece += f" (before temperature scaling: {result.calibration_before.ece:.3f})"
    lines.append(f"Macro ROC AUC: {auc}    {ece}")
    lines.append(f"Decision: {result.decision}")
    for note in result.notes():
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def write_report(
    result: EvaluationResult,
    html_path: str | Path,
    *,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    title: str = "Evaluation report",
    details: dict[str, Any] | None = None,
    explanations: dict[int, Explanation] | None = None,
) -> dict[str, Path]:
    """Write a self-contained HTML report, and optionally the JSON and the PNG plots.

    The HTML embeds its plots as base64 PNG and its CSS inline, so it opens offline and can be
    mailed as one file. All plots are rendered before anything is written, and each file is
    written to a temporary file beside it and renamed into place, so a failure never leaves a
    partial file under a final name. The HTML is written last.

    result (EvaluationResult): The evaluation to report.
    html_path (str | Path): Where to write the HTML; parent folders are created. A folder, a
        file under a read-only folder or a full disk raises BertclsError before or instead of
        writing anything under a final name.
    json_path (str | Path | None): Where to write ``result.to_dict()`` plus ``details`` as JSON.
    plots_dir (str | Path | None): Folder for confusion_matrix.png, pr_curves.png and
        reliability.png.
    title (str): Heading and window title of the report.
    details (dict | None): Context shown in the header and stored in the JSON, such as the
        pipeline path, data file and columns. Values are shown as text.
    explanations (dict[int, Explanation] | None): Per most confident error (keyed by its
        "row"), the explanation of its predicted label (`spacy_bertcls.explain`): the error
        table highlights the words that pushed towards the wrong label. None: those under
        ``details["explanations"]``, where `evaluate_file` puts them, if any.
    RETURNS (dict[str, Path]): The files written, keyed "html", "json", "confusion_matrix",
        "pr_curves", "reliability".
    """
    check_report_paths(html_path, json_path, plots_dir)  # first: rendering takes a while
    details = dict(details or {})
    found = details.pop(EXPLANATIONS_DETAIL, None)
    explanations = found if explanations is None else explanations
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    pngs = {
        "confusion_matrix": _png_bytes(plot_confusion_matrix(result)),
        "pr_curves": _png_bytes(plot_pr_curves(result)),
        "reliability": _png_bytes(plot_reliability(result)),
    }
    page = _render_html(
        result,
        pngs,
        title=title,
        details=details,
        generated=generated,
        explanations=explanations,
    )
    json_text = None
    if json_path is not None:
        payload = {"title": title, "generated": generated, "details": details, **result.to_dict()}
        # default=str: details commonly hold Paths; allow_nan=False keeps the JSON strict.
        json_text = json.dumps(payload, indent=2, ensure_ascii=False, default=str, allow_nan=False)

    written: dict[str, Path] = {}
    for folder in (plots_dir, json_path and Path(json_path).parent, Path(html_path).parent):
        if folder is not None:
            make_output_folder(folder)
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        for name in _PLOT_NAMES:
            path = plots_dir / f"{name}.png"
            write_bytes_atomic(path, pngs[name])
            written[name] = path
    if json_text is not None:
        json_path = Path(json_path)
        write_bytes_atomic(json_path, (json_text + "\n").encode("utf-8"))
        written["json"] = json_path
    html_path = Path(html_path)
    write_bytes_atomic(html_path, page.encode("utf-8"))
    written["html"] = html_path
    return written


def report_paths(
    html_path: str | Path, json_path: str | Path | None = None, plots_dir: str | Path | None = None
) -> dict[str, Path]:
    """The files that ``write_report`` writes, keyed as in its result."""
    paths = {"html": Path(html_path)}
    if json_path is not None:
        paths["json"] = Path(json_path)
    if plots_dir is not None:
        paths.update({name: Path(plots_dir) / f"{name}.png" for name in _PLOT_NAMES})
    return paths


def check_report_paths(
    html_path: str | Path,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    *,
    options: tuple[str, str, str] = ("The report", "The JSON file", "The plots folder"),
) -> None:
    """Raise BertclsError unless ``write_report`` can write these paths, before any work.

    The report and the JSON file must not be folders, the plots folder not a file, the
    folders must be writable, and no two outputs may have the same name.
    options: how the messages name the report, the JSON file and the plots folder.
    """
    check_output_file(html_path, option=options[0], example="report.html")
    if json_path is not None:
        check_output_file(json_path, option=options[1], example="metrics.json")
    if plots_dir is not None:
        check_output_folder(plots_dir, option=options[2])
    paths = report_paths(html_path, json_path, plots_dir).values()
    if len({path.resolve() for path in paths}) < len(paths):
        raise BertclsError(
            f"{options[0]} ({html_path}), {options[1]} ({json_path}) and the plots need "
            "different file names; one would overwrite another."
        )


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: right;
         vertical-align: top; }
th { background: #f5f5f5; }
td.label, th.label { text-align: left; }
td.text { text-align: left; max-width: 40rem; white-space: pre-wrap; word-break: break-word; }
tr.avg td { font-weight: 600; background: #fafafa; }
table.details td, table.details th { text-align: left; border: none; padding: 0.1rem 0.8rem 0.1rem 0; }
table.details th { background: none; color: #555; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 1rem; min-width: 8rem; }
.card .value { font-size: 1.6rem; font-weight: 600; }
.card .name { color: #666; font-size: 0.9rem; }
.notes { background: #fff8e1; border: 1px solid #f0d58c; border-radius: 6px;
         padding: 0.5rem 1rem; }
img { max-width: 100%; height: auto; }
.muted { color: #777; }
"""


def _render_html(
    result: EvaluationResult,
    pngs: dict[str, bytes],
    *,
    title: str,
    details: dict[str, Any],
    generated: str,
    explanations: dict[int, Explanation] | None = None,
) -> str:
    esc = html.escape
    explanations = explanations or {}

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    def image(name: str, alt: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'

    detail_rows = "".join(
        f"<tr><th>{esc(str(key))}</th><td>{esc(_detail_text(value))}</td></tr>"
        for key, value in {**details, "Generated": generated}.items()
    )
    cards = [
        ("Accuracy", num(result.accuracy)),
        ("Macro F1", num(result.macro["f1"])),
        ("Weighted F1", num(result.weighted["f1"])),
        ("Macro ROC AUC", num(result.macro_roc_auc)),
        ("ECE", num(result.calibration.ece)),
        ("Rows evaluated", f"{result.n_evaluated:,} / {result.n_rows:,}"),
    ]
    cards_html, counts, notes_html, unknown_html = _overview_html(
        result, cards, "evaluated", result.n_evaluated
    )

    class_rows = []
    for label, scores in result.per_class.items():
        curve = result.pr_curves.get(label)
        class_rows.append(
            f'<tr><td class="label">{esc(label)}</td><td>{num(scores["precision"])}</td>'
            f"<td>{num(scores['recall'])}</td><td>{num(scores['f1'])}</td>"
            f"<td>{scores['support']:,}</td>"
            f"<td>{num(curve.average_precision if curve else None)}</td>"
            f"<td>{num(result.roc_auc[label])}</td></tr>"
        )
    for name, scores, auc in (
        ("macro avg", result.macro, num(result.macro_roc_auc)),
        ("weighted avg", result.weighted, ""),
    ):
        class_rows.append(
            f'<tr class="avg"><td class="label">{name}</td><td>{num(scores["precision"])}</td>'
            f"<td>{num(scores['recall'])}</td><td>{num(scores['f1'])}</td>"
            f"<td>{result.n_evaluated:,}</td><td></td><td>{auc}</td></tr>"
        )

    header_cells = "".join(f"<th>{esc(label)}</th>" for label in result.labels)
    confusion_rows = "".join(
        f'<tr><th class="label">{esc(label)}</th>'
        + "".join(f"<td>{n:,}</td>" for n in row)
        + "</tr>"
        for label, row in zip(result.labels, result.confusion, strict=True)
    )

    error_rows = []
    for error in result.most_confident_errors:
        text = error["text"]
        if text is None:
            text_cell = '<span class="muted">(no text given)</span>'
        else:
            text_cell = _highlighted_text(text, explanations.get(error["row"]))
        error_rows.append(
            f'<tr><td>{error["row_number"]}</td><td class="label">{esc(error["gold"])}</td>'
            f'<td class="label">{esc(error["predicted"])}</td>'
            f"<td>{num(error['confidence'])}</td><td>{num(error['gold_probability'])}</td>"
            f'<td class="text">{text_cell}</td></tr>'
        )
    errors_html = (
        '<table><tr><th>Row</th><th class="label">Gold</th><th class="label">Predicted</th>'
        '<th>Confidence</th><th>P(gold)</th><th class="label">Text</th></tr>'
        + "".join(error_rows)
        + "</table>"
        if error_rows
        else '<p class="muted">No errors among the evaluated rows.</p>'
    )

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<table class="details">{detail_rows}</table>

<h2>Summary</h2>
<div class="cards">{cards_html}</div>
<p>{esc(counts)}</p>
{notes_html}
{unknown_html}

<h2>Per-class scores</h2>
<table>
<tr><th class="label">Label</th><th>Precision</th><th>Recall</th><th>F1</th><th>Support</th>
<th>Avg. precision</th><th>ROC AUC</th></tr>
{"".join(class_rows)}
</table>
<p class="muted">Averages are over the labels seen in the evaluated rows
({esc(", ".join(result.averaged_labels))}). Precision, recall and F1 are 0 where undefined.</p>

<h2>Confusion matrix</h2>
<p class="muted">Rows: gold label; columns: predicted label.</p>
<table>
<tr><th class="label">gold \\ predicted</th>{header_cells}</tr>
{confusion_rows}
</table>
{image("confusion_matrix", "Confusion matrix")}

<h2>Precision-recall curves</h2>
{image("pr_curves", "Precision-recall curves")}

<h2>Calibration</h2>
<p>Expected calibration error: {num(result.calibration.ece)} over
{result.calibration.n_bins} equal-width bins of the most probable label's probability{
        ""
        if result.calibration_before is None
        else f"; before the pipeline's temperature scaling it was {num(result.calibration_before.ece)}"
    }. A calibrated probability of 0.9 means that about 9 in 10 rows given it are right.
Labels are decided by: {esc(result.decision)}.</p>
{image("reliability", "Reliability diagram")}

<h2>Most confident errors</h2>
<p class="muted">{esc(_ROW_CAPTION)}{_explanations_caption(explanations)}</p>
{errors_html}
</body>
</html>
"""


def _highlighted_text(text: str, explanation: Explanation | None) -> str:
    """An error's text for the HTML table, cut at _MAX_TEXT_CHARS_HTML, with the words that
    pushed towards the predicted (wrong) label marked: the stronger the push, the stronger the
    background. Without an explanation of this very text, just the text."""
    cut = text[:_MAX_TEXT_CHARS_HTML]
    ellipsis = "…" if len(text) > _MAX_TEXT_CHARS_HTML else ""
    if explanation is None or explanation.text != text:
        return html.escape(cut) + ellipsis
    parts, at = [], 0
    for token, weight in zip(explanation.tokens, explanation.normalized()):
        if weight > 0 and token.end <= len(cut):
            parts.append(html.escape(cut[at : token.start]))
            parts.append(
                f'<mark style="background: rgba(230, 90, 30, {0.1 + 0.7 * weight:.2f})" '
                f'title="{token.score:+.3f}">{html.escape(token.text)}</mark>'
            )
            at = token.end
    return "".join(parts) + html.escape(cut[at:]) + ellipsis


def _explanations_caption(explanations: dict[int, Explanation]) -> str:
    if not explanations:
        return ""
    methods = ", ".join(sorted({e.method for e in explanations.values()}))
    return html.escape(
        " Highlighted: the words that pushed the prediction towards the wrong label (the "
        f"darker, the more; method: {methods}; spacy_bertcls.explain), for "
        f"{len(explanations)} of these rows. Hover a word for its score, the change in the "
        "log-odds of the predicted label that it makes."
    )


def _overview_html(
    result: EvaluationResult | MultiLabelResult,
    cards: list[tuple[str, str]],
    verb: str,
    n_done: int,
) -> tuple[str, str, str, str]:
    """The HTML of a report's cards, row counts, notes and unknown gold labels (the same for
    single- and multi-label results; ``verb`` says what was done to ``n_done`` rows)."""
    esc = html.escape
    cards_html = "".join(
        f'<div class="card"><div class="value">{esc(value)}</div>'
        f'<div class="name">{esc(name)}</div></div>'
        for name, value in cards
    )
    counts = (
        f"Rows: {result.n_rows:,}; {verb}: {n_done:,}; missing gold: "
        f"{result.n_missing_gold:,}; unknown gold: {result.n_unknown_gold:,}; no prediction: "
        f"{result.n_no_prediction:,}."
    )
    notes = result.notes()
    notes_html = (
        '<div class="notes"><ul>' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></div>"
        if notes
        else ""
    )
    unknown_html = ""
    if result.unknown_gold:
        unknown_rows = "".join(
            f'<tr><td class="label">{esc(label)}</td><td>{n:,}</td>'
            f'<td class="label">{esc(_row_examples(result, label))}</td></tr>'
            for label, n in result.unknown_gold.items()
        )
        unknown_html = (
            "<h3>Gold labels the pipeline does not know (rows excluded)</h3>"
            '<table><tr><th class="label">Gold label</th><th>Rows</th>'
            f'<th class="label">First rows</th></tr>{unknown_rows}</table>'
        )
    return cards_html, counts, notes_html, unknown_html


def _detail_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _row_examples(result: EvaluationResult, label: str, limit: int = 10) -> str:
    rows = result.unknown_gold_rows[label]
    shown = ", ".join(str(int(number)) for number in result.row_numbers[rows[:limit]])
    return shown + (", …" if len(rows) > limit else "")


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # savefig on a bare Figure renders with Agg for PNG; no pyplot, no GUI backend.
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


# --- multi-label ---------------------------------------------------------------------------


def format_multilabel_summary(result: MultiLabelResult) -> str:
    """A plain-text table for the terminal: per-label thresholds and scores, the micro, macro
    and weighted averages, subset accuracy, Hamming loss and row counts.

    result (MultiLabelResult): The evaluation to summarize.
    RETURNS (str): Lines joined by newlines, no trailing newline.
    """
    name_width = max(len("weighted avg"), *(len(label) for label in result.labels))
    columns = ("threshold", "precision", "recall", "f1-score", "support", "predicted")
    lines = [
        f"Scored {result.n_scored:,} of {result.n_rows:,} rows "
        f"(missing gold: {result.n_missing_gold:,}, unknown gold: {result.n_unknown_gold:,}, "
        f"no prediction: {result.n_no_prediction:,})",
        "",
        f"{'':>{name_width}}  " + "  ".join(f"{name:>9}" for name in columns),
        "",
    ]
    for label, scores in result.per_label.items():
        lines.append(
            f"{label:>{name_width}}  {result.thresholds[label]:>9.3f}  "
            f"{scores['precision']:>9.3f}  {scores['recall']:>9.3f}  {scores['f1']:>9.3f}  "
            f"{scores['support']:>9,}  {scores['predicted']:>9,}"
        )
    lines.append("")
    n_gold = sum(int(scores["support"]) for scores in result.per_label.values())
    for name, scores in (
        ("micro avg", result.micro),
        ("macro avg", result.macro),
        ("weighted avg", result.weighted),
    ):
        lines.append(
            f"{name:>{name_width}}  {'':>9}  {scores['precision']:>9.3f}  "
            f"{scores['recall']:>9.3f}  {scores['f1']:>9.3f}  {n_gold:>9,}"
        )
    lines.append("")
    lines.append(
        f"Subset accuracy: {result.subset_accuracy:.3f}    Hamming loss: {result.hamming_loss:.3f}"
    )
    lines.append(
        f"Macro ROC AUC: {_text_num(result.macro_roc_auc)}    "
        f"Mean average precision: {_text_num(result.macro_average_precision)}    "
        f"ECE: {result.calibration.ece:.3f}"
        + (
            ""
            if result.calibration_before is None
            else f" (before temperature scaling: {result.calibration_before.ece:.3f})"
        )
    )
    for note in result.notes():
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def multilabel_report_paths(
    html_path: str | Path, json_path: str | Path | None = None, plots_dir: str | Path | None = None
) -> dict[str, Path]:
    """The files that ``write_multilabel_report`` writes, keyed as in its result."""
    paths = {"html": Path(html_path)}
    if json_path is not None:
        paths["json"] = Path(json_path)
    if plots_dir is not None:
        paths.update({name: Path(plots_dir) / f"{name}.png" for name in _MULTILABEL_PLOT_NAMES})
    return paths


def write_multilabel_report(
    result: MultiLabelResult,
    html_path: str | Path,
    *,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    title: str = "Multi-label evaluation report",
    details: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a self-contained HTML report of a multi-label evaluation, and optionally its JSON
    and PNG plots; written as :func:`write_report` writes (checked first, plots rendered
    before anything is written, each file renamed into place, the HTML last).

    result (MultiLabelResult): The evaluation to report.
    html_path (str | Path): Where to write the HTML; parent folders are created.
    json_path (str | Path | None): Where to write ``result.to_dict()`` plus ``details`` as JSON.
    plots_dir (str | Path | None): Folder for pr_curves.png (one panel per label) and
        reliability.png.
    title (str): Heading and window title of the report.
    details (dict | None): Context shown in the header and stored in the JSON, such as the
        pipeline path, data file and columns. Values are shown as text.
    RETURNS (dict[str, Path]): The files written, keyed "html", "json", "pr_curves",
        "reliability".
    """
    check_report_paths(html_path, json_path, plots_dir)  # first: rendering takes a while
    details = dict(details or {})
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    pngs = _multilabel_pngs(result)
    body = multilabel_html_section(result, pngs)
    page = _html_page(title, {**details, "Generated": generated}, body)
    json_text = None
    if json_path is not None:
        payload = {"title": title, "generated": generated, "details": details, **result.to_dict()}
        json_text = json.dumps(payload, indent=2, ensure_ascii=False, default=str, allow_nan=False)

    written: dict[str, Path] = {}
    for folder in (plots_dir, json_path and Path(json_path).parent, Path(html_path).parent):
        if folder is not None:
            make_output_folder(folder)
    paths = multilabel_report_paths(html_path, json_path, plots_dir)
    for name in _MULTILABEL_PLOT_NAMES:
        if name in paths:
            write_bytes_atomic(paths[name], pngs[name])
            written[name] = paths[name]
    if json_text is not None:
        write_bytes_atomic(paths["json"], (json_text + "\n").encode("utf-8"))
        written["json"] = paths["json"]
    write_bytes_atomic(paths["html"], page.encode("utf-8"))
    written["html"] = paths["html"]
    return written


def multilabel_html_section(result: MultiLabelResult, pngs: dict[str, bytes] | None = None) -> str:
    """The body of the multi-label HTML report, without ``<html>``/``<head>``: summary cards,
    notes, the per-label table, PR curves, calibration and the most confident errors. It uses
    the report's CSS classes (see :func:`write_multilabel_report` for a whole page).

    result (MultiLabelResult): The evaluation to show.
    pngs (dict[str, bytes] | None): The "pr_curves" and "reliability" PNGs; None renders them.
    RETURNS (str): HTML with the plots embedded as base64 PNG.
    """
    esc = html.escape
    num = _html_num
    if pngs is None:
        pngs = _multilabel_pngs(result)

    def image(name: str, alt: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'

    cards = [
        ("Micro F1", num(result.micro["f1"])),
        ("Macro F1", num(result.macro["f1"])),
        ("Subset accuracy", num(result.subset_accuracy)),
        ("Hamming loss", num(result.hamming_loss)),
        ("Mean avg. precision", num(result.macro_average_precision)),
        ("Macro ROC AUC", num(result.macro_roc_auc)),
        ("ECE", num(result.calibration.ece)),
        ("Rows scored", f"{result.n_scored:,} / {result.n_rows:,}"),
    ]
    cards_html, counts, notes_html, unknown_html = _overview_html(
        result, cards, "scored", result.n_scored
    )

    label_rows = []
    for label, scores in result.per_label.items():
        curve = result.pr_curves.get(label)
        label_rows.append(
            f'<tr><td class="label">{esc(label)}</td><td>{num(result.thresholds[label])}</td>'
            f"<td>{num(scores['precision'])}</td><td>{num(scores['recall'])}</td>"
            f"<td>{num(scores['f1'])}</td><td>{scores['support']:,}</td>"
            f"<td>{scores['predicted']:,}</td>"
            f"<td>{num(curve.average_precision if curve else None)}</td>"
            f"<td>{num(result.roc_auc[label])}</td></tr>"
        )
    for name, scores, ap, auc in (
        ("micro avg", result.micro, "", ""),
        (
            "macro avg",
            result.macro,
            num(result.macro_average_precision),
            num(result.macro_roc_auc),
        ),
        ("weighted avg", result.weighted, "", ""),
    ):
        label_rows.append(
            f'<tr class="avg"><td class="label">{name}</td><td></td>'
            f"<td>{num(scores['precision'])}</td><td>{num(scores['recall'])}</td>"
            f"<td>{num(scores['f1'])}</td><td></td><td></td><td>{ap}</td><td>{auc}</td></tr>"
        )

    error_rows = []
    for error in result.most_confident_errors:
        text = error["text"]
        if text is None:
            text_cell = '<span class="muted">(no text given)</span>'
        else:
            if len(text) > _MAX_TEXT_CHARS_HTML:
                text = text[:_MAX_TEXT_CHARS_HTML] + "…"
            text_cell = esc(text)
        error_rows.append(
            f"<tr><td>{error['row_number']}</td>"
            f'<td class="label">{esc("; ".join(error["gold"]) or "(none)")}</td>'
            f'<td class="label">{esc("; ".join(error["predicted"]) or "(none)")}</td>'
            f'<td class="label">{esc("; ".join(error["missed"]))}</td>'
            f'<td class="label">{esc("; ".join(error["extra"]))}</td>'
            f'<td class="label">{esc(error["label"])}</td><td>{num(error["probability"])}</td>'
            f"<td>{num(error['confidence'])}</td>"
            f'<td class="text">{text_cell}</td></tr>'
        )
    errors_html = (
        '<table><tr><th>Row</th><th class="label">Gold</th><th class="label">Predicted</th>'
        '<th class="label">Missed</th><th class="label">Extra</th>'
        '<th class="label">Worst label</th><th>P(label)</th><th>Confidence</th>'
        '<th class="label">Text</th></tr>' + "".join(error_rows) + "</table>"
        if error_rows
        else '<p class="muted">No errors among the scored rows.</p>'
    )
    averaged = ", ".join(result.averaged_labels) or "none"

    return f"""<h2>Summary</h2>
<div class="cards">{cards_html}</div>
<p>{esc(counts)}</p>
{notes_html}
{unknown_html}

<h2>Per-label scores</h2>
<table>
<tr><th class="label">Label</th><th>Threshold</th><th>Precision</th><th>Recall</th><th>F1</th>
<th>Support</th><th>Predicted</th><th>Avg. precision</th><th>ROC AUC</th></tr>
{"".join(label_rows)}
</table>
<p class="muted">A label is predicted when its probability reaches its threshold. Support:
scored rows whose gold has the label; predicted: rows predicted with it. Micro averages pool
every row-label decision; macro and weighted averages are over the labels seen in the scored
rows ({esc(averaged)}). Precision, recall and F1 are 0 where undefined. Subset accuracy is the
share of rows whose predicted labels equal the gold labels exactly; Hamming loss the share of
wrong row-label decisions.</p>

<h2>Precision-recall curves</h2>
<p class="muted">The dot on each curve is the label's threshold; the dotted line is the share
of rows with the label.</p>
{image("pr_curves", "Precision-recall curve per label")}

<h2>Calibration</h2>
<p>Expected calibration error: {num(result.calibration.ece)} over
{result.calibration.n_bins} equal-width bins of every row-label probability, against whether
the row's gold has the label.</p>
{image("reliability", "Reliability diagram")}

<h2>Most confident errors</h2>
<p class="muted">Rows whose predicted labels differ from the gold labels, by their most
confident wrong decision: confidence is the label's probability when it was predicted but is
not gold, one minus it when it is gold but was missed. {esc(_ROW_CAPTION)}</p>
{errors_html}
"""


def _multilabel_pngs(result: MultiLabelResult) -> dict[str, bytes]:
    return {
        "pr_curves": _png_bytes(plot_multilabel_pr_curves(result)),
        "reliability": _png_bytes(plot_multilabel_reliability(result)),
    }


def _html_page(title: str, details: dict[str, Any], body: str) -> str:
    """A whole report page: the report's CSS, the title, a details table, then ``body``."""
    esc = html.escape
    detail_rows = "".join(
        f"<tr><th>{esc(str(key))}</th><td>{esc(_detail_text(value))}</td></tr>"
        for key, value in details.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<table class="details">{detail_rows}</table>

{body}</body>
</html>
"""


def _html_num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _text_num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
