"""What human review adds to a prediction, and loops started under load: none lost, none doubled.

The model: all-MiniLM-L6-v2 fine-tuned ``--train-steps`` steps on the course split, served int8 by
``loopwise server`` on 127.0.0.1 as two variants of one endpoint, VariantA and VariantB, the same model;
VariantA's predictions go through a flow definition whose condition fires on every prediction (an audit
of 100%), so each of its requests starts a loop; VariantB's go through none.

Overhead: ``--requests`` review texts, each sent to both variants back to back (order alternating) from
this process, one at a time; the overhead is the median of the paired differences (VariantA minus
VariantB), and the server's own split of VariantA's time is reported beside it. In-process, the request
path's part alone (evaluating the conditions, naming the loop, journaling it) is timed over 10,000 calls.

Load: ``--loops`` predictions on VariantA from ``--concurrency`` clients at once, each with its own
inference id, plus a tenth of them sent again (a client's retry: it must not start a second loop). Halfway
through, the server is killed (SIGKILL) and started again; the clients send again what failed meanwhile.
The database must then hold exactly one loop per inference id: none lost (loops the dead server had only
journaled are replayed at the restart), none doubled. On SQLite and on PostgreSQL.

Prints JSON and writes benchmarks/results/review_overhead.json.

    python benchmarks/review_overhead.py [--requests 400] [--loops 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import fine_tune, free_port, stop, wait_http

RESULTS = Path(__file__).resolve().parent / "results" / "review_overhead.json"
POSTGRES_URL = os.environ.get(
    "LOOPWISE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ENDPOINT = "reviews"
FLOW = "audit-everything"


def _server(home: Path, database_url: str | None, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOOPWISE_HOME": str(home)}
    if database_url:
        env["LOOPWISE_DATABASE_URL"] = database_url
    else:
        env.pop("LOOPWISE_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-c", "from loopwise.cli import main; main()", "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", server)
    return server


def _deploy(store: Any, model_ref: str) -> str:
    """The flow, its team, the endpoint (VariantA reviewed, VariantB not) and a program's token."""
    from loopwise.labeling.jobs import COURSE_CATEGORIES
    from loopwise.review.service import create_flow
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.service import create_endpoint
    from loopwise.workforce import service as workforce

    workforce.create_team(store, "reviewers")
    create_flow(store, FLOW, team="reviewers", categories=list(COURSE_CATEGORIES), conditions={"audit": 100})
    variant = {"model": model_ref, "precision": "int8", "instances": 1, "max_batch_size": 8, "max_wait_ms": 1}
    config = {
        "variants": [{"name": "VariantA", **variant}, {"name": "VariantB", **variant}],
        "review": {"flow": FLOW, "variants": ["VariantA"]},
    }
    create_endpoint(store, ENDPOINT, parse_endpoint_config(config))
    return workforce.program_token(store, "review-benchmark")


