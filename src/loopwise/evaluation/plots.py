"""The evaluation report's figures, drawn to PNG files.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas directly, so no
pyplot state or global backend setting is touched, and nothing is left open afterwards.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loopwise.errors import DataFormatError
from loopwise.evaluation._files import write_bytes_atomic
from loopwise.evaluation.metrics import expected_calibration_error, reliability_table

__all__ = ["confusion_matrix_png", "reliability_diagram_png", "training_curves_png"]

_DPI = 110


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Draw ``matrix`` (rows are true labels, columns predicted) to a PNG at ``path``; returns the path.

    Each cell shows its count and its share of the row (of that true label); the shading follows the
    share, so classes of different sizes read alike. Raises :class:`DataFormatError` when ``matrix`` is not
    square with one row per label.
    """
    counts = np.asarray(matrix, dtype=float)
    names = [str(label) for label in labels]
    k = len(names)
    if counts.shape != (k, k):
        raise DataFormatError(f"the confusion matrix has shape {counts.shape}; {k} labels need ({k}, {k})")
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)

    side = max(4.0, 1.5 + 0.9 * k)
    fig = Figure(figsize=(side + 1.0, side), dpi=_DPI)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label")
    for row in range(k):
        for col in range(k):
            ax.text(
                col,
                row,
                f"{int(counts[row, col])}\n{100 * shares[row, col]:.1f}%",
                ha="center",
                va="center",
                fontsize=9 if k <= 8 else 7,
                color="white" if shares[row, col] > 0.5 else "black",
            )
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return write_bytes_atomic(Path(path), render_png(fig))


def reliability_diagram_png(
    y_true_ids: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    path: str | Path,
    bins: int = 15,
    *,
    title: str = "Reliability diagram",
) -> Path:
    """Draw accuracy against top-label confidence per bin, with the diagonal of perfect calibration above
    and a histogram of the rows per bin below, to a PNG at ``path``; returns the path.

    ``y_true_ids`` are column indices into ``proba`` (see :func:`~loopwise.evaluation.encode_labels`).
    Bars below the diagonal mean overconfidence.
    """
    table = reliability_table(y_true_ids, proba, bins)
    ece = expected_calibration_error(y_true_ids, proba, bins)
    width = 1.0 / bins
    lowers = np.array([row["lower"] for row in table])
    filled = [row for row in table if row["count"]]

    fig = Figure(figsize=(5.5, 6.0), dpi=_DPI)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    top.bar(
        [row["lower"] for row in filled],
        [row["accuracy"] for row in filled],
        width=width,
        align="edge",
        color="#4c78a8",
        edgecolor="white",
        label="accuracy",
    )
    top.plot(
        [row["confidence"] for row in filled],
        [row["accuracy"] for row in filled],
        marker="o",
        linestyle="none",
        color="#e45756",
        markersize=4,
        label="accuracy at the mean confidence",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title} (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(lowers, [row["count"] for row in table], width=width, align="edge", color="#9d9d9d")
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("rows")
    return write_bytes_atomic(Path(path), render_png(fig))


def training_curves_png(
    series: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, *, title: str = "Training run"
) -> Path:
    """Plot a run's metrics against the optimizer step: losses on the left, validation scores on the right.

    ``series`` maps a metric name (``loss``, ``val_loss``, ``val_acc``, ...) to ``(step, value)`` points.
    Raises :class:`DataFormatError` when there is nothing to plot.
    """
    losses = {k: v for k, v in series.items() if k.endswith("loss") and v}
    scores = {k: v for k, v in series.items() if k.startswith("val_") and not k.endswith("loss") and v}
    if not losses and not scores:
        raise DataFormatError("the run has no loss or validation metrics to plot yet")
    fig = Figure(figsize=(10, 4), dpi=_DPI)
    left, right = fig.subplots(1, 2)
    for axes, group, ylabel in ((left, losses, "loss"), (right, scores, "validation score")):
        for name, points in sorted(group.items()):
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=name)
        axes.set_xlabel("step")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if group:
            axes.legend()
    fig.suptitle(title)
    return write_bytes_atomic(Path(path), render_png(fig))


def render_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg), cleared afterwards."""
    canvas = FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    fig.clear()
    return buffer.getvalue()
