"""The course's per-variant metrics plot: one panel per metric (:data:`~loopwise.serving.metrics.CHARTS`),
one line per variant, over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from loopwise.errors import DataFormatError
from loopwise.evaluation._files import write_bytes_atomic
from loopwise.evaluation.plots import render_png
from loopwise.serving.metrics import CHARTS


def variant_metrics_png(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> Path:
    """Plot rows of :meth:`loopwise.serving.metrics.Metrics.table`; raises :class:`DataFormatError`
    when there are none."""
    if not rows:
        raise DataFormatError("no metrics to plot yet: the endpoint answered no request in the window")
    variants = sorted({str(row["variant"]) for row in rows if row["variant"] != "-"})
    fig = Figure(figsize=(11, 13), dpi=100)
    axes = fig.subplots(len(CHARTS) // 2, 2, sharex=True).flatten()
    for ax, (metric, label) in zip(axes, CHARTS, strict=True):
        for variant in variants:
            points = [
                (datetime.fromtimestamp(row["period_start"], UTC), row[metric])
                for row in rows
                if row["variant"] == variant and row.get(metric) is not None
            ]
            if points:
                times, values = zip(*points, strict=True)
                ax.plot(times, values, marker="o", markersize=3, label=variant)
        ax.set_title(metric)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes[-2:]:
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_xlabel("period start (UTC)")
    fig.suptitle(title)
    return write_bytes_atomic(Path(path), render_png(fig))
