"""Serving: loopwise's endpoint against a direct in-process call, a plain FastAPI + PyTorch app and Ray Serve.

One model for everything: the bundled all-MiniLM-L6-v2 fine-tuned briefly on the course's split (so that
the int8 export's accuracy change against PyTorch is measured on its validation split, as loopwise does
for every int8 variant), deployed as loopwise endpoints of one variant each: ``int8x2`` (ONNX Runtime
int8, two workers of one thread: the one compared with the peers), ``int8`` (one worker of 2 threads) and
``fp32`` (one worker, the export before quantization); dynamic batching up to 32. Requests are single
reviews from the course's data set (``{"features": [text]}``, up to 128 tokens), sent from a second process
on 127.0.0.1 over keep-alive HTTP/1.1 connections, a fixed number per run.

* router overhead: loopwise's end-to-end latency at concurrency 1, 8 and 32 against the same ONNX model
  (int8, one thread, as one worker has) called directly in-process one request at a time (p50, p99);
  ``router_overhead_p50_ms`` is the median, over texts, of loopwise's latency minus the direct call's for
  the same text, the two made back to back from this process (target: at most 1 ms); the server's own
  ModelLatency (time in the worker) and OverheadLatency (what the router adds) are reported per
  concurrency too;
* throughput at concurrency 32 against a plain FastAPI app running the PyTorch model per request (what a
  user would write): ``ratio_vs_fastapi`` (target: at least 2.5), with the one-worker and fp32
  endpoints' ratios beside it;
* the same load against Ray Serve serving the same int8 ONNX model with its own batching (``@serve.batch``,
  max 32) on two replicas of one thread: ``ratio_vs_ray_serve`` (target: at least 1). Ray is installed
  by this script when missing (``pip install 'ray[serve]'``), never as a loopwise dependency.

Prints JSON and writes benchmarks/results/serving.json.

    python benchmarks/serving.py [--requests 2000] [--train-steps 100] [--skip-ray]
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
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

RESULTS = Path(__file__).parent / "results" / "serving.json"
LABELS = ["-1", "0", "1"]
CONCURRENCY = (1, 8, 32)
#: the endpoints measured: (name, precision, instances); "int8x2" is the one compared with the peers, at
#: concurrency 1 (and on two more endpoints of the same configuration at 8 and 32, so that the server's own
#: latency figures are per concurrency)
ENDPOINTS = (
    ("int8x2", "int8", 2),
    ("int8x2-c8", "int8", 2),
    ("int8x2-c32", "int8", 2),
    ("int8", "int8", 1),
    ("fp32", "fp32", 1),
)


#: the ``Authorization`` header line loopwise's server needs (set by main, passed on to the load process)
AUTHORIZATION = ""


# --- the load generator (runs in its own process: python benchmarks/serving.py --load ...) -------------


async def _one_connection(
    host: str, port: int, path: str, bodies: list[bytes], latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        for body in bodies:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"{AUTHORIZATION}Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, chunked = 0, False
            for line in head.split(b"\r\n"):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                    chunked = True
            if chunked:  # Ray Serve's proxy streams its answers
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += status != 200
    finally:
        writer.close()
    return errors


async def _load(url: str, concurrency: int, bodies: list[bytes]) -> dict[str, Any]:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    shares = [bodies[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(_one_connection(host, int(port), "/" + path, s, latencies) for s in shares)
    )
    wall = time.perf_counter() - started
    return {"latencies_ms": latencies, "wall_s": wall, "errors": sum(errors)}


def load(url: str, concurrency: int, bodies: list[bytes], raw: bool = False) -> dict[str, Any]:
    """Send ``bodies`` from a second process at ``concurrency``; rps and latency percentiles (``raw``:
    the latencies themselves)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        document = {"url": url, "concurrency": concurrency, "bodies": [b.decode() for b in bodies]}
        json.dump({**document, "authorization": AUTHORIZATION}, spec)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--load", spec.name], capture_output=True, text=True, timeout=1800
        )
    finally:
        os.unlink(spec.name)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed: {out.stderr[-2000:]}")
    measured = json.loads(out.stdout)
    if raw:
        return dict(measured)
    return summarize(measured["latencies_ms"], measured["wall_s"], measured["errors"])


