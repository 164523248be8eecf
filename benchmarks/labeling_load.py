"""Labeling under load: 50 simulated workers taking items and submitting answers at once over HTTP on
127.0.0.1, against loopwise's server on SQLite and on PostgreSQL, and against Label Studio 1.23 side by
side.

loopwise: a job of ``--items`` reviews with three workers per item and 50 workers of its team, each with
an API token. Each worker, in a loop until nothing is left for them: ``POST .../jobs/ID/next`` (the item
to answer), a pause while they read it (``--think``: uniform between half and one and a half times 1 s,
the pace of a fast keyboard labeler; 50 of them send about 100 requests a second), then
``POST .../assignments/ID/submit`` with a label. The same again without the pause (``saturated``: every
worker sends its next request the moment the last one is answered), for the throughput and what queueing
does to latency. The load comes from a second process (``_labeling_clients.py``: asyncio, one keep-alive
connection per worker); the server is ``loopwise server`` in a third. Figures:
p50 and p99 of next-item and of submit, and from the database afterwards: answers acknowledged but not
stored (``lost``), answers stored twice for one worker or beyond an item's three (``duplicated``), and
whether every item has exactly its three answers.

Label Studio 1.23: installed for this benchmark only, in its own environment (benchmarks/.venvs/label-studio:
label-studio and pyuwsgi), in two set-ups (``_label_studio.py``), both started before anything is measured
(then each mode runs loopwise and Label Studio one after the other: the machine's load drifts), with a
fresh project per mode asking three annotations per task (``maximum_annotations=3``) over the same items,
and the same 50 clients, each in a loop of ``GET /api/projects/ID/next/`` and
``POST /api/tasks/ID/annotations/`` until Label Studio has nothing left for it:

- ``label_studio`` (``dev``, the first comparison's): SQLite, ``label-studio start`` (Django's development
  server), one preset user whose token all 50 clients share. Label Studio locks a task per user, so it
  hands that user tasks the user is already annotating; each client stops after a bounded number of rounds.
- ``label_studio_production``: as a team deploys it: PostgreSQL (a fresh database on the local server,
  dropped afterwards), uWSGI as in its Docker image with one process per core, and 50 annotator accounts,
  each client with its own token. The run ends when every task has its three annotations; the project's
  JSON export is counted as loopwise's database is (``lost``: acknowledged but not exported, or missing
  from a task's three; ``duplicated``: a task annotated twice by one user, or beyond its three). It runs
  at a labeler's pace only, unless ``--label-studio-production-saturated``: at that pace the 50 clients
  already offer it several times the requests it answers, so the saturated mode measures the same queue
  again, for four to twelve more minutes on this machine.

Every run records the machine's load average at its start (two cores, shared with other work).

Prints JSON and writes benchmarks/results/labeling_load.json.

    python benchmarks/labeling_load.py [--items 400] [--workers 50] [--skip-label-studio]
        [--label-studio-setups dev,production] [--label-studio-production-saturated]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _label_studio
from _common import free_port, wait_http

RESULTS = Path(__file__).resolve().parent / "results" / "labeling_load.json"
CLIENTS = Path(__file__).resolve().parent / "_labeling_clients.py"  # the load generator
POSTGRES_URL = os.environ.get(
    "LOOPWISE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run_load(
    kind: str, url: str, job: int, authorizations: list[str], think_s: float, cap: int = 0
) -> dict[str, Any]:
    """The load of ``authorizations`` workers (one connection each) from a second process; ``cap``: the
    most rounds a Label Studio client makes."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        document = {"kind": kind, "url": url, "job": job, "authorizations": authorizations, "cap": cap}
        document["think_s"] = think_s
        json.dump(document, spec)
    try:
        out = subprocess.run(
            [sys.executable, str(CLIENTS), spec.name], capture_output=True, text=True, timeout=1800
        )
    finally:
        os.unlink(spec.name)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout))


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"count": 0}
    data = np.array(values)
    return {
        "count": len(values),
        "p50_ms": round(float(np.percentile(data, 50)), 2),
        "p99_ms": round(float(np.percentile(data, 99)), 2),
        "max_ms": round(float(data.max()), 2),
    }


# --- loopwise ---------------------------------------------------------------------------------------


