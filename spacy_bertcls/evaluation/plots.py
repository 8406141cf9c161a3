"""Figures of an :class:`EvaluationResult`: confusion matrix, PR curves, reliability diagram;
and of a :class:`MultiLabelResult`: per-label PR curves, pooled reliability diagram.

The plot functions build a :class:`matplotlib.figure.Figure` directly and never touch pyplot's
global state, so they are safe to call from a GUI worker thread; a Qt canvas can adopt the
returned figure, and :func:`write_report` saves it with matplotlib's Agg renderer.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .metrics import EvaluationResult
from .multilabel import MultiLabelResult


def _short(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _panel_title(label: str) -> str:
    """A small panel's title: long labels on two lines, so neighbouring titles never meet."""
    return "\n".join(textwrap.wrap(label, 18, max_lines=2, placeholder="…")) or label


def _colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def format_share(share: float) -> str:
    """A share of a confusion-matrix row as a percentage that never reads 0 % or 100 % when a
    few rows are off (3 of 725 is "0.4%", not "0%")."""
    whole = f"{share:.0%}"
    if whole in ("0%", "100%") and 0.0 < share < 1.0:
        return f"{share:.1%}" if 0.0005 <= share <= 0.9995 else f"{share:.2%}"
    return whole


def plot_confusion_matrix(result: EvaluationResult) -> Figure:
    """Confusion matrix with counts and row percentages; shading is the share of the gold row.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    counts = np.asarray(result.confusion, dtype=np.int64)
    k = len(result.labels)
    row_totals = counts.sum(axis=1, keepdims=True)
    # Row-normalized so a small class's errors are as visible as a large class's.
    share = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0
    )
    side = max(5.0, 0.8 * k + 3.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    tick_labels = [_short(label) for label in result.labels]
    ax.set_xticks(range(k), tick_labels)
    ax.set_yticks(range(k), tick_labels)
    if k > 4 or max(len(label) for label in tick_labels) > 8:
        ax.tick_params(axis="x", labelrotation=40)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    fontsize = 11 if k <= 4 else 9.5 if k <= 7 else 8.5
    for i in range(k):
        for j in range(k):
            text = f"{counts[i, j]:,}"
            if row_totals[i, 0] > 0:
                text += f"\n{format_share(share[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if share[i, j] > 0.55 else "black",
            )
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("Gold label")
    ax.set_title(f"Confusion matrix ({result.n_evaluated:,} rows)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Share of gold row")
    return fig


def plot_pr_curves(result: EvaluationResult) -> Figure:
    """One-vs-rest precision-recall curve per class, with average precision in the legend.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    # With many classes the curves fill the lower left, so the legend goes beside the axes.
    legend_outside = len(result.pr_curves) > 4
    fig = Figure(figsize=(10.0 if legend_outside else 7.0, 5.5), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(result.labels))
    for color, label in zip(colors, result.labels, strict=True):
        curve = result.pr_curves.get(label)
        if curve is None:
            continue
        ax.plot(
            curve.recall,
            curve.precision,
            drawstyle="steps-post",
            color=color,
            linewidth=1.6,
            label=f"{_short(label)} (AP {curve.average_precision:.3f}, n={curve.n_positive:,})",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title("Precision-recall curves (one class vs rest)")
    ax.grid(True, alpha=0.3)
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    else:
        ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    return fig


def plot_reliability(result: EvaluationResult) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal, rows per bin below.

    result (EvaluationResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    cal = result.calibration
    fig = Figure(figsize=(6.5, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = cal.bin_upper - cal.bin_lower
    top.plot(
        [0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="Perfectly calibrated"
    )
    top.bar(
        cal.bin_lower,
        cal.accuracy,
        width=width,
        align="edge",
        color="#4C72B0",
        alpha=0.35,
        edgecolor="#4C72B0",
        label="Accuracy in bin",
    )
    before = getattr(result, "calibration_before", None)
    top.plot(
        cal.mean_confidence,
        cal.accuracy,
        marker="o",
        color="#C44E52",
        linewidth=1.5,
        label="Mean confidence vs accuracy" + ("" if before is None else " (calibrated)"),
    )
    title = f"Reliability diagram (ECE {cal.ece:.3f})"
    if before is not None:
        top.plot(
            before.mean_confidence,
            before.accuracy,
            marker="s",
            linestyle=":",
            color="#8172B2",
            linewidth=1.2,
            label="Before temperature scaling",
        )
        title = f"Reliability diagram (ECE {before.ece:.3f} before, {cal.ece:.3f} after scaling)"
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.02)
    top.set_ylabel("Accuracy")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=9)
    top.grid(True, alpha=0.3)
    bottom.bar(cal.bin_lower, cal.count, width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("Confidence (probability of the predicted label)")
    bottom.set_ylabel("Rows")
    bottom.grid(True, axis="y", alpha=0.3)
    return fig


def plot_multilabel_pr_curves(result: MultiLabelResult) -> Figure:
    """One panel per label: its precision-recall curve, the point its threshold gives, and the
    share of rows with the label (a ranking no better than chance lies on that line).

    Labels are separate yes/no decisions with separate thresholds, so each gets its own axes
    rather than one crowded plot; a label without gold rows has a panel saying so.

    result (MultiLabelResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    k = len(result.labels)
    ncols = min(k, 4)
    nrows = -(-k // ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.6, 3.0 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    colors = _colors(k)
    for ax, color, label in zip(axes.flat, colors, result.labels, strict=False):
        curve = result.pr_curves.get(label)
        scores = result.per_label[label]
        if curve is None:
            ax.text(0.5, 0.5, "no gold rows", ha="center", va="center", color="grey")
            ax.set_title(_panel_title(label), fontsize=10)
        else:
            ax.plot(
                curve.recall,
                curve.precision,
                drawstyle="steps-post",
                color=color,
                linewidth=1.6,
            )
            ax.axhline(curve.n_positive / result.n_scored, color="grey", linestyle=":", linewidth=1)
            ax.plot(
                scores["recall"],
                scores["precision"],
                marker="o",
                color="black",
                markersize=5,
                label=f"threshold {result.thresholds[label]:.2f}",
            )
            ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
            ax.set_title(
                f"{_panel_title(label)}\nAP {curve.average_precision:.3f}, n={curve.n_positive:,}",
                fontsize=10,
            )
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.grid(True, alpha=0.3)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.set_visible(False)
        elif i + ncols >= k:  # the lowest panel of its column: its x axis is the one read
            ax.set_xlabel("Recall")
            ax.tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("Precision")
    fig.suptitle(f"Precision-recall curve per label ({result.n_scored:,} rows)")
    return fig


def plot_multilabel_reliability(result: MultiLabelResult) -> Figure:
    """Reliability diagram of every (row, label) probability pooled against its 0/1 gold.

    The same drawing as :func:`plot_reliability`, named for what the bins hold here: the mean
    probability and the share of pairs whose gold set has the label.

    result (MultiLabelResult): The evaluation to draw.
    RETURNS (Figure): A new figure, not attached to pyplot.
    """
    fig = plot_reliability(result)  # reads result.calibration and calibration_before
    top, bottom = fig.axes[:2]
    names = {
        "Accuracy in bin": "Share with the label in bin",
        "Mean confidence vs accuracy": "Mean probability vs share with the label",
        "Mean confidence vs accuracy (calibrated)": "Mean probability vs share (calibrated)",
    }
    for artist in [*top.lines, *top.containers]:
        if artist.get_label() in names:
            artist.set_label(names[artist.get_label()])
    top.legend(loc="upper left", fontsize=9)
    top.set_ylabel("Share of pairs whose gold has the label")
    bottom.set_xlabel("Probability of a label (every row and label)")
    bottom.set_ylabel("Row-label pairs")
    return fig