def summarize(latencies: list[float], wall_s: float, errors: int = 0) -> dict[str, Any]:
    import numpy as np

    values = np.array(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / wall_s, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


# --- the peers -----------------------------------------------------------------------------------------

FASTAPI_APP = """
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MODEL = {model!r}
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForSequenceClassification.from_pretrained(MODEL).eval()
app = FastAPI()


class Request(BaseModel):
    features: list[str]


@app.post("/invocations")
def invocations(request: Request) -> dict:
    encoded = tokenizer(request.features, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        proba = torch.softmax(model(**encoded).logits, dim=-1)[0]
    best = int(proba.argmax())
    return {{"probability": float(proba[best]), "predicted_label": best - 1}}
"""

RAY_APP = """
import os, sys, time
import numpy as np
from ray import serve
from starlette.requests import Request
from loopwise.classifiers.onnx import OnnxClassifier

EXPORT = {export!r}


@serve.deployment(num_replicas=2, max_ongoing_requests=64, ray_actor_options={{"num_cpus": 0}})
class Classifier:
    def __init__(self) -> None:
        self.model = OnnxClassifier.load(EXPORT, precision="int8", threads=1)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def predict(self, texts: list[str]) -> list[dict]:
        proba = self.model.predict_proba(texts)
        return [{{"probability": float(p.max()), "predicted_label": int(p.argmax()) - 1}} for p in proba]

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        return await self.predict(body["features"][0])


serve.start(http_options={{"host": "127.0.0.1", "port": {port}}})
serve.run(Classifier.bind(), route_prefix="/")
print("READY", flush=True)
while True:
    time.sleep(3600)
"""


def _ensure_ray_serve() -> None:
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "ray[serve]>=2.9"], check=True)


