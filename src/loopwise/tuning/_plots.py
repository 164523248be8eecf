"""The tuning report's figures, drawn to PNG files.

Like :mod:`loopwise.evaluation.plots`, figures are built with :class:`matplotlib.figure.Figure` and rendered
by the Agg canvas directly: no pyplot state, no global backend setting, nothing left open afterwards.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from loopwise.evaluation._files import write_bytes_atomic
from loopwise.evaluation.plots import render_png

_DPI = 110
_COMPLETE = "#4c78a8"
_BEST = "#e45756"
_PRUNED = "#9d9d9d"
_FAILED = "#b22222"


def objective_png(
    trials: Sequence[FrozenTrial],
    best_so_far: Sequence[tuple[int, float]],
    path: Path,
    *,
    metric: str,
    direction: str,
    title: str,
    copied: Collection[int] = (),
) -> Path:
    """The objective of every trial against its number, with the running best as a step line.

    Complete trials are dots, pruned ones hollow triangles at their last reported value, failed ones red
    crosses on the bottom edge (they have no value). ``best_so_far`` is ``(trial number, best objective)``
    for each complete trial in number order (see :func:`loopwise.tuning.report.running_best`). Trials
    numbered in ``copied`` (from warm-start parents) are hollow circles and take no part in the best.
    """
    fig = Figure(figsize=(8, 4.2), dpi=_DPI)
    ax = fig.add_subplot()
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    complete = [(t.number, t.value) for t in done if t.number not in copied]
    parents = [(t.number, t.value) for t in done if t.number in copied]
    pruned = [
        (t.number, v) for t in trials if t.state is TrialState.PRUNED and (v := last_value(t)) is not None
    ]
    failed = [t.number for t in trials if t.state is TrialState.FAIL]
    series: tuple[tuple[list[Any], str, dict[str, Any], str, str], ...] = (
        (complete, "o", {}, _COMPLETE, "complete"),
        (parents, "o", {"markerfacecolor": "none"}, _COMPLETE, "copied from a parent job"),
        (pruned, "^", {"markerfacecolor": "none"}, _PRUNED, "pruned (last reported value)"),
    )
    for points, marker, style, color, label in series:
        if points:
            numbers, values = zip(*points, strict=True)
            ax.plot(numbers, values, marker, color=color, label=label, zorder=3, **style)
    if best_so_far:
        numbers, values = zip(*best_so_far, strict=True)
        last = max(t.number for t in trials)
        ax.step(
            [*numbers, last],
            [*values, values[-1]],
            where="post",
            color=_BEST,
            linewidth=1.5,
            label=f"best so far ({'highest' if direction == 'maximize' else 'lowest'})",
            zorder=2,
        )
    if failed:
        # No value to place them at: crosses on the x axis, in axes coordinates vertically.
        ax.plot(
            failed,
            [0.0] * len(failed),
            "x",
            color=_FAILED,
            markersize=8,
            markeredgewidth=2,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="failed",
            zorder=4,
        )
    if trials:
        ax.set_xlim(min(t.number for t in trials) - 0.5, max(t.number for t in trials) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({direction})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return write_bytes_atomic(path, render_png(fig))


def learning_curves_png(
    trials: Sequence[FrozenTrial], best: int | None, path: Path, *, metric: str, title: str
) -> Path:
    """The objective at each validation against the training examples seen, one line per trial.

    Pruned trials are grey and dashed with a cross where they stopped; the trial numbered ``best`` is drawn
    thick and red on top. The caller makes sure at least one trial has intermediate values.
    """
    fig = Figure(figsize=(8, 4.6), dpi=_DPI)
    ax = fig.add_subplot()
    curves = [t for t in trials if t.intermediate_values]
    palette = [f"C{i}" for i in (0, 2, 4, 6, 8, 9)]
    labelled: set[str] = set()

    def label_once(label: str) -> str:
        if label in labelled:
            return "_nolegend_"
        labelled.add(label)
        return label

    for index, trial in enumerate(t for t in curves if t.number != best):
        steps, values = _series(trial.intermediate_values)
        if trial.state is TrialState.PRUNED:
            ax.plot(steps, values, "--", color=_PRUNED, linewidth=1, label=label_once("pruned"))
            ax.plot(steps[-1], values[-1], "x", color=_PRUNED, markersize=7, markeredgewidth=1.5)
        elif trial.state is TrialState.FAIL:
            ax.plot(steps, values, ":", color=_FAILED, linewidth=1, alpha=0.7, label=label_once("failed"))
        else:
            ax.plot(
                steps,
                values,
                "-",
                color=palette[index % len(palette)],
                linewidth=1,
                alpha=0.75,
                marker="o" if len(steps) < 30 else None,
                markersize=2.5,
                label=f"trial {trial.number}" if len(curves) <= 10 else label_once("other trials"),
            )
    for trial in curves:
        if trial.number == best:
            steps, values = _series(trial.intermediate_values)
            ax.plot(
                steps,
                values,
                "-",
                color=_BEST,
                linewidth=2.5,
                marker="o" if len(steps) < 30 else None,
                markersize=4,
                label=f"best: trial {trial.number}",
                zorder=5,
            )
    ax.set_xlabel("training examples seen")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return write_bytes_atomic(path, render_png(fig))


def importances_png(importances: Mapping[str, float], path: Path, *, title: str) -> Path:
    """Horizontal bars of each parameter's share of the objective's variance, the largest on top."""
    ranked = sorted(importances.items(), key=lambda item: item[1])
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(ranked)), dpi=_DPI)
    ax = fig.add_subplot()
    names = [name for name, _ in ranked]
    values = [value for _, value in ranked]
    bars = ax.barh(names, values, color=_COMPLETE)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(values, default=0.0)) * 1.12)
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return write_bytes_atomic(path, render_png(fig))


def last_value(trial: FrozenTrial) -> float | None:
    """The last reported intermediate value, or the trial's value when it reported none."""
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return trial.value


def _series(values: Mapping[int, float]) -> tuple[list[int], list[float]]:
    steps = sorted(values)
    return steps, [float(values[step]) for step in steps]
