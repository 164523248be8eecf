"""A tuning job's results on disk: ``results.json`` for programs, one self-contained HTML page for people.

The page shows why the search ended, the best trial and its model, the final model (the best
configuration trained again after the search, :mod:`loopwise.tuning.final_fit`), every trial ranked by
objective, three figures (objective per trial with the running best, learning curves from the values each
trial reported while training, parameter importances) and the job's spec. A figure that cannot be drawn
(no trial reported intermediate values, too few complete trials for importances) is left out and the page
says why. Every file is written atomically; the HTML page is written last, so its presence means the
report is whole.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from loopwise.errors import DataFormatError
from loopwise.evaluation._files import write_text_atomic
from loopwise.tuning import _plots
from loopwise.tuning._report_page import Figures, render_page
from loopwise.tuning.final_fit import STATE as FINAL_FIT_STATE
from loopwise.tuning.outcome import ENDED_BECAUSE, RERUN_OF, RETRY_OF, TRANSFERRED_FROM, WARM_START_OF
from loopwise.tuning.records import TuningJob
from loopwise.tuning.space import decode_params, optuna_name
from loopwise.tuning.spec import job_spec

__all__ = [
    "Importances",
    "TuningReport",
    "best_trial_number",
    "parameter_importances",
    "running_best",
    "trial_rows",
    "write_tuning_report",
]

RESULTS_JSON = "results.json"
OBJECTIVE_PNG = "objective.png"
CURVES_PNG = "learning_curves.png"
IMPORTANCES_PNG = "importances.png"
REPORT_HTML = "report.html"

# Where a trial came from: user attributes the tuning service sets.
_ORIGINS = (RETRY_OF, RERUN_OF, WARM_START_OF, TRANSFERRED_FROM)
# Below this many complete trials fANOVA's forest has little to go on; the page says so.
_FEW_TRIALS = 10


@dataclass(frozen=True)
class TuningReport:
    """Where :func:`write_tuning_report` put each file; a figure that was not drawn is ``None``."""

    json: Path
    html: Path
    objective_png: Path
    curves_png: Path | None
    importances_png: Path | None


@dataclass(frozen=True)
class Importances:
    """Each searched parameter's share of the objective's variance over the complete trials (fANOVA,
    summing to 1), or ``None`` with ``note`` saying why they could not be computed. ``note`` may also
    qualify computed values (few trials, parameters left out because they never changed)."""

    values: dict[str, float] | None
    note: str | None = None


def trial_rows(job: TuningJob, trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One JSON-able row per trial, best objective first (by the job's direction); trials without a value
    come last, in number order.

    Each row has ``number``, ``state`` (lowercase), ``objective``, ``params`` (hyperparameter values, as
    the spec names them), ``duration_s``, ``reports`` (intermediate values reported), ``last_step`` (the
    training examples seen at the last one), ``started_at``, ``completed_at``, ``model_ref``,
    ``model_version_id``, ``run_id``, ``error``, ``stopped_by``, where the trial came from (``retry_of``,
    ``rerun_of``: a trial number; ``warm_start_of``, ``transferred_from``: ``parent#number``; each
    ``None`` otherwise) and ``best``. The best trial is the job's ``best_trial`` once it is recorded, else
    its best own complete trial so far (trials copied from warm-start parents never are).
    """
    spec = job_spec(job)
    best = best_trial_number(job, trials)
    rows = []
    for trial in _ranked(trials, maximize=spec.objective.direction == "maximize"):
        attrs = trial.user_attrs
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "objective": _finite(trial.value),
                "params": decode_params(spec, trial.params),
                "duration_s": _duration(trial),
                "reports": len(trial.intermediate_values),
                "last_step": max(trial.intermediate_values, default=None),
                "started_at": _iso(trial.datetime_start),
                "completed_at": _iso(trial.datetime_complete),
                "model_ref": attrs.get("model_ref"),
                "model_version_id": attrs.get("model_version_id"),
                "run_id": attrs.get("run_id"),
                "error": attrs.get("error"),
                "stopped_by": attrs.get("stopped_by"),
                **{key: attrs.get(key) for key in _ORIGINS},
                "best": trial.number == best,
            }
        )
    return rows