# --- the run -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per measured run")
    parser.add_argument(
        "--train-steps", type=int, default=100, help="fine-tuning steps of the served model (batch 16)"
    )
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray Serve out")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global AUTHORIZATION
    if args.load:
        spec = json.loads(Path(args.load).read_text())
        AUTHORIZATION = spec["authorization"]
        bodies = [b.encode() for b in spec["bodies"]]
        try:
            import uvloop

            result = uvloop.run(_load(spec["url"], spec["concurrency"], bodies))
        except ImportError:
            result = asyncio.run(_load(spec["url"], spec["concurrency"], bodies))
        print(json.dumps(result))
        return

    from _common import fine_tune, free_port, stop, wait_http
    from loopwise.classifiers.onnx import OnnxClassifier
    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews
    from loopwise.registry.exports import quantization_report, serving_dir
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.service import create_endpoint
    from loopwise.storage import Store
    from loopwise.storage.artifacts.local import local_path
    from loopwise.workforce.service import program_token

    csv_path = fetch_reviews(Settings())
    texts = _review_texts(csv_path)
    rng = random.Random(0)
    bodies = [json.dumps({"features": [rng.choice(texts)]}).encode() for _ in range(args.requests)]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = Store.open(Settings(home=home))
        version = fine_tune(store, prepare_reviews(store, csv_path).ref, args.train_steps)
        checkpoint = local_path(version.uri)
        for name, precision, instances in ENDPOINTS:
            variant = {"name": "A", "model": version.ref, "precision": precision, "instances": instances}
            config = {"variants": [{**variant, "max_batch_size": 32, "max_wait_ms": 2}]}
            create_endpoint(store, name, parse_endpoint_config(config))
        export = serving_dir(store, version, "int8")
        figures["int8_accuracy"] = quantization_report(export)
        AUTHORIZATION = f"Authorization: Bearer {program_token(store, 'serving-benchmark')}\r\n"
        store.close()
        print("int8 against PyTorch", figures["int8_accuracy"], file=sys.stderr, flush=True)

        # a direct in-process call of the same ONNX model, one request at a time, paired with loopwise at
        # concurrency 1 (below): each text goes to both, back to back, so that both see the same machine
        direct = OnnxClassifier.load(export, precision="int8", threads=1)  # as one of int8x2's workers

        port = free_port()
        env = {**os.environ, "LOOPWISE_HOME": str(home)}
        env.pop("LOOPWISE_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-c", "from loopwise.cli import main; main()", "server", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", server)
            urls = {name: f"http://127.0.0.1:{port}/endpoints/{name}/invocations" for name, *_ in ENDPOINTS}
            for url in urls.values():
                load(url, 8, bodies[:200])  # warm-up
            paired = _paired(direct, urls["int8x2"], bodies[: max(100, args.requests // 2)])
            figures.update(paired)
            del direct  # its threads must not compete with the server from here on
            _note("direct", figures["direct_in_process"])
            _note("loopwise c1", figures["loopwise_c1"], figures["router_overhead_p50_ms_by_quarter"])
            for concurrency in CONCURRENCY[1:]:
                url = urls[f"int8x2-c{concurrency}"]
                figures[f"loopwise_c{concurrency}"] = load(url, concurrency, bodies)
                _note(f"loopwise c{concurrency}", figures[f"loopwise_c{concurrency}"])
            figures["loopwise_server_latency_ms"] = {
                f"c{c}": _server_latency(port, "int8x2" if c == 1 else f"int8x2-c{c}") for c in CONCURRENCY
            }
            for name in ("int8", "fp32"):
                figures[f"loopwise_{name}_c32"] = load(urls[name], 32, bodies)
                _note(f"loopwise {name} c32", figures[f"loopwise_{name}_c32"])
        finally:
            stop(server, timeout=30)

        # a plain FastAPI + PyTorch app
        app_dir = Path(tmp) / "plain"
        app_dir.mkdir()
        (app_dir / "plain_app.py").write_text(FASTAPI_APP.format(model=str(checkpoint)))
        port = free_port()
        plain = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "plain_app:app", "--port", str(port), "--log-level", "warning"],
            cwd=app_dir,
            env={**os.environ, "PYTHONPATH": str(app_dir)},
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/docs", plain)
            url = f"http://127.0.0.1:{port}/invocations"
            load(url, 8, bodies[:100])
            figures["fastapi_pytorch_c32"] = load(url, 32, bodies[: args.requests // 2])
            _note("fastapi c32", figures["fastapi_pytorch_c32"])
        finally:
            stop(plain, timeout=30)

        if not args.skip_ray:
            _ensure_ray_serve()
            port = free_port()
            (app_dir / "ray_app.py").write_text(RAY_APP.format(export=str(export), port=port))
            started = time.perf_counter()
            ray_server = subprocess.Popen(
                [sys.executable, str(app_dir / "ray_app.py")], stdout=subprocess.PIPE
            )
            try:
                assert ray_server.stdout is not None
                ready = ray_server.stdout.readline()
                if not ready.startswith(b"READY"):
                    raise RuntimeError("Ray Serve did not start")
                figures["ray_serve_start_s"] = round(time.perf_counter() - started, 1)
                url = f"http://127.0.0.1:{port}/"
                load(url, 8, bodies[:200])
                figures["ray_serve_c32"] = load(url, 32, bodies)
                _note("ray c32", figures["ray_serve_c32"])
            finally:
                stop(ray_server, timeout=30)
                subprocess.run(
                    [sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True
                )

    fastapi_rps = figures["fastapi_pytorch_c32"]["rps"]
    document = {
        "benchmark": "serving",
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "model": f"all-MiniLM-L6-v2 fine-tuned {args.train_steps} steps on the course's reviews; loopwise, "
        "the direct call and Ray Serve run its ONNX Runtime int8 export, FastAPI its PyTorch fp32 checkpoint",
        # the median of (loopwise's latency - the direct call's) over the texts, each text sent to both
        "router_overhead_p50_ms": figures.pop("router_overhead_p50_ms"),
        "router_overhead_p99_ms": round(
            figures["loopwise_c1"]["p99_ms"] - figures["direct_in_process"]["p99_ms"], 3
        ),
        "ratio_vs_fastapi": round(figures["loopwise_c32"]["rps"] / fastapi_rps, 2),
        "ratio_vs_fastapi_fp32": round(figures["loopwise_fp32_c32"]["rps"] / fastapi_rps, 2),
        "ratio_vs_fastapi_one_worker": round(figures["loopwise_int8_c32"]["rps"] / fastapi_rps, 2),
        "ratio_vs_ray_serve": None
        if "ray_serve_c32" not in figures
        else round(figures["loopwise_c32"]["rps"] / figures["ray_serve_c32"]["rps"], 2),
        "runs": figures,
    }
    print(json.dumps(document, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _paired(direct: Any, url: str, bodies: list[bytes]) -> dict[str, Any]:
    """The router's overhead at concurrency 1: each text is classified by the direct call and, right
    after, by loopwise over one keep-alive connection from this process; the overhead is the median of the
    per-text differences (machine noise that lasts longer than a request cancels out)."""
    import socket

    import numpy as np

    host_port = url.removeprefix("http://").partition("/")[0]
    path = url[len("http://" + host_port) :]
    host, _, port = host_port.partition(":")
    connection = socket.create_connection((host, int(port)), timeout=60)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = connection.makefile("rb")

    def post(body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n{AUTHORIZATION}"
        )
        connection.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int(reader.readline().split(b" ", 2)[1])
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        reader.read(length)
        return status

    for body in bodies[:50]:  # warm both
        direct.predict_proba([json.loads(body)["features"][0]])
        post(body)
    direct_ms, served_ms, errors = [], [], 0
    started = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        direct.predict_proba([json.loads(body)["features"][0]])
        t1 = time.perf_counter()
        errors += post(body) != 200
        t2 = time.perf_counter()
        direct_ms.append((t1 - t0) * 1000)
        served_ms.append((t2 - t1) * 1000)
    wall = time.perf_counter() - started
    connection.close()
    differences = np.array(served_ms) - np.array(direct_ms)
    quarters = np.array_split(differences, 4)
    direct_s, served_s = sum(direct_ms) / 1000, sum(served_ms) / 1000
    return {
        "direct_in_process": summarize(direct_ms, direct_s),
        "loopwise_c1": summarize(served_ms, served_s, errors),
        "paired_wall_s": round(wall, 1),
        "router_overhead_p50_ms": round(float(np.median(differences)), 3),
        "router_overhead_p50_ms_by_quarter": [round(float(np.median(q)), 3) for q in quarters],
    }


def _note(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _server_latency(port: int, endpoint: str) -> dict[str, float]:
    """The server's own figures for an endpoint over the last hour: ModelLatency (time in the worker,
    waiting for its batch included) and OverheadLatency (what the router and the loopback hop add), in ms
    (p50 and p99: the upper edges of log-spaced bins 5% wide)."""
    url = f"http://127.0.0.1:{port}/api/v1/endpoints/{endpoint}/metrics?period=3600"
    headers = dict([AUTHORIZATION.strip().split(": ", 1)]) if AUTHORIZATION else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        rows = json.loads(response.read())["rows"]
    if len(rows) != 1:  # an hour's boundary fell inside the runs: the period holding most of them
        rows = [max(rows, key=lambda row: row["Invocations"])]
    return {
        f"{name}_{stat}": round(rows[0][f"{metric}{suffix}"], 3)
        for name, metric in (("model", "ModelLatency"), ("overhead", "OverheadLatency"))
        for stat, suffix in (("mean", ""), ("p50", "P50"), ("p99", "P99"))
    }


def _review_texts(csv_path: Path) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(csv_path)
    column = "Review Text" if "Review Text" in frame.columns else frame.columns[0]
    return [t for t in frame[column].dropna().astype(str).tolist() if t.strip()][:2000]


if __name__ == "__main__":
    main()
