"""The monitoring report of an endpoint: its checks over time as JSON and one HTML page with plots.

Drift statistics over time per variant (each test's effect size, a cross where it fired), the latest
window's length and confidence histograms against the baseline's, and accuracy over time from ground
truth with the estimate from calibrated confidences beside it. Built from the JSON reports that
``loopwise monitor run`` and the schedules wrote.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
from matplotlib.figure import Figure

from loopwise.errors import LoopwiseError, NotFoundError
from loopwise.evaluation._files import write_text_atomic
from loopwise.evaluation.plots import render_png

if TYPE_CHECKING:
    from loopwise.storage import Store

DRIFT_TESTS = ("embeddings", "predicted_class", "confidence", "length")


def load_reports(store: Store, endpoint: str) -> list[dict[str, Any]]:
    """The endpoint's monitoring reports, oldest first (unreadable ones are skipped)."""
    from loopwise.monitoring.service import REPORT_FILE

    reports = []
    for key in store.artifacts.list(f"monitoring/reports/{endpoint}"):
        if key.endswith("/summary"):
            continue
        try:
            reports.append(json.loads(store.artifacts.read_bytes(key, REPORT_FILE)))
        except (LoopwiseError, OSError, json.JSONDecodeError):
            continue
    return reports


def write_report(store: Store, endpoint: str, out: Path | None = None) -> Path:
    """``report.json`` and ``report.html`` of the endpoint's checks so far, in ``out`` (default:
    ``monitoring/reports/<endpoint>/summary`` in the artifact store); returns the HTML page's local path."""
    reports = load_reports(store, endpoint)
    if not reports:
        raise NotFoundError(
            f"no monitoring report of {endpoint} yet: run `loopwise monitor run {endpoint} --baseline B` "
            "or create a schedule"
        )
    if out is None:
        key = f"monitoring/reports/{endpoint}/summary"
        return store.artifacts.write_with(key, lambda folder: _write(folder, endpoint, reports))
    out.mkdir(parents=True, exist_ok=True)
    return _write(out, endpoint, reports)


def _write(out: Path, endpoint: str, reports: list[dict[str, Any]]) -> Path:
    series = _series(reports)
    latest = reports[-1]
    figures = {
        "drift": _drift_figure(series),
        "histograms": _histogram_figure(latest),
        "accuracy": _accuracy_figure(series),
    }
    summary = {"endpoint": endpoint, "runs": len(reports), "series": series, "latest": latest}
    write_text_atomic(out / "report.json", json.dumps(summary, indent=2, default=str) + "\n")
    page = (
        _environment()
        .get_template("report.html")
        .render(
            endpoint=endpoint,
            runs=len(reports),
            latest=latest,
            images={name: _data_uri(png) for name, png in figures.items() if png is not None},
        )
    )
    return write_text_atomic(out / "report.html", page)


def _series(reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per variant, one point per report: when, each drift test's effect and whether it fired, and the
    model quality figures."""
    series: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        at = report["window"]["end"]
        for variant, found in report["variants"].items():
            fired = {v["constraint"] for v in found.get("violations", [])}
            series.setdefault(variant, []).append(
                {
                    "at": at,
                    "status": found["status"],
                    "drift": {
                        name: {"effect": test["effect"], "p_value": test["p_value"], "fired": name in fired}
                        for name, test in found.get("drift", {}).items()
                    },
                    "estimated_accuracy": found.get("model_quality", {}).get("estimated_accuracy"),
                    "accuracy": found.get("model_quality", {}).get("accuracy"),
                }
            )
    return series


def _times(points: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(p["at"]) for p in points]


def _drift_figure(series: dict[str, list[dict[str, Any]]]) -> bytes:
    fig = Figure(figsize=(11, 6.5), dpi=100)
    axes = fig.subplots(2, 2, sharex=True).flatten()
    for ax, name in zip(axes, DRIFT_TESTS, strict=True):
        for variant, points in sorted(series.items()):
            shown = [
                (t, p["drift"][name])
                for t, p in zip(_times(points), points, strict=True)
                if name in p["drift"]
            ]
            if not shown:
                continue
            times, tests = zip(*shown, strict=True)
            line = ax.plot(times, [t["effect"] for t in tests], marker="o", markersize=3, label=variant)[0]
            fired = [(t, test["effect"]) for t, test in shown if test["fired"]]
            if fired:
                ax.scatter(*zip(*fired, strict=True), marker="x", s=60, color=line.get_color(), zorder=3)
        ax.set_title(f"{name} drift (effect size; x: fired)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.tick_params(axis="x", labelrotation=30)
    return render_png(fig)


def _histogram_figure(report: dict[str, Any]) -> bytes | None:
    variants = {v: f["histograms"] for v, f in report["variants"].items() if f.get("histograms")}
    if not variants:
        return None
    fig = Figure(figsize=(11, 3.4 * len(variants)), dpi=100)
    axes = np.atleast_2d(fig.subplots(len(variants), 2))
    for row, (variant, histograms) in zip(axes, sorted(variants.items()), strict=True):
        for ax, name in zip(row, ("chars", "confidence"), strict=True):
            found = histograms[name]
            positions = np.arange(len(found["window"]))
            for counts, label, offset in (
                (found["baseline"], "baseline", -0.2),
                (found["window"], "window", 0.2),
            ):
                total = max(1, sum(counts))
                ax.bar(positions + offset, np.array(counts) / total, width=0.4, label=label)
            edges = found["edges"]
            ax.set_xticks(
                positions[::4], [f"{e:.0f}" if name == "chars" else f"{e:.1f}" for e in edges[:-1][::4]]
            )
            ax.set_title(
                f"{variant}: {'text length (characters)' if name == 'chars' else 'top-class confidence'}"
            )
            ax.set_ylabel("share")
            ax.legend(fontsize="small")
    return render_png(fig)


def _accuracy_figure(series: dict[str, list[dict[str, Any]]]) -> bytes | None:
    if not any(p["estimated_accuracy"] is not None for points in series.values() for p in points):
        return None
    fig = Figure(figsize=(11, 4), dpi=100)
    ax = fig.subplots()
    for variant, points in sorted(series.items()):
        times = _times(points)
        estimate = [
            (t, p["estimated_accuracy"])
            for t, p in zip(times, points, strict=True)
            if p["estimated_accuracy"] is not None
        ]
        truth = [(t, p["accuracy"]) for t, p in zip(times, points, strict=True) if p["accuracy"] is not None]
        colour = None
        if truth:
            colour = ax.plot(*zip(*truth, strict=True), marker="o", label=f"{variant} accuracy")[
                0
            ].get_color()
        if estimate:
            ax.plot(*zip(*estimate, strict=True), linestyle="--", color=colour, label=f"{variant} estimated")
    ax.set_title("accuracy over time: from ground truth (solid) and estimated from confidences (dashed)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=30)
    return render_png(fig)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("loopwise.monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
