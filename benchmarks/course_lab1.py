"""The course's Lab 1 redone on this machine: the course's tuning configuration against loopwise's default
tuning at the same compute budget, the bundled MiniLM on the course split, each best model evaluated once
on the test split, and the paired comparison of the two.

* ``course``: ``specs/course_lab1.yaml`` as the course wrote it (learning rate 1e-5..5e-5 linear, batch
  size 128 or 256, Random, 2 trials, 2 in parallel, 3 epochs of at most 50 steps, the median rule), each
  trial capped at half the budget (``max_examples_per_trial``) so that its two parallel trials fit it;
* ``default``: ``specs/default_bayesian.yaml`` unchanged (multivariate TPE with the median stopping rule over
  learning rate, warmup, weight decay, batch size and frozen layers; 3 epochs the fidelity) with the same
  budget as its completion criterion (``completion.max_examples``) and the same per-trial cap.

Compute is counted in training examples processed (validation passes are not counted), so the two runs
get the same budget whatever else the machine is doing; the wall time of each is reported beside it.
Trials run as real tuning jobs (a process each, Optuna's storage in a private SQLite database under
``--home``). Prints JSON and writes benchmarks/results/course_lab1.json (keys ``test_accuracy``,
``course_config_test_accuracy``, ``gain_vs_course_config``).

    python benchmarks/course_lab1.py [--budget 20000] [--home DIR] [--only course|default]

Rerunning with the same ``--home`` goes on with the jobs already there (a finished job is not rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from loopwise.config import Settings
from loopwise.data.cache import fetch_reviews
from loopwise.data.service import prepare_reviews
from loopwise.errors import NotFoundError
from loopwise.evaluation.service import compare
from loopwise.storage import Store
from loopwise.storage.artifacts.local import local_path
from loopwise.tuning import builtin_spec_path, load_spec, parse_spec
from loopwise.tuning.outcome import examples_spent
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_trials, resume_job, start_job

RESULTS = Path(__file__).parent / "results" / "course_lab1.json"
COURSE_TEST_ACCURACY = 0.767
RUNS = {"course": "course_lab1", "default": "default_bayesian"}


def spec_for(run: str, dataset: str, budget: int, **overrides: Any) -> dict[str, Any]:
    """The run's built-in spec on ``dataset`` with ``budget``; ``overrides`` (``base_model``, say) are set
    on top (benchmarks/gpu.py runs the course's spec with roberta-base)."""
    spec = load_spec(builtin_spec_path(RUNS[run])).to_dict()
    name = f"lab1-{run}" if run == "course" else f"lab1-{run}-{spec['strategy']}-{spec['early_stopping']}"
    spec.update({"name": name, "dataset": dataset, "max_examples_per_trial": budget // 2} | overrides)
    if run == "default":
        spec["completion"] = {**spec["completion"], "max_examples": budget}
    return spec


def run_tuning(
    store: Store, run: str, dataset: str, budget: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec = parse_spec(spec_for(run, dataset, budget, **(overrides or {})), source=f"course_lab1.py ({run})")
    started = time.monotonic()

    def show(trial: Any) -> None:
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        print(
            f"[{run}] trial {trial.number}: {trial.state.name.lower()} val_acc {value} "
            f"{trial.user_attrs.get('examples', 0)} examples {trial.params} "
            f"({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    try:
        with store.uow() as uow:
            uow.tuning_jobs.get(spec.name)
    except NotFoundError:
        start_job(store, spec)
    job = resume_job(store, spec.name, progress=show)
    wall = time.monotonic() - started
    job, trials = job_trials(store, spec.name)
    if job.status is not JobStatus.COMPLETED or job.best_model_version_id is None:
        raise SystemExit(f"the {run} tuning job ended {job.status.value}: {job.error}")
    with store.uow() as uow:
        best = uow.models.get_by_id(job.best_model_version_id)
        evaluation = next(e for e in uow.evaluations.for_model(best.id) if e.id == job.test_evaluation_id)
    figures = json.loads((local_path(evaluation.report_uri).parent / "evaluation.json").read_text())
    return {
        "job": job.name,
        "spec": spec.to_dict(),
        "best_model": best.ref,
        "best_trial": job.best_trial,
        "best_params": {k: v for k, v in best.params.items() if k in {p.name for p in spec.parameters}},
        "validation_accuracy": best.metrics.get("val_acc"),
        "test_accuracy": figures["metrics"]["accuracy"]["value"],
        "test_accuracy_ci95": figures["metrics"]["accuracy"].get("ci95"),
        "test_macro_f1": figures["metrics"]["macro_f1"]["value"],
        "examples_processed": examples_spent(trials),
        "trials": [
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "val_acc": t.value,
                "examples": t.user_attrs.get("examples"),
                "params": t.params,
            }
            for t in trials
        ],
        "wall_s_this_session": round(wall, 1),
        "trial_wall_s": round(
            sum(
                (t.datetime_complete - t.datetime_start).total_seconds()
                for t in trials
                if t.datetime_start and t.datetime_complete
            ),
            1,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=int, default=20_000, help="training examples per tuning job")
    parser.add_argument("--home", type=Path, help="loopwise home for the two jobs (default: a new folder)")
    parser.add_argument("--only", choices=sorted(RUNS), help="run one of the two jobs")
    args = parser.parse_args()

    user = Settings()
    home = (
        args.home
        or user.resolved_cache_dir.parent / "benchmarks" / f"course_lab1-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    )
    settings = Settings(home=home, cache_dir=user.resolved_cache_dir)  # the seeded data cache, not a new one
    store = Store.open(settings)
    try:
        dataset = prepare_reviews(store, fetch_reviews(settings))
        runs = [args.only] if args.only else ["course", "default"]
        results = {run: run_tuning(store, run, dataset.ref, args.budget) for run in runs}
        comparison = None
        if len(results) == 2:
            comparison = compare(
                store, results["course"]["best_model"], results["default"]["best_model"], dataset.ref, "test"
            ).comparison
    finally:
        store.close()

    document: dict[str, Any] = {
        "benchmark": "course_lab1",
        "command": "python benchmarks/course_lab1.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "model": "all-MiniLM-L6-v2 (bundled, 22M parameters)",
        "dataset": f"{dataset.ref}: course split "
        + " / ".join(f"{s} {info.rows}" for s, info in dataset.splits.items()),
        "budget_examples": args.budget,
        "course_reference_test_accuracy": COURSE_TEST_ACCURACY,
        "course_reference": "roberta-base (125M parameters), 36-vCPU instance, the course's tuning job",
        "runs": results,
    }
    if "default" in results:
        document["test_accuracy"] = results["default"]["test_accuracy"]
    if "course" in results:
        document["course_config_test_accuracy"] = results["course"]["test_accuracy"]
    if comparison is not None:
        document["gain_vs_course_config"] = round(
            results["default"]["test_accuracy"] - results["course"]["test_accuracy"], 4
        )
        document["paired_comparison"] = comparison
    print(json.dumps(document, indent=2, default=str))
    if len(results) == 2:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
