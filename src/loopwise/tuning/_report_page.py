"""The tuning report's page: ``report.html`` rendered from the results document with its figures inlined
(its template extends the evaluation report's, so both reports look alike)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from loopwise.tuning.outcome import RERUN_OF, RETRY_OF, TRANSFERRED_FROM, WARM_START_OF
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.tuning.records import TuningJob
    from loopwise.tuning.report import Importances


@dataclass(frozen=True)
class Figures:
    """The report's figures, as written."""

    objective: Path
    curves: Path | None
    #: why there are no learning curves (None: there are)
    curves_note: str | None
    importances: Path | None


def render_page(job: TuningJob, document: dict[str, Any], importances: Importances, figures: Figures) -> str:
    """``report.html``: the results document as a page, its figures inlined."""
    spec = job_spec(job)
    metric, direction = spec.objective.metric, spec.objective.direction
    return _template("report.html").render(
        title=f"Tuning job {job.name}",
        headline_context=[
            ("status", job.status.value),
            ("objective", f"{metric} ({direction})"),
            ("strategy", spec.strategy),
            ("data set", spec.dataset),
        ],
        context=[(key, _text(value)) for key, value in job.spec.items()],
        job=document["job"],
        metric=metric,
        direction=direction,
        counts=document["counts"],
        best=document["best"],
        final_fit=document["final_fit"],
        ended_because=document["ended_because"],
        rows=document["trials"],
        importances=importances,
        objective_png=_data_uri(figures.objective),
        curves_png=_data_uri(figures.curves) if figures.curves else None,
        curves_note=figures.curves_note,
        importances_png=_data_uri(figures.importances) if figures.importances else None,
        generated_at=document["generated_at"],
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _origin(row: dict[str, Any]) -> str:
    """Where a trial came from, for the page (empty for a trial the job sampled itself)."""
    if row[RETRY_OF] is not None:
        return f"retry of trial {row[RETRY_OF]}"
    if row[RERUN_OF] is not None:
        return f"re-run of interrupted trial {row[RERUN_OF]}"
    if row[WARM_START_OF] is not None:
        return f"copied from {row[WARM_START_OF]}"
    if row[TRANSFERRED_FROM] is not None:
        return f"configuration of {row[TRANSFERRED_FROM]}"
    return ""


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


@cache
def _environment() -> jinja2.Environment:
    # The page extends the evaluation report's base template, so both reports look alike.
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("loopwise.tuning", "templates"),
                jinja2.PackageLoader("loopwise.evaluation", "templates"),
            ]
        ),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    env.filters["params"] = _params
    env.filters["seconds"] = _seconds
    env.filters["origin"] = _origin
    return env


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)
