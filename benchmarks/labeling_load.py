"""Labeling under load: 50 simulated workers taking items and submitting answers at once over HTTP on
127.0.0.1, against loopwise's server on SQLite and on PostgreSQL, and against Label Studio 1.23 side by
side.

loopwise: a job of ``--items`` reviews with three workers per item and 50 workers of its team, each with
an API token. Each worker, in a loop until nothing is left for them: ``POST .../jobs/ID/next`` (the item
to answer), a pause while they read it (``--think``: uniform between half and one and a half times 1 s,
the pace of a fast keyboard labeler; 50 of them send about 100 requests a second), then
``POST .../assignments/ID/submit`` with a label. The same again without the pause (``saturated``: every
worker sends its next request the moment the last one is answered), for the throughput and what queueing
does to latency. The load comes from a second process
(asyncio, one keep-alive connection per worker); the server is ``loopwise server`` in a third. Figures:
p50 and p99 of next-item and of submit, and from the database afterwards: answers acknowledged but not
stored (``lost``), answers stored twice for one worker or beyond an item's three (``duplicated``), and
whether every item has exactly its three answers.

Label Studio: installed for this benchmark only, in its own environment (benchmarks/.venvs/label-studio,
``pip install label-studio==1.23.*``), on SQLite, with a preset user and token. The same items, a
project asking three annotations per task, and the same 50 concurrent clients, each in a loop of
``GET /api/projects/ID/next/`` and ``POST /api/tasks/ID/annotations/``. Label Studio gives a user a task
once, so with its one preset user the run ends after one annotation per task: the latencies compare; the
counts are loopwise's own.

Prints JSON and writes benchmarks/results/labeling_load.json.

    python benchmarks/labeling_load.py [--items 400] [--workers 50] [--skip-label-studio]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import free_port, wait_http

RESULTS = Path(__file__).resolve().parent / "results" / "labeling_load.json"
POSTGRES_URL = os.environ.get(
    "LOOPWISE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LABELS = ["1", "0", "-1"]
LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="1"/><Choice value="0"/><Choice value="-1"/>
  </Choices>
</View>"""


# --- the load generator (its own process: python benchmarks/labeling_load.py --load SPEC) -------------


async def _think(rng: random.Random, think_s: float) -> None:
    """A worker reading the item before answering: uniform in [0.5, 1.5] x ``think_s`` (0: none)."""
    if think_s > 0:
        await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))


async def _loopwise_worker(
    client: Any, job: int, timings: dict[str, list[float]], acks: list[Any], think_s: float
) -> None:
    rng = random.Random()
    await _think(rng, think_s)  # the workers do not all start in the same millisecond
    while True:
        started = time.perf_counter()
        status, answer = await client.post(f"/api/v1/labeling/jobs/{job}/next", json={})
        timings["next"].append((time.perf_counter() - started) * 1000)
        tasks = answer["tasks"] if status == 200 else []
        if not tasks:
            return
        task = tasks[0]
        label = rng.choice(LABELS)
        await _think(rng, think_s)
        started = time.perf_counter()
        sent, _ = await client.post(
            f"/api/v1/labeling/assignments/{task['assignment_id']}/submit", json={"label": label}
        )
        timings["submit"].append((time.perf_counter() - started) * 1000)
        acks.append((task["assignment_id"], sent))


async def _label_studio_worker(
    client: Any, project: int, timings: dict[str, list[float]], acks: list[Any], think_s: float, cap: int
) -> None:
    rng = random.Random()
    await _think(rng, think_s)
    for _ in range(cap):  # bounded: its one user may be handed the same locked task again
        started = time.perf_counter()
        status, answer = await client.get(f"/api/projects/{project}/next/")
        timings["next"].append((time.perf_counter() - started) * 1000)
        if status != 200:
            return
        task = answer["id"]
        await _think(rng, think_s)
        result = [
            {
                "from_name": "sentiment",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [rng.choice(LABELS)]},
            }
        ]
        started = time.perf_counter()
        sent, _ = await client.post(f"/api/tasks/{task}/annotations/", json={"result": result})
        timings["submit"].append((time.perf_counter() - started) * 1000)
        acks.append((task, sent))