def best_trial_number(job: TuningJob, trials: Sequence[FrozenTrial]) -> int | None:
    """The job's recorded best trial, or (while it runs) the number of its best complete trial so far."""
    if job.best_trial is not None:
        return job.best_trial
    best_so_far = running_best(trials, job_spec(job).objective.direction)
    if not best_so_far:
        return None
    best_value = best_so_far[-1][1]
    return min(t.number for t in _complete(_own(trials)) if t.value == best_value)


def running_best(trials: Sequence[FrozenTrial], direction: str) -> list[tuple[int, float]]:
    """``(trial number, best objective so far)`` after each of the job's own complete trials (not those
    copied from warm-start parents), in number order."""
    pick = max if direction == "maximize" else min
    points: list[tuple[int, float]] = []
    for trial in sorted(_complete(_own(trials)), key=lambda t: t.number):
        assert trial.value is not None
        value = trial.value if not points else pick(points[-1][1], trial.value)
        points.append((trial.number, float(value)))
    return points


def parameter_importances(job: TuningJob, trials: Sequence[FrozenTrial]) -> Importances:
    """fANOVA importances (fixed seed, so the same trials give the same values) of the searched parameters
    over the complete trials. Never raises: when they cannot be computed, ``values`` is ``None`` and
    ``note`` says why."""
    spec = job_spec(job)
    complete = _complete(trials)
    if len(complete) < 2:
        return Importances(
            None,
            f"Parameter importances need at least 2 complete trials; this job has {len(complete)}.",
        )
    names = {optuna_name(p): p.name for p in spec.parameters}
    shared = [key for key in names if all(key in t.params for t in complete)]
    varied = [key for key in shared if len({repr(t.params[key]) for t in complete}) > 1]
    if not varied:
        return Importances(
            None,
            "Parameter importances need a searched parameter whose value differs between complete trials; "
            "every complete trial used the same values.",
        )
    if len({t.value for t in complete}) < 2:
        return Importances(
            None,
            "Parameter importances need the objective to differ between complete trials; every complete "
            f"trial scored {complete[0].value}.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's experimental and sklearn's numeric warnings
            study = _scratch_study(spec.objective.direction)
            study.add_trials(complete)
            raw = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varied
            )
    except Exception as exc:  # fANOVA refuses some inputs (zero variance, odd distributions)
        return Importances(None, f"Parameter importances could not be computed: {exc}")
    values = {names[key]: float(value) for key, value in raw.items()}
    if not all(math.isfinite(v) for v in values.values()):
        return Importances(None, "Parameter importances could not be computed: fANOVA gave no finite values.")
    notes = []
    fixed = [names[key] for key in shared if key not in varied]
    if fixed:
        notes.append(f"Left out, as every complete trial used the same value: {', '.join(fixed)}.")
    if len(complete) < _FEW_TRIALS:
        notes.append(f"Computed from {len(complete)} complete trials only: read them as a rough guide.")
    return Importances(values, " ".join(notes) or None)


