"""The main job as a user runs it, timed, and its champion against the TF-IDF baseline on the test split.

1. ``loopwise demo --no-serve`` with the default options (budget 12,000 training examples, at most 4,000 a
   trial, 8 trials at most) in a fresh loopwise home (``--home``), the course CSV from ../shared/data when it
   is there (``--file``, as ``make seed`` does for the demo), else the demo's own download; the wall time of
   the whole command is ``wall_time_s``.
2. The champion is the tuning job's best model: its final fit (the best configuration trained on the whole
   training split after the search) as the demo registered it. (The demo's retraining pipeline may promote a
   retrained model afterwards; it is reported as ``champion_after_pipeline`` but not compared.)
3. ``loopwise train --backend tfidf`` on the same data set version, evaluated once on the test split.
4. The paired comparison on the test split (:func:`loopwise.evaluation.service.compare`): McNemar's exact
   test (``p_value``) and the paired bootstrap interval of the accuracy difference.

Also recorded: the best trial's validation accuracy and test accuracy (its model evaluated here, for the
record: tuning never saw the test split), the final fit's examples (outside the search's budget), epochs
and wall time. Writes benchmarks/results/main_job.json (or ``--out``).

    python benchmarks/main_job.py --home DIR [--budget N --per-trial N --max-trials N --final-epochs N]
                                  [--out FILE]

A quick end-to-end check of the script (minutes, not the main job's hour):
``--budget 300 --per-trial 150 --max-trials 2 --final-epochs 1 --out /tmp/x.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from loopwise.config import Settings
from loopwise.evaluation.service import compare, evaluate
from loopwise.storage import Store
from loopwise.tuning.service import job_final_fit, job_trials, list_jobs

RESULTS = Path(__file__).parent / "results" / "main_job.json"
SHARED_REVIEWS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "womens_clothing_ecommerce_reviews.csv"
)
TFIDF_NAME = "reviews-tfidf-baseline"
LOOPWISE = [sys.executable, "-c", "from loopwise.cli import main; main()"]


def run_loopwise(home: Path, *args: str) -> float:
    """Run ``loopwise ARGS`` in ``home`` as a user would (its output passed through); its wall time."""
    env = {**os.environ, "LOOPWISE_HOME": str(home)}
    env.pop("LOOPWISE_DATABASE_URL", None)
    started = time.monotonic()
    subprocess.run([*LOOPWISE, *args], env=env, check=True)
    return time.monotonic() - started


def demo_args(args: argparse.Namespace) -> list[str]:
    """The demo's command line: its defaults unless a pass-through option was given."""
    command = ["demo", "--no-serve"]
    for option in ("budget", "per_trial", "max_trials", "final_epochs"):
        value = getattr(args, option)
        if value is not None:
            command += [f"--{option.replace('_', '-')}", str(value)]
    if SHARED_REVIEWS.exists():
        command += ["--file", str(SHARED_REVIEWS)]
    return command


def tuned(store: Store) -> dict[str, Any]:
    """The demo's tuning job: its final model, best trial and final fit."""
    job = list_jobs(store)[-1]
    _, trials = job_trials(store, job.name)
    trial = next(t for t in trials if t.number == job.best_trial)
    with store.uow() as uow:
        champion = uow.models.get_by_id(int(job.best_model_version_id or 0))
    return {"job": job, "trial": trial, "champion": champion, "final_fit": job_final_fit(store, job.name)}


def tfidf_model(store: Store) -> str:
    with store.uow() as uow:
        return str(max(uow.models.list(TFIDF_NAME), key=lambda m: m.version).ref)


def measure(home: Path, demo_wall_s: float) -> dict[str, Any]:
    store = Store.open(Settings(home=home))
    try:
        found = tuned(store)
        job, trial, champion = found["job"], found["trial"], found["champion"]
        dataset = str(job.spec["dataset"])
        tfidf_wall_s = run_loopwise(
            home, "train", "--backend", "tfidf", "--dataset", dataset, "--name", TFIDF_NAME
        )
        baseline = tfidf_model(store)
        tfidf = evaluate(store, baseline, dataset, "test").record.metrics
        trial_test = evaluate(store, str(trial.user_attrs["model_ref"]), dataset, "test").record.metrics
        paired = compare(store, champion.ref, baseline, dataset, "test").comparison
        with store.uow() as uow:
            now = [m.ref for m in uow.models.list(champion.name) if "champion" in m.aliases]
            champion = uow.models.get_by_id(champion.id)
    finally:
        store.close()
    fit = found["final_fit"] or {}
    return {
        "champion_model": champion.ref,
        "champion_is_final_fit": bool(champion.params.get("final_fit")),
        "champion_test_accuracy": champion.metrics.get("test_accuracy"),
        "champion_validation_accuracy": champion.metrics.get("val_acc"),
        "tfidf_model": baseline,
        "tfidf_test_accuracy": tfidf["test_accuracy"],
        "p_value": paired["p_value"],
        "p_value_test": "McNemar's exact test (two-sided binomial on the discordant test rows)",
        "difference_tfidf_minus_champion": paired["difference"],
        "difference_ci95": paired["difference_ci"],
        "comparison": paired["summary"],
        "wall_time_s": round(demo_wall_s, 1),
        "tfidf_train_wall_time_s": round(tfidf_wall_s, 1),
        "best_trial": {
            "number": trial.number,
            "model": trial.user_attrs.get("model_ref"),
            "validation_accuracy": trial.value,
            "test_accuracy": trial_test["test_accuracy"],
            "examples": trial.user_attrs.get("examples"),
            "params": trial.params,
        },
        "final_fit": {
            "state": fit.get("state"),
            "data": fit.get("data"),
            "epochs": fit.get("epochs"),
            "examples": fit.get("examples"),
            "wall_s": fit.get("wall_s"),
            "validation": fit.get("validation"),
            "error": fit.get("error"),
        },
        "tuning_job": job.name,
        "dataset": dataset,
        "champion_after_pipeline": now[0] if now else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="a fresh loopwise home for the main job")
    parser.add_argument("--budget", type=int, help="the demo's --budget (default: the demo's, 12,000)")
    parser.add_argument("--per-trial", type=int, help="the demo's --per-trial (default: the demo's, 4,000)")
    parser.add_argument("--max-trials", type=int, help="the demo's --max-trials (default: the demo's, 8)")
    parser.add_argument(
        "--final-epochs", type=int, help="the demo's --final-epochs (default: the demo's, the best trial's)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    if args.home.exists() and any(args.home.iterdir()):
        parser.error(
            f"--home {args.home} is not empty: give a fresh folder (the main job runs as a new user's)"
        )
    command = demo_args(args)
    wall = run_loopwise(args.home, *command)
    result = {
        "benchmark": "main_job",
        "command": "loopwise " + " ".join(c if c != str(SHARED_REVIEWS) else "<course CSV>" for c in command),
        **measure(args.home, wall),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