def paired_overhead(url: str, token: str, texts: list[str]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    latency: dict[str, list[float]] = {"VariantA": [], "VariantB": []}
    started_loops = 0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i, text in enumerate(texts):
            order = ("VariantA", "VariantB") if i % 2 == 0 else ("VariantB", "VariantA")
            for variant in order:
                began = time.perf_counter()
                answer = client.post(
                    f"/endpoints/{ENDPOINT}/invocations",
                    json={"features": [text]},
                    headers={"X-Amzn-SageMaker-Target-Variant": variant},
                )
                latency[variant].append((time.perf_counter() - began) * 1000)
                answer.raise_for_status()
                started_loops += "human_loop_name" in answer.json()
    measured = latency["VariantA"][20:], latency["VariantB"][20:]  # the first 20 warm the path
    differences = [a - b for a, b in zip(*measured, strict=True)]
    return {
        "requests_per_variant": len(measured[0]),
        "loops_started": started_loops,
        "reviewed_p50_ms": round(statistics.median(measured[0]), 3),
        "plain_p50_ms": round(statistics.median(measured[1]), 3),
        "overhead_p50_ms": round(statistics.median(differences), 3),
        "overhead_mean_ms": round(statistics.fmean(differences), 3),
    }


def request_path_us(store: Any, texts: list[str]) -> dict[str, float]:
    """Evaluating the flow's conditions, naming the loop and journaling it: the request path's part."""
    import numpy as np

    from loopwise.review.activation import LoopStarter, activate
    from loopwise.review.service import find_flow

    flow = find_flow(store, FLOW)
    labels = [c.label for c in flow.categories]
    rng = random.Random(0)

    async def measure() -> list[float]:
        starter = LoopStarter(store, batch_wait_s=3600)  # written once at the end: only the path is timed
        await starter.start()
        times = []
        for i in range(10_000):
            proba = np.array([[rng.random(), rng.random(), rng.random()]])
            proba /= proba.sum()
            began = time.perf_counter()
            started = activate(
                flow, "micro", "VariantA", f"micro-{i}", [texts[i % len(texts)]], labels, proba, rng
            )
            starter.offer(flow, [record for _, record in started])
            times.append((time.perf_counter() - began) * 1e6)
        await starter.close()
        return times

    times = asyncio.run(measure())
    return {
        "p50_us": round(statistics.median(times), 1),
        "p99_us": round(sorted(times)[len(times) * 99 // 100], 1),
    }


class _Crash:
    """The server killed (SIGKILL) once ``after`` answers are in, while the burst goes on, and started
    again; the clients retry what failed meanwhile, as clients do."""

    def __init__(self, home: Path, database_url: str | None, port: int, after: int) -> None:
        self.home, self.database_url, self.port, self.after = home, database_url, port, after
        self.server = _server(home, database_url, port)
        self.answers = 0
        self.task: asyncio.Task[None] | None = None
        self.killed_at_answer: int | None = None
        self.names: set[str] = set()
        #: loops whose answers had gone out but that only the dead server's journal held
        self.only_journaled: int | None = None

    def answered(self, name: str) -> None:
        self.answers += 1
        self.names.add(name)
        if self.answers == self.after and self.task is None:
            self.task = asyncio.ensure_future(asyncio.to_thread(self._kill_and_restart))

    def _kill_and_restart(self) -> None:
        from sqlalchemy import select

        from loopwise.config import Settings
        from loopwise.storage import Store
        from loopwise.storage.tables import HumanLoopRow

        self.server.send_signal(signal.SIGKILL)
        answered = set(self.names)
        self.killed_at_answer = len(answered)
        self.server.wait(timeout=30)
        store = Store.open(Settings(home=self.home, database_url=self.database_url))
        with store.uow() as uow:
            stored = set(uow.session.scalars(select(HumanLoopRow.name)))
        store.close()
        self.only_journaled = len(answered - stored)
        self.server = _server(self.home, self.database_url, self.port)  # replays the dead one's journal


async def _burst(
    url: str, token: str, ids: list[str], texts: list[str], concurrency: int, crash: _Crash
) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}", "X-Amzn-SageMaker-Target-Variant": "VariantA"}
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for i, inference_id in enumerate(ids):
        queue.put_nowait((inference_id, texts[i % len(texts)]))
    names: dict[str, set[str]] = {}
    retries = 0

    async def client_loop() -> None:
        nonlocal retries
        while not queue.empty():
            inference_id, text = queue.get_nowait()
            deadline = time.monotonic() + 120
            while True:  # a request that fails while the server is down is sent again
                try:
                    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                        answer = await client.post(
                            f"/endpoints/{ENDPOINT}/invocations",
                            json={"features": [text]},
                            headers={**headers, "X-Amzn-SageMaker-Inference-Id": inference_id},
                        )
                    if answer.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{inference_id}: no answer within 120 s")
                retries += 1
                await asyncio.sleep(0.2)
            name = answer.json()["human_loop_name"]
            crash.answered(name)
            names.setdefault(inference_id, set()).add(name)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    if crash.task is not None:
        await crash.task
    return {"names": names, "retries": retries, "wall_s": time.perf_counter() - began}


def loops_under_load(
    home: Path, database_url: str | None, texts: list[str], loops: int, concurrency: int, csv_path: Path
) -> dict[str, Any]:
    """``loops`` predictions from ``concurrency`` clients (and a tenth of them again), the server killed
    halfway and started again; the loops the database holds afterwards."""
    from sqlalchemy import select

    from loopwise.config import Settings
    from loopwise.data.service import prepare_reviews
    from loopwise.storage import Store
    from loopwise.storage.tables import HumanLoopRow

    store = Store.open(Settings(home=home, database_url=database_url))
    model = fine_tune(store, prepare_reviews(store, csv_path).ref, 5)  # what it answers does not matter here
    token = _deploy(store, model.ref)
    port = free_port()
    ids = [f"load-{uuid.uuid4().hex[:12]}-{i}" for i in range(loops)]
    retried = ids[: loops // 10]
    sent = ids[: loops // 2] + retried + ids[loops // 2 :]  # the retries reach the restarted server
    crash = _Crash(home, database_url, port, after=loops // 2)
    try:
        burst = asyncio.run(_burst(f"http://127.0.0.1:{port}", token, sent, texts, concurrency, crash))
        deadline = time.monotonic() + 60
        while True:
            with store.uow() as uow:
                rows = uow.session.execute(
                    select(HumanLoopRow.name, HumanLoopRow.inference_id, HumanLoopRow.item_id)
                ).all()
            if len(rows) >= loops or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        stop(crash.server)
        store.close()
    answered = {name for found in burst["names"].values() for name in found}
    stored = {name for name, _, _ in rows}
    return {
        "predictions": len(sent),
        "inference_ids": len(ids),
        "retried": len(retried),
        "killed_after_answers": crash.killed_at_answer,
        "loops_only_journaled_at_the_kill": crash.only_journaled,
        "requests_sent_again_while_the_server_was_down": burst["retries"],
        "wall_s": round(burst["wall_s"], 2),
        "loops_named_in_answers": len(answered),
        "each_inference_got_one_loop_name": all(len(found) == 1 for found in burst["names"].values()),
        "loops_created": len(rows),
        "lost": len(answered - stored),
        "doubled": len(rows) - len({x for _, x, _ in rows}),
        "every_loop_has_its_item": all(item is not None for _, _, item in rows),
        "loops_of_other_inferences": len({x for _, x, _ in rows} - set(ids)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="paired requests for the overhead")
    parser.add_argument("--loops", type=int, default=1000, help="predictions that start loops at once")
    parser.add_argument("--concurrency", type=int, default=50, help="clients at once for the load")
    parser.add_argument("--train-steps", type=int, default=30, help="fine-tuning steps of the served model")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()

    import csv

    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews
    from loopwise.storage import Store

    started = time.perf_counter()
    csv_path = fetch_reviews(Settings())
    with csv_path.open(encoding="utf-8") as handle:
        texts = [
            row["Review Text"] for row in csv.DictReader(handle) if (row.get("Review Text") or "").strip()
        ]
    random.Random(0).shuffle(texts)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = Store.open(Settings(home=home))
        version = fine_tune(store, prepare_reviews(store, csv_path).ref, args.train_steps)
        token = _deploy(store, version.ref)
        figures["request_path"] = request_path_us(store, texts)
        store.close()
        print("request path", figures["request_path"], file=sys.stderr, flush=True)
        port = free_port()
        server = _server(home, None, port)
        try:
            figures["paired"] = paired_overhead(
                f"http://127.0.0.1:{port}", token, texts[: args.requests + 20]
            )
        finally:
            stop(server)
        print("paired", figures["paired"], file=sys.stderr, flush=True)

    loads: dict[str, Any] = {}
    databases = ["sqlite"] if args.skip_postgres else ["sqlite", "postgresql"]
    for database in databases:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            url, schema = None, None
            if database == "postgresql":
                import psycopg

                schema = f"bench_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
                    connection.execute(f"CREATE SCHEMA {schema}")
                separator = "&" if "?" in POSTGRES_URL else "?"
                url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
            try:
                loads[database] = loops_under_load(home, url, texts, args.loops, args.concurrency, csv_path)
            finally:
                if schema is not None:
                    import psycopg

                    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
                        connection.execute(f"DROP SCHEMA {schema} CASCADE")
        print("load", database, loads[database], file=sys.stderr, flush=True)

    counts = {d: found["loops_created"] for d, found in loads.items()}
    result: dict[str, Any] = {
        "benchmark": "review_overhead",
        "command": "python benchmarks/review_overhead.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        # the median of paired differences: a prediction that starts a loop against one that does not
        "overhead_p50_ms": figures["paired"]["overhead_p50_ms"],
        # loops the database holds after --loops predictions (and retries, and a killed server), on
        # every database; the same number on each, else the smallest
        "loops_created": min(counts.values()),
        "loops_created_by_database": counts,
        "lost": sum(found["lost"] for found in loads.values()),
        "doubled": sum(found["doubled"] for found in loads.values()),
        **figures,
        "load": loads,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("load",)}, indent=2))


if __name__ == "__main__":
    main()