class _Connection:
    """One keep-alive HTTP/1.1 connection of one simulated worker: a few lines of asyncio instead of an
    HTTP client library, so that the load generator spends little of the two cores the server needs."""

    def __init__(self, url: str, authorization: str) -> None:
        host_port = url.removeprefix("http://")
        self.host, _, port = host_port.partition(":")
        self.port = int(port)
        self.authorization = authorization
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: {self.authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, closing = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                closing = True
        if chunked:
            data = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data += await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            data = await self.reader.readexactly(length)
        if closing:
            await self.close()
        try:
            return status, json.loads(data) if data else None
        except json.JSONDecodeError:
            return status, None

    async def post(self, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.request("POST", path, json)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"next": [], "submit": []}
    acks: list[Any] = []
    clients = [_Connection(spec["url"], auth) for auth in spec["authorizations"]]
    started = time.perf_counter()
    try:
        if spec["kind"] == "loopwise":
            await asyncio.gather(
                *(_loopwise_worker(c, spec["job"], timings, acks, spec["think_s"]) for c in clients)
            )
        else:
            cap = 3 * spec["items"] // len(clients) + 20
            await asyncio.gather(
                *(_label_studio_worker(c, spec["job"], timings, acks, spec["think_s"], cap) for c in clients)
            )
    finally:
        for client in clients:
            await client.close()
    return {"timings": timings, "acks": acks, "wall_s": time.perf_counter() - started}


def run_load(
    kind: str, url: str, job: int, authorizations: list[str], items: int, think_s: float
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        document = {"kind": kind, "url": url, "job": job, "authorizations": authorizations, "items": items}
        document["think_s"] = think_s
        json.dump(document, spec)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--load", spec.name], capture_output=True, text=True, timeout=1800
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
                measured = run_load("loopwise", f"http://127.0.0.1:{port}", job.id, tokens, items, think_s)
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
        "next": percentiles(measured["timings"]["next"]),
        "submit": percentiles(measured["timings"]["submit"]),
        "requests_per_s": round(
            (len(measured["timings"]["next"]) + len(measured["timings"]["submit"])) / measured["wall_s"], 1
        ),
        "answers_acknowledged": len(acknowledged),
        "answers_stored": len(answers),
        "refused": Counter(status for _, status in measured["acks"] if status != 200),
        "lost": lost + missing,
        "duplicated": duplicated,
        "every_item_has_its_answers": all(n == 3 for _, n, _, _ in counters) and len(counters) == items,
        "wall_s": round(measured["wall_s"], 1),
    }


# --- Label Studio -----------------------------------------------------------------------------------


def _label_studio_env() -> Path:
    """Label Studio's own virtual environment (made once, under the cache): never a loopwise dependency."""
    venv = Path(__file__).resolve().parent / ".venvs" / "label-studio"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "label-studio").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "label-studio==1.23.*"], check=True)
    return venv


def label_studio_run(items: int, workers: int, think_s: float) -> dict[str, Any]:
    import httpx

    venv = _label_studio_env()
    token = uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": data,
            "LABEL_STUDIO_USERNAME": "bench@example.com",
            "LABEL_STUDIO_PASSWORD": "bench-passw0rd-123",
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "SENTRY_DSN": "",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        }
        server = subprocess.Popen(
            [
                str(venv / "bin" / "label-studio"),
                "start",
                "--no-browser",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health", server, timeout=600)
            headers = {"Authorization": f"Token {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=120) as admin:
                project = admin.post(
                    "/api/projects/",
                    json={"title": "load", "label_config": LABEL_CONFIG, "maximum_annotations": 3},
                )
                project.raise_for_status()
                project_id = project.json()["id"]
                tasks = [{"text": f"review {i}: it fits and the color is lovely"} for i in range(items)]
                admin.post(f"/api/projects/{project_id}/import", json=tasks).raise_for_status()
            measured = run_load(
                "label-studio", base, project_id, [f"Token {token}"] * workers, items, think_s
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    acknowledged = [task for task, status in measured["acks"] if status in (200, 201)]
    return {
        "next": percentiles(measured["timings"]["next"]),
        "submit": percentiles(measured["timings"]["submit"]),
        "requests_per_s": round(
            (len(measured["timings"]["next"]) + len(measured["timings"]["submit"])) / measured["wall_s"], 1
        ),
        "annotations_acknowledged": len(acknowledged),
        "refused": Counter(status for _, status in measured["acks"] if status not in (200, 201)),
        "tasks_annotated_twice_by_its_one_user": sum(n - 1 for n in Counter(acknowledged).values() if n > 1),
        "wall_s": round(measured["wall_s"], 1),
    }


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
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(Path(args.load).read_text())
        try:
            import uvloop

            result = uvloop.run(_load(spec))
        except ImportError:
            result = asyncio.run(_load(spec))
        print(json.dumps(result))
        return

    started = time.perf_counter()
    figures: dict[str, dict[str, Any]] = {}
    for mode, think_s in (("paced", args.think), ("saturated", 0.0)):
        found: dict[str, Any] = {"think_s": think_s}
        for database in ("sqlite", "postgresql"):
            found[f"loopwise_{database}"] = loopwise_run(database, args.items, args.workers, think_s)
            print(mode, database, json.dumps(found[f"loopwise_{database}"]), file=sys.stderr, flush=True)
        if not args.skip_label_studio:
            found["label_studio"] = label_studio_run(args.items, args.workers, think_s)
            print(mode, "label studio", json.dumps(found["label_studio"]), file=sys.stderr, flush=True)
        figures[mode] = found
    runs = [figures[m][f"loopwise_{d}"] for m in figures for d in ("sqlite", "postgresql")]
    paced = [figures["paced"][f"loopwise_{d}"] for d in ("sqlite", "postgresql")]
    result: dict[str, Any] = {
        "benchmark": "labeling_load",
        "command": "python benchmarks/labeling_load.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
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
    if not args.skip_label_studio:
        for mode in figures:
            theirs = figures[mode]["label_studio"]
            result[f"label_studio_{mode}_p99_ms"] = max(theirs[op]["p99_ms"] for op in ("next", "submit"))
        result["p99_ratio_label_studio_vs_loopwise"] = round(
            result["label_studio_paced_p99_ms"] / result["p99_ms"], 2
        )
    result.update(figures)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=dict) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in figures}, indent=2))


if __name__ == "__main__":
    main()