def write_tuning_report(
    job: TuningJob,
    trials: Sequence[FrozenTrial],
    out_dir: str | Path,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> TuningReport:
    """Write ``results.json``, ``objective.png``, ``learning_curves.png``, ``importances.png`` and
    ``report.html`` into ``out_dir`` (created if missing; files already there are replaced).

    ``trials`` are the job's study's trials (:func:`loopwise.tuning.service.job_trials`), ``attrs`` its
    study's user attributes (:func:`loopwise.tuning.service.job_attrs`: why the search ended, the final
    fit; the document's ``ended_because`` and ``final_fit``, None without them). A figure that
    cannot be drawn is not written (its path in the result is ``None``; a stale one from an earlier report
    is removed) and the page says why. Raises :class:`DataFormatError` when the results are not JSON-able.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = job_spec(job)
    metric, direction = spec.objective.metric, spec.objective.direction
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = trial_rows(job, trials)
    best_row = next((row for row in rows if row["best"]), None)
    best_so_far = running_best(trials, direction)
    importances = parameter_importances(job, trials)

    figures = _draw(job, trials, rows, best_so_far, importances, out)
    document = {
        "job": _job_summary(job),
        "objective": {"metric": metric, "direction": direction},
        "counts": _counts(trials),
        "best": best_row,
        "final_fit": (attrs or {}).get(FINAL_FIT_STATE),
        "ended_because": (attrs or {}).get(ENDED_BECAUSE),
        "running_best": [{"trial": number, "objective": value} for number, value in best_so_far],
        "trials": rows,
        "importances": {"values": importances.values, "note": importances.note},
        "generated_at": generated_at,
    }
    json_path = write_text_atomic(out / RESULTS_JSON, _dumps(document))
    page = render_page(job, document, importances, figures)
    html_path = write_text_atomic(out / REPORT_HTML, page)
    return TuningReport(
        json=json_path,
        html=html_path,
        objective_png=figures.objective,
        curves_png=figures.curves,
        importances_png=figures.importances,
    )


def _draw(
    job: TuningJob,
    trials: Sequence[FrozenTrial],
    rows: list[dict[str, Any]],
    best_so_far: list[tuple[int, float]],
    importances: Importances,
    out: Path,
) -> Figures:
    """Draw the report's figures into ``out``; a figure that has nothing to show removes a stale one."""
    spec = job_spec(job)
    metric, direction = spec.objective.metric, spec.objective.direction
    best_row = next((row for row in rows if row["best"]), None)
    objective = _plots.objective_png(
        trials,
        best_so_far,
        out / OBJECTIVE_PNG,
        metric=metric,
        direction=direction,
        title=f"{job.name}: {metric} per trial",
        copied={row["number"] for row in rows if row[WARM_START_OF] is not None},
    )
    curves: Path | None = None
    curves_note = None
    if any(t.intermediate_values for t in trials):
        curves = _plots.learning_curves_png(
            trials,
            best_row["number"] if best_row else None,
            out / CURVES_PNG,
            metric=metric,
            title=f"{job.name}: {metric} during training",
        )
    else:
        curves_note = "No trial reported intermediate values yet, so there are no learning curves."
        (out / CURVES_PNG).unlink(missing_ok=True)
    bars: Path | None = None
    if importances.values:
        bars = _plots.importances_png(
            importances.values, out / IMPORTANCES_PNG, title=f"{job.name}: parameter importances (fANOVA)"
        )
    else:
        (out / IMPORTANCES_PNG).unlink(missing_ok=True)
    return Figures(objective, curves, curves_note, bars)


# --- internals -------------------------------------------------------------------------------------------


def _ranked(trials: Sequence[FrozenTrial], *, maximize: bool) -> list[FrozenTrial]:
    def key(trial: FrozenTrial) -> tuple[bool, float, int]:
        value = _finite(trial.value)
        if value is None:
            return (True, 0.0, trial.number)
        return (False, -value if maximize else value, trial.number)

    return sorted(trials, key=key)


def _scratch_study(direction: str) -> optuna.Study:
    """An in-memory study to hand fANOVA, made without Optuna's "new study created" log line."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(direction=optuna.study.StudyDirection[direction.upper()])
    finally:
        optuna.logging.set_verbosity(verbosity)


def _own(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if WARM_START_OF not in t.user_attrs]


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state is TrialState.COMPLETE and _finite(t.value) is not None]


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _duration(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    counts = {"total": len(trials)}
    for state in TrialState:
        counts[state.name.lower()] = sum(1 for t in trials if t.state is state)
    return counts


def _job_summary(job: TuningJob) -> dict[str, Any]:
    return {
        "name": job.name,
        "status": job.status.value,
        "study_name": job.study_name,
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
        "best_trial": job.best_trial,
        "best_model_version_id": job.best_model_version_id,
        "error": job.error,
        "spec": job.spec,
    }


def _dumps(document: dict[str, Any]) -> str:
    try:
        return json.dumps(document, indent=2, allow_nan=False, default=str, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"the tuning results cannot be written as JSON ({exc})") from exc
