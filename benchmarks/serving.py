"""Serving: loopwise's endpoint against a direct in-process call, a plain FastAPI + PyTorch app and Ray Serve.

One model for everything: the bundled all-MiniLM-L6-v2 with a 3-class head (its weights do not matter for
speed), registered and deployed as a loopwise endpoint of one variant (one worker, ONNX Runtime fp32,
dynamic batching up to 32). Requests are single reviews from the course's data set (``{"features":
[text]}``, up to 128 tokens), sent from a second process on 127.0.0.1 over keep-alive HTTP/1.1 connections,
a fixed number per run.

* router overhead: loopwise's end-to-end latency at concurrency 1, 8 and 32 against the same ONNX model
  called directly in-process one request at a time (p50, p99); ``router_overhead_p50_ms`` is the p50
  difference at concurrency 1 (target: at most 1 ms), and the server's own OverheadLatency is reported too;
* throughput at concurrency 32 against a plain FastAPI app running the PyTorch model per request (what a
  user would write): ``ratio_vs_fastapi`` (target: at least 2.5);
* the same load against Ray Serve serving the same ONNX model with its own batching (``@serve.batch``,
  max 32): ``ratio_vs_ray_serve`` (target: at least 1). Ray is installed by this script when missing
  (``pip install 'ray[serve]'``), never as a loopwise dependency.

Prints JSON and writes benchmarks/results/serving.json.

    python benchmarks/serving.py [--requests 2000] [--skip-ray]
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
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
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
        json.dump({"url": url, "concurrency": concurrency, "bodies": [b.decode() for b in bodies]}, spec)
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


@serve.deployment(num_replicas=1, max_ongoing_requests=64, ray_actor_options={{"num_cpus": 0}})
class Classifier:
    def __init__(self) -> None:
        self.model = OnnxClassifier.load(EXPORT, threads=os.cpu_count())

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


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray Serve out")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(Path(args.load).read_text())
        bodies = [b.encode() for b in spec["bodies"]]
        try:
            import uvloop

            result = uvloop.run(_load(spec["url"], spec["concurrency"], bodies))
        except ImportError:
            result = asyncio.run(_load(spec["url"], spec["concurrency"], bodies))
        print(json.dumps(result))
        return

    import numpy as np

    from loopwise import registry
    from loopwise.classifiers.onnx import OnnxClassifier
    from loopwise.classifiers.transformer import TransformerClassifier
    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.service import create_endpoint, serving_dir
    from loopwise.storage import Store

    texts = _review_texts(fetch_reviews(Settings()))
    rng = random.Random(0)
    bodies = [json.dumps({"features": [rng.choice(texts)]}).encode() for _ in range(args.requests)]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = Store.open(Settings(home=home))
        checkpoint = home / "minilm"
        TransformerClassifier(LABELS, max_seq_length=128).save(checkpoint)
        with store.uow() as uow:
            version = registry.register(
                uow, "bench-minilm", backend="transformers", uri=checkpoint.as_uri(), labels=LABELS
            )
        config = {
            "variants": [{"name": "A", "model": "bench-minilm:1", "max_batch_size": 32, "max_wait_ms": 2}]
        }
        create_endpoint(store, "bench", parse_endpoint_config(config))
        export = serving_dir(store, version)
        store.close()

        # a direct in-process call of the same ONNX model, one request at a time: measured in rounds
        # alternating with loopwise at concurrency 1 (below), so that both see the same machine
        direct = OnnxClassifier.load(export, threads=os.cpu_count())
        for body in bodies[:50]:
            direct.predict_proba([json.loads(body)["features"][0]])

        def direct_round(model: Any, round_bodies: list[bytes]) -> list[float]:
            latencies = []
            for body in round_bodies:
                t0 = time.perf_counter()
                model.predict_proba([json.loads(body)["features"][0]])
                latencies.append((time.perf_counter() - t0) * 1000)
            return latencies

        # loopwise
        port = _free_port()
        env = {**os.environ, "LOOPWISE_HOME": str(home)}
        env.pop("LOOPWISE_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-c", "from loopwise.cli import main; main()", "server", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", server)
            url = f"http://127.0.0.1:{port}/endpoints/bench/invocations"
            load(url, 8, bodies[:200])  # warm-up
            rounds, per_round = 5, max(50, args.requests // 10)
            direct_ms: list[float] = []
            loopwise_ms: list[float] = []
            differences = []
            for number in range(rounds):  # the router's overhead: direct and loopwise, alternating
                round_bodies = bodies[number * per_round : (number + 1) * per_round]
                started = time.perf_counter()
                alone = direct_round(direct, round_bodies)
                alone_s = time.perf_counter() - started
                served = load(url, 1, round_bodies, raw=True)
                direct_ms += alone
                loopwise_ms += served["latencies_ms"]
                differences.append(float(np.median(served["latencies_ms"]) - np.median(alone)))
            figures["direct_in_process"] = summarize(direct_ms, alone_s * rounds)
            figures["loopwise_c1"] = summarize(loopwise_ms, served["wall_s"] * rounds)
            figures["router_overhead_p50_ms_by_round"] = [round(d, 3) for d in differences]
            del direct  # its threads must not compete with the server from here on
            print("direct", figures["direct_in_process"], file=sys.stderr, flush=True)
            print("loopwise c1", figures["loopwise_c1"], differences, file=sys.stderr, flush=True)
            for concurrency in CONCURRENCY[1:]:
                count = args.requests
                figures[f"loopwise_c{concurrency}"] = load(url, concurrency, bodies[:count])
                print(
                    f"loopwise c{concurrency}",
                    figures[f"loopwise_c{concurrency}"],
                    file=sys.stderr,
                    flush=True,
                )
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v1/endpoints/bench/metrics?period=3600"
            ) as r:
                rows = json.loads(r.read())["rows"]
            figures["loopwise_server_overhead_ms"] = {
                "mean": rows[-1]["OverheadLatency"],
                "p99": rows[-1]["OverheadLatencyP99"],
            }
        finally:
            _stop(server)

        # a plain FastAPI + PyTorch app
        app_dir = Path(tmp) / "plain"
        app_dir.mkdir()
        (app_dir / "plain_app.py").write_text(FASTAPI_APP.format(model=str(checkpoint)))
        port = _free_port()
        plain = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "plain_app:app", "--port", str(port), "--log-level", "warning"],
            cwd=app_dir,
            env={**os.environ, "PYTHONPATH": str(app_dir)},
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/docs", plain)
            url = f"http://127.0.0.1:{port}/invocations"
            load(url, 8, bodies[:100])
            figures["fastapi_pytorch_c32"] = load(url, 32, bodies[: args.requests // 2])
            print("fastapi c32", figures["fastapi_pytorch_c32"], file=sys.stderr, flush=True)
        finally:
            _stop(plain)

        if not args.skip_ray:
            _ensure_ray_serve()
            port = _free_port()
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
                figures["ray_serve_c32"] = load(url, 32, bodies[: args.requests])
                print("ray c32", figures["ray_serve_c32"], file=sys.stderr, flush=True)
            finally:
                _stop(ray_server)
                subprocess.run(
                    [sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True
                )

    document = {
        "benchmark": "serving",
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "model": "all-MiniLM-L6-v2 with a 3-class head; ONNX Runtime fp32 for loopwise, the direct call "
        "and Ray Serve",
        # the median over rounds of (loopwise's p50 - the direct call's p50), each round on the same machine
        "router_overhead_p50_ms": round(float(np.median(figures["router_overhead_p50_ms_by_round"])), 3),
        "router_overhead_p99_ms": round(
            figures["loopwise_c1"]["p99_ms"] - figures["direct_in_process"]["p99_ms"], 3
        ),
        "ratio_vs_fastapi": round(figures["loopwise_c32"]["rps"] / figures["fastapi_pytorch_c32"]["rps"], 2),
        "ratio_vs_ray_serve": None
        if "ray_serve_c32" not in figures
        else round(figures["loopwise_c32"]["rps"] / figures["ray_serve_c32"]["rps"], 2),
        "runs": figures,
    }
    print(json.dumps(document, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _review_texts(csv_path: Path) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(csv_path)
    column = "Review Text" if "Review Text" in frame.columns else frame.columns[0]
    return [t for t in frame[column].dropna().astype(str).tolist() if t.strip()][:2000]


if __name__ == "__main__":
    main()