def loopwise_run(database: str, items: int, workers: int, think_s: float) -> dict[str, Any]:
    from loopwise.config import Settings
    from loopwise.labeling import service
    from loopwise.labeling.jobs import COURSE_CATEGORIES
    from loopwise.labeling.manifest import parse_records
    from loopwise.storage import Store
    from loopwise.workforce import service as workforce

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LOOPWISE_HOME": home}
        schema = None
        if database == "postgresql":
            import psycopg

            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {schema}")
            separator = "&" if "?" in POSTGRES_URL else "?"
            env["LOOPWISE_DATABASE_URL"] = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
        else:
            env.pop("LOOPWISE_DATABASE_URL", None)
        settings = Settings(home=Path(home), database_url=env.get("LOOPWISE_DATABASE_URL"))
        store = Store.open(settings)
        try:
            workforce.create_team(store, "labelers")
            tokens = []
            for i in range(workers):
                email = f"load{i}@example.com"
                workforce.create_worker(store, email, teams=("labelers",))
                tokens.append(f"Bearer {workforce.create_token(store, email, 'load')}")
            records: list[object] = [
                {"source": f"review {i}: it fits and the color is lovely"} for i in range(items)
            ]
            job = service.create_job(
                store, "load", parse_records(records, where="load"), team="labelers",
                categories=list(COURSE_CATEGORIES), workers_per_item=3, task_time_limit_s=600,
            )  # fmt: skip
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from loopwise.cli import main; main()",
                    "server",
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", server)
                load_average = _load_average()
                measured = run_load("loopwise", f"http://127.0.0.1:{port}", job.id, tokens, think_s)
            finally:
                server.terminate()
                server.wait(timeout=60)
            with store.uow() as uow:
                answers = uow.labeling.answers(job.id)
                counters = uow.labeling.item_counters(job.id)
        finally:
            store.close()
            if schema is not None:
                import psycopg

                with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA {schema} CASCADE")
    stored = {a.assignment_id for a in answers}
    acknowledged = [aid for aid, status in measured["acks"] if status == 200]
    pairs = Counter((a.item_id, a.worker) for a in answers)
    per_item = Counter(a.item_id for a in answers)
    lost = sum(aid not in stored for aid in acknowledged)
    missing = sum(max(0, 3 - answers_count) for _, answers_count, _, _ in counters)
    duplicated = sum(n - 1 for n in pairs.values() if n > 1) + sum(max(0, n - 3) for n in per_item.values())
    return {
        "load_average_at_start": load_average,
        **_latencies(measured),
        "answers_acknowledged": len(acknowledged),
        "answers_stored": len(answers),
        "refused": Counter(status for _, status in measured["acks"] if status != 200),
        "lost": lost + missing,
        "duplicated": duplicated,
        "every_item_has_its_answers": all(n == 3 for _, n, _, _ in counters) and len(counters) == items,
        "wall_s": round(measured["wall_s"], 1),
    }


# --- Label Studio ---------------------------------------------------------------------------------------

LABEL_STUDIO_KEYS = {"dev": "label_studio", "production": "label_studio_production"}


def label_studio_run(
    deployment: _label_studio.Deployment, items: int, workers: int, mode: str, think_s: float
) -> dict[str, Any]:
    """One mode on a running Label Studio set-up, on a fresh project of its own."""
    shared = len(set(deployment.clients)) == 1
    # a user shared by all clients is handed tasks again: bounded as before; distinct users stop when
    # Label Studio has nothing left for them, which a user meets after at most one round a task
    cap = 3 * items // workers + 20 if shared else items
    project = _label_studio.create_project(deployment, items, f"load {mode}")
    load_average = _load_average()
    measured = run_load("label-studio", deployment.url, project, deployment.clients, think_s, cap)
    figures: dict[str, Any] = {"server": deployment.server, "load_average_at_start": load_average}
    figures |= _latencies(measured)
    figures |= _label_studio.tally(deployment, project, measured["acks"], items)
    if shared:
        taken = Counter(task for task, status, _ in measured["acks"] if status in (200, 201))
        figures["tasks_annotated_twice_by_its_one_user"] = sum(n - 1 for n in taken.values() if n > 1)
    figures["wall_s"] = round(measured["wall_s"], 1)
    return figures


def _latencies(measured: dict[str, Any]) -> dict[str, Any]:
    requests = len(measured["timings"]["next"]) + len(measured["timings"]["submit"])
    return {
        "next": percentiles(measured["timings"]["next"]),
        "submit": percentiles(measured["timings"]["submit"]),
        "requests_per_s": round(requests / measured["wall_s"], 1),
    }


