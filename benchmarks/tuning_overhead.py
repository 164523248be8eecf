"""Tuner bookkeeping per trial: everything a tuning job spends on a trial besides training, on SQLite and on
PostgreSQL, with loopwise's fork server and with a fresh interpreter per trial side by side.

A job of ``--trials`` sequential trials trains the TF-IDF backend on a small data set (so that training
itself is short and the bookkeeping stands out). Per trial, bookkeeping is the job's wall time divided by
the trials, minus the trial's training: the wall time of its training run as the training service records
it (``training_runs.started_at`` to ``finished_at``: reading the data, fitting, validating, saving the
checkpoint). What is left is the tuner's work: asking and sampling under the job's lock, heartbeats,
starting the trial's process, loading the study, reporting, telling, registering the model version,
checkpoint retention, and the job's end (the best model's alias; its test evaluation is switched off here by
giving the data set no test split, since it is done once per job, not per trial).

The fork server is started once before the measurements, as a worker starts it once for all its trials;
its start-up is reported apart (``fork_server_start_s``).

Target: under 1 s per trial on each database. Prints JSON and writes
benchmarks/results/tuning_overhead.json (keys ``sqlite_s_per_trial``, ``postgresql_s_per_trial``).

    python benchmarks/tuning_overhead.py [--trials 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from loopwise.config import Settings
from loopwise.data.service import import_dataset
from loopwise.storage import Store
from loopwise.tuning import executors, parse_spec
from loopwise.tuning.service import job_trials, run_job, start_job

RESULTS = Path(__file__).parent / "results" / "tuning_overhead.json"
WORDS = {"-1": "awful terrible broken poor", "0": "okay average plain fine", "1": "great lovely perfect nice"}


def small_csv(path: Path, rows_per_label: int = 100) -> Path:
    rng = random.Random(0)
    rows = [
        {"review": f"{' '.join(rng.sample(words.split(), 2))} item {i}", "stars": label}
        for label, words in WORDS.items()
        for i in range(rows_per_label)
    ]
    rng.shuffle(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "stars"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def measure(settings: Settings, trials: int, fork_server: bool, workdir: Path) -> dict[str, Any]:
    store = Store.open(settings)
    try:
        dataset = import_dataset(
            store,
            small_csv(workdir / "small.csv"),
            name="small",
            text_column="review",
            label_column="stars",
            train=0.8,
            validation=0.2,
            test=0.0,
        )
        name = f"overhead-{uuid.uuid4().hex[:6]}"
        spec = parse_spec(
            {
                "name": name,
                "dataset": dataset.ref,
                "backend": "tfidf",
                "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3}},
                "strategy": "bayesian",
                "max_trials": trials,
            }
        )
        original = executors.ProcessExecutor.__init__

        def patched(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **{**kwargs, "fork_server": fork_server})

        executors.ProcessExecutor.__init__ = patched  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            start_job(store, spec)
            job = run_job(store, name)
            wall = time.perf_counter() - started
        finally:
            executors.ProcessExecutor.__init__ = original  # type: ignore[method-assign]
        _, done = job_trials(store, name)
        with store.uow() as uow:
            runs = [uow.runs.get(t.user_attrs["run_id"]) for t in done]
    finally:
        store.close()
    training = [
        (r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at and r.started_at
    ]
    assert job.status.value == "completed" and len(training) == trials, (job.status, job.error)
    per_trial = wall / trials
    return {
        "job_wall_s": round(wall, 3),
        "wall_s_per_trial": round(per_trial, 3),
        "training_s_per_trial": round(sum(training) / trials, 3),
        "bookkeeping_s_per_trial": round(per_trial - sum(training) / trials, 3),
    }


def start_fork_server() -> float:
    """Start the executors' fork server (as a worker's first trial would) and return how long it took; a
    worker pays this once, however many trials it runs, so it is measured apart from the per-trial figures."""
    context = executors._fork_server()
    assert context is not None, "the fork server needs Linux"
    started = time.perf_counter()
    process = context.Process(target=os.getpid)
    process.start()
    process.join()
    return round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    fork_server_start_s = start_fork_server()
    print("fork server started in", fork_server_start_s, "s", file=sys.stderr, flush=True)
    figures: dict[str, Any] = {}
    for database in ("sqlite", "postgresql"):
        for fork_server in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                url = None
                schema = None
                if database == "postgresql":
                    import psycopg

                    schema = f"bench_{uuid.uuid4().hex[:8]}"
                    with psycopg.connect(args.postgres.replace("+psycopg", ""), autocommit=True) as conn:
                        conn.execute(f"CREATE SCHEMA {schema}")
                    url = f"{args.postgres}?options=-csearch_path%3D{schema}"
                try:
                    settings = Settings(home=Path(tmp) / "home", database_url=url)
                    key = f"{database}_{'fork_server' if fork_server else 'new_interpreter'}"
                    figures[key] = measure(settings, args.trials, fork_server, Path(tmp))
                    print(key, figures[key], file=sys.stderr, flush=True)
                finally:
                    if schema is not None:
                        with psycopg.connect(args.postgres.replace("+psycopg", ""), autocommit=True) as conn:
                            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    document = {
        "benchmark": "tuning_overhead",
        "command": "python benchmarks/tuning_overhead.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "trials": args.trials,
        "sqlite_s_per_trial": figures["sqlite_fork_server"]["bookkeeping_s_per_trial"],
        "postgresql_s_per_trial": figures["postgresql_fork_server"]["bookkeeping_s_per_trial"],
        "fork_server_start_s": fork_server_start_s,
        "fork_server_speedup_sqlite": round(
            figures["sqlite_new_interpreter"]["bookkeeping_s_per_trial"]
            / figures["sqlite_fork_server"]["bookkeeping_s_per_trial"],
            2,
        ),
        "runs": figures,
    }
    print(json.dumps(document, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
