"""Invoking endpoints over real HTTP on 127.0.0.1: SageMaker's contract, routing, live weight shifts,
bad input and dead workers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from cli_helpers import run
from conftest import running_server
from loopwise.classifiers import TrainConfig
from loopwise.classifiers.onnx import OnnxClassifier
from loopwise.registry.exports import serving_dir
from loopwise.serving.capture import read_captures, unpack_embeddings
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint, update_weights
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

pytestmark = pytest.mark.sqlite_only

COURSE = ["I love this product!", "OK, but not great.", "This is not the right product."]
URL = "/endpoints/reviews/invocations"
JSON_LINES = {"Content-Type": "application/jsonlines"}
TO_B = {"X-Amzn-SageMaker-Target-Variant": "VariantB"}


def _endpoint(store: Store, weight_a: float = 50, weight_b: float = 50) -> None:
    config = {
        "variants": [
            {"name": "VariantA", "model": "small-tfidf:1", "weight": weight_a},
            {"name": "VariantB", "model": "small-tfidf:2", "weight": weight_b},
        ]
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))


def _lines(texts: list[str]) -> str:
    return "".join(json.dumps({"features": [t]}) + "\n" for t in texts)


def test_the_sagemaker_runtime_contract(two_models: Store) -> None:
    _endpoint(two_models)
    with running_server(two_models) as (client, _):
        answer = client.post(URL, content=_lines(COURSE), headers=JSON_LINES)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/jsonlines")
        rows = [json.loads(line) for line in answer.text.splitlines()]
        assert len(rows) == 3
        for row in rows:
            assert set(row) == {"probability", "predicted_label"}
            assert row["predicted_label"] in (-1, 0, 1) and 1 / 3 <= row["probability"] <= 1
        assert answer.headers["X-Amzn-Invoked-Production-Variant"] in {"VariantA", "VariantB"}
        assert len(answer.headers["X-Amzn-SageMaker-Inference-Id"]) == 32  # made when not given

        by_b = [
            json.loads(line)
            for line in client.post(
                URL, content=_lines(COURSE), headers={**JSON_LINES, **TO_B}
            ).text.splitlines()
        ]
        single = client.post(
            URL, json={"features": [COURSE[0]]}, headers={**TO_B, "X-Amzn-SageMaker-Inference-Id": "abc-1"}
        )
        assert single.status_code == 200, single.text
        assert single.headers["X-Amzn-Invoked-Production-Variant"] == "VariantB"
        assert single.headers["X-Amzn-SageMaker-Inference-Id"] == "abc-1"
        assert single.headers["X-Loopwise-Model-Version"] == "small-tfidf:2"
        assert single.json() == by_b[0]  # one object in, one object out
        many = client.post(URL, json={"instances": [{"features": [t]} for t in COURSE]}, headers=TO_B)
        assert many.json() == by_b
        csv = client.post(
            URL, content='"OK, but not great."\nlove it\n', headers={"Content-Type": "text/csv", **TO_B}
        )
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0].split(",")[0] == str(by_b[1]["predicted_label"])

        native = client.post(
            "/api/v1/endpoints/reviews/predict", json={"texts": COURSE, "target_variant": "VariantA"}
        )
        assert native.status_code == 200, native.text
        document = native.json()
        assert document["variant"] == "VariantA" and document["model_version"] == "small-tfidf:1"
        assert len(document["predictions"]) == 3 and len(document["inference_id"]) == 32
        for prediction in document["predictions"]:
            probabilities = prediction["probabilities"]
            assert math.isclose(sum(probabilities.values()), 1.0)
            assert prediction["label"] == max(probabilities, key=probabilities.get)


def test_bad_requests_get_a_4xx_that_says_what_was_wrong(two_models: Store) -> None:
    _endpoint(two_models)
    with running_server(two_models, max_body_bytes=2000) as (client, _):
        cases = [
            (400, "not valid JSON", {"content": b"{nope", "headers": {"Content-Type": "application/json"}}),
            (415, "is not supported", {"content": b"x", "headers": {"Content-Type": "image/png"}}),
            (400, "text 1 is empty", {"json": {"features": ["  "]}}),
            (400, 'expected {"features": [text]}', {"json": {"features": "not a list"}}),
            (
                400,
                "line 2 is not valid JSON",
                {"content": '{"features": ["a"]}\n{oops\n', "headers": JSON_LINES},
            ),
            (413, "over the limit of 2000 bytes", {"json": {"features": ["x" * 3000]}}),
            (
                400,
                "no variant 'VariantC'",
                {"json": {"features": ["a"]}, "headers": {"X-Amzn-SageMaker-Target-Variant": "VariantC"}},
            ),
        ]
        for status, message, request in cases:
            answer = client.post(URL, **request)  # type: ignore[arg-type]
            assert answer.status_code == status, (message, answer.text)
            assert message in answer.json()["error"]["message"], answer.text
        missing = client.post("/endpoints/nope/invocations", json={"features": ["a"]})
        assert missing.status_code == 404 and "not in service" in missing.json()["error"]["message"]
        native = client.post("/api/v1/endpoints/reviews/predict", json={"texts": []})
        assert native.status_code == 400 and "texts" in native.json()["error"]["message"]
        # the endpoint still answers after all that
        assert client.post(URL, json={"features": ["fine"]}).status_code == 200


def _cli(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    return run(store.settings.home, *args, check=False, database_url=store.settings.resolved_database_url)


def test_traffic_follows_the_weights_and_is_measured_per_variant(two_models: Store, tmp_path: Path) -> None:
    _endpoint(two_models, weight_a=80, weight_b=20)
    with running_server(two_models) as (client, _):
        served = Counter(
            client.post(URL, json={"features": ["nice"]}).headers["X-Amzn-Invoked-Production-Variant"]
            for _ in range(400)
        )
        key = {"X-Loopwise-Routing-Key": "user-7"}
        sticky = {
            client.post(URL, json={"features": ["nice"]}, headers=key).headers[
                "X-Amzn-Invoked-Production-Variant"
            ]
            for _ in range(30)
        }
        client.post(URL, content=b"x", headers={"Content-Type": "image/png"})  # one 4XX
        time.sleep(1.2)  # let the CPU of the workers be sampled
        prometheus = client.get("/metrics").text
        rows = client.get("/api/v1/endpoints/reviews/metrics", params={"period": 60}).json()["rows"]
        bad_period = client.get("/api/v1/endpoints/reviews/metrics", params={"period": 0})
        plot = tmp_path / "metrics.png"
        token = client.headers["Authorization"].removeprefix("Bearer ")
        where = ("endpoint", "metrics", "reviews", "--url", str(client.base_url), "--plot", str(plot))
        anonymous = _cli(two_models, *where)
        cli = _cli(two_models, *where, "--token", token)
    # binomial(400, 0.8): mean 320, sd 8; 4 sd either side
    assert 288 <= served["VariantA"] <= 352 and served["VariantA"] + served["VariantB"] == 400
    assert len(sticky) == 1  # a caller key stays in one arm
    answered = Counter({v: n for v, n in served.items()})
    answered[next(iter(sticky))] += 30
    for variant, count in answered.items():
        assert f'loopwise_invocations_total{{endpoint="reviews",variant="{variant}"}} {count}.0' in prometheus
        assert sum(r["Invocations"] for r in rows if r["variant"] == variant) == count
        assert any(r["CPUUtilization"] is not None for r in rows if r["variant"] == variant)
    assert sum(r["Invocation4XXErrors"] for r in rows) == 1
    assert bad_period.status_code == 400
    assert anonymous.returncode == 1 and "pass --token or set LOOPWISE_TOKEN" in anonymous.stderr
    assert cli.returncode == 0, cli.stderr
    assert "InvocationsPerInstance" in cli.stdout and plot.stat().st_size > 10_000


def test_a_weight_shift_under_load_takes_effect_within_a_second_without_a_failed_request(
    two_models: Store,
) -> None:
    _endpoint(two_models)
    with running_server(two_models) as (client, _):
        base = str(client.base_url)
        results: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=base, timeout=30, headers=client.headers) as own:
                while not stop.is_set():
                    sent = time.monotonic()
                    answer = own.post(URL, content=_lines(COURSE), headers=JSON_LINES)
                    variant = answer.headers.get("X-Amzn-Invoked-Production-Variant", "")
                    results.append((sent, answer.status_code, variant))

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        update_weights(two_models, "reviews", {"VariantA": 0, "VariantB": 100})
        shifted = time.monotonic()
        time.sleep(2.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(results) > 100
    assert [r for r in results if r[1] != 200] == []  # not one failed request, in flight or new
    before = Counter(v for sent, _, v in results if sent < shifted)
    after = [v for sent, _, v in results if sent > shifted + 1.0]
    assert before["VariantA"] > 0 and before["VariantB"] > 0
    assert after and set(after) == {"VariantB"}  # within a second, all of it


def test_a_dead_worker_is_restarted_and_only_its_variant_waits(two_models: Store) -> None:
    _endpoint(two_models)
    with running_server(two_models) as (client, app):
        pool = app.state.plane.runtimes["reviews"].pools["VariantA"]
        pid = pool.instances[0].process.pid
        os.kill(pid, signal.SIGKILL)
        statuses: Counter[int] = Counter()
        deadline = time.monotonic() + 60
        while True:
            to_a = client.post(
                URL, json={"features": ["ok"]}, headers={"X-Amzn-SageMaker-Target-Variant": "VariantA"}
            )
            statuses[to_a.status_code] += 1
            to_b = client.post(URL, json={"features": ["ok"]}, headers=TO_B)
            assert to_b.status_code == 200, to_b.text  # the other variant is untouched
            if to_a.status_code == 200 and pool.instances[0].process.pid != pid:
                break
            assert to_a.status_code == 503, to_a.text  # fails fast meanwhile, with the reason
            message = to_a.json()["error"]["message"]
            assert ("no live instance" in message or "died" in message) and "retry" in message
            assert time.monotonic() < deadline, "the worker was not restarted in 60 s"
            time.sleep(0.05)
        assert pool.instances[0].restarts == 1


def test_an_onnx_variant_answers_what_the_exported_model_answers(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)
    config = TrainConfig(epochs=2, batch_size=8, max_seq_length=32, learning_rate=1e-3)
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=config)
    model = train(sqlite_store, request, progress=False).model
    assert model is not None
    config = {"variants": [{"name": "A", "model": "tiny:1"}], "capture": {"share": 1.0}}
    create_endpoint(sqlite_store, "reviews", parse_endpoint_config(config))
    expected = OnnxClassifier.load(serving_dir(sqlite_store, model)).predict_proba(COURSE)
    with running_server(sqlite_store) as (client, app):
        answer = client.post("/api/v1/endpoints/reviews/predict", json={"texts": COURSE})
        app.state.plane.capture_writers["reviews"].flush()
    assert answer.status_code == 200, answer.text
    got = np.array(
        [[p["probabilities"][label] for label in model.labels] for p in answer.json()["predictions"]]
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # the capture holds each text's sentence embedding, for drift monitoring
    # (packed as float16: three significant digits)
    (record,) = read_captures(sqlite_store.artifacts.host_dir("capture"), "reviews")
    assert record["embedding"]["dtype"] == "float16" and record["embedding"]["shape"] == [3, 32]
    embeddings = unpack_embeddings(record["embedding"])
    assert embeddings is not None and embeddings.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=2e-3)


def test_a_model_that_raises_fails_that_request_alone(flaky_model: Store) -> None:
    two_models = flaky_model
    config = {
        "variants": [
            {"name": "Flaky", "model": "flaky:1", "weight": 1, "max_wait_ms": 20},
            {"name": "Steady", "model": "small-tfidf:1", "weight": 1},
        ]
    }
    endpoint = create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    assert endpoint.status.value == "InService", endpoint.failure_reason
    to_flaky = {"X-Amzn-SageMaker-Target-Variant": "Flaky"}
    with running_server(two_models) as (client, _):
        base = str(client.base_url)
        outcomes: dict[str, int] = {}

        def send(text: str) -> None:
            with httpx.Client(base_url=base, timeout=30, headers=client.headers) as own:
                outcomes[text] = own.post(URL, json={"features": [text]}, headers=to_flaky).status_code

        # concurrent requests share model calls; the bad one must not take the others down with it
        texts = ["fine 1", "boom", "fine 2", "fine 3", "fine 4"]
        threads = [threading.Thread(target=send, args=(t,)) for t in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        failed = client.post(URL, json={"features": ["boom again"]}, headers=to_flaky)
        steady = client.post(
            URL, json={"features": ["boom"]}, headers={"X-Amzn-SageMaker-Target-Variant": "Steady"}
        )
        after = client.post(URL, json={"features": ["fine"]}, headers=to_flaky)
    assert outcomes == {"fine 1": 200, "boom": 500, "fine 2": 200, "fine 3": 200, "fine 4": 200}
    assert failed.status_code == 500 and "boom in the model" in failed.json()["error"]["message"]
    assert failed.json()["error"]["type"] == "ModelError"
    assert steady.status_code == 200 and after.status_code == 200  # the endpoint and the worker stay up