def _load_average() -> list[float]:
    """The machine's load average (1, 5, 15 minutes): two cores shared with other work."""
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=400, help="items of the job (three answers each)")
    parser.add_argument("--workers", type=int, default=50, help="simulated workers at once")
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds a worker reads an item before answering (mean)"
    )
    parser.add_argument("--skip-label-studio", action="store_true", help="leave Label Studio out")
    parser.add_argument(
        "--label-studio-setups",
        default=",".join(LABEL_STUDIO_KEYS),
        help="Label Studio's set-ups to run, comma-separated: dev (SQLite, its development server, one "
        "shared user), production (PostgreSQL, uWSGI, one annotator a client)",
    )
    parser.add_argument(
        "--label-studio-production-saturated",
        action="store_true",
        help="also run Label Studio's production set-up without the pause (4 to 12 more minutes here; at "
        "a labeler's pace 50 clients already offer it several times the requests it answers)",
    )
    args = parser.parse_args()
    setups = [] if args.skip_label_studio else [s.strip() for s in args.label_studio_setups.split(",")]
    unknown = [s for s in setups if s not in LABEL_STUDIO_KEYS]
    if unknown or args.items < 1 or args.workers < 1 or args.think < 0:
        parser.error(
            f"--label-studio-setups: {', '.join(unknown)} not among {', '.join(LABEL_STUDIO_KEYS)}"
            if unknown
            else "--items and --workers must be at least 1, --think at least 0"
        )

    started = time.perf_counter()
    load_average = _load_average()
    modes = {"paced": args.think, "saturated": 0.0}
    figures: dict[str, dict[str, Any]] = {mode: {"think_s": think_s} for mode, think_s in modes.items()}
    with ExitStack() as stack:
        # Label Studio's set-ups are started (migrated, their accounts made) before anything is measured,
        # so that each mode's runs of every system follow one another within minutes: the machine's load
        # from other work drifts over a run of this length
        deployments: dict[str, _label_studio.Deployment] = {}
        for setup in setups:
            deployments[setup] = stack.enter_context(_label_studio.deploy(setup, args.workers, POSTGRES_URL))
        for mode, think_s in modes.items():
            for database in ("sqlite", "postgresql"):
                found = loopwise_run(database, args.items, args.workers, think_s)
                figures[mode][f"loopwise_{database}"] = found
                print(mode, database, json.dumps(found), file=sys.stderr, flush=True)
            for setup, deployment in deployments.items():
                if (
                    setup == "production"
                    and mode == "saturated"
                    and not args.label_studio_production_saturated
                ):
                    continue
                found = label_studio_run(deployment, args.items, args.workers, mode, think_s)
                figures[mode][LABEL_STUDIO_KEYS[setup]] = found
                print(mode, "label studio", setup, json.dumps(found), file=sys.stderr, flush=True)
    runs = [figures[m][f"loopwise_{d}"] for m in figures for d in ("sqlite", "postgresql")]
    paced = [figures["paced"][f"loopwise_{d}"] for d in ("sqlite", "postgresql")]
    result: dict[str, Any] = {
        "benchmark": "labeling_load",
        "command": "python benchmarks/labeling_load.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_at_start": load_average,
        # the worst of next-item and submit over both databases, workers at a labeler's pace
        "p99_ms": max(f[op]["p99_ms"] for f in paced for op in ("next", "submit")),
        "lost": sum(f["lost"] for f in runs),
        "duplicated": sum(f["duplicated"] for f in runs),
        "every_item_has_its_answers": all(f["every_item_has_its_answers"] for f in runs),
        "saturated_p99_ms": max(
            figures["saturated"][f"loopwise_{d}"][op]["p99_ms"]
            for d in ("sqlite", "postgresql")
            for op in ("next", "submit")
        ),
        "saturated_requests_per_s": {
            d: figures["saturated"][f"loopwise_{d}"]["requests_per_s"] for d in ("sqlite", "postgresql")
        },
        "items": args.items,
        "workers": args.workers,
        "think_s": args.think,
    }
    for setup in setups:
        key = LABEL_STUDIO_KEYS[setup]
        ran = [mode for mode in modes if key in figures[mode]]
        theirs = [figures[mode][key] for mode in ran]
        result[f"{key}_server"] = theirs[0]["server"]
        for mode in ran:
            result[f"{key}_{mode}_p99_ms"] = max(
                figures[mode][key][op]["p99_ms"] for op in ("next", "submit")
            )
            result[f"{key}_{mode}_requests_per_s"] = figures[mode][key]["requests_per_s"]
        result[f"p99_ratio_{key}_vs_loopwise"] = round(result[f"{key}_paced_p99_ms"] / result["p99_ms"], 2)
        if setup == "production":  # with a user per client its counts compare with loopwise's
            result[f"{key}_lost"] = sum(f["lost"] for f in theirs)
            result[f"{key}_duplicated"] = sum(f["duplicated"] for f in theirs)
            result[f"{key}_every_task_has_its_annotations"] = all(
                f["every_task_has_its_annotations"] for f in theirs
            )
    result.update(figures)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=dict) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in figures}, indent=2))


if __name__ == "__main__":
    main()
