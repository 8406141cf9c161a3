"""Figures of an :class:`EvaluationResult`: confusion matrix, PR curves, reliability diagram.

The plot functions build a :class:`matplotlib.figure.Figure` directly and never touch pyplot's
global state, so they are safe to call from a GUI worker thread; a Qt canvas can adopt the
returned figure, and :func:`write_report` saves it with matplotlib's Agg renderer.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .metrics import EvaluationResult


def _short(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


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
    top.plot(
        cal.mean_confidence,
        cal.accuracy,
        marker="o",
        color="#C44E52",
        linewidth=1.5,
        label="Mean confidence vs accuracy",
    )
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.02)
    top.set_ylabel("Accuracy")
    top.set_title(f"Reliability diagram (ECE {cal.ece:.3f})")
    top.legend(loc="upper left", fontsize=9)
    top.grid(True, alpha=0.3)
    bottom.bar(cal.bin_lower, cal.count, width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("Confidence (probability of the predicted label)")
    bottom.set_ylabel("Rows")
    bottom.grid(True, axis="y", alpha=0.3)
    return fig
