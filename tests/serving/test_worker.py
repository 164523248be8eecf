"""A variant's worker over its real loopback protocol: dynamic batching, batch limits, waiting for more
under load, and a bad request failing alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson

from loopwise.serving.worker import Batcher, serve


class SlowModel:
    """Takes ``seconds`` a call (holding the CPU, as a model does), records each call's batch size, and
    raises on any text holding 'boom'."""

    labels = ("neg", "pos")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[int] = []

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if any("boom" in text for text in texts):
            raise ValueError("boom in the model")
        time.sleep(self.seconds)
        self.calls.append(len(texts))
        return np.tile([0.25, 0.75], (len(texts), 1))


class Router:
    """The router's side of one worker connection, as plain blocking frames."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.socket.makefile("rb")
        assert "hello" in self.read()

    def send(self, request_id: int, *texts: str) -> None:
        payload = orjson.dumps({"id": request_id, "texts": list(texts)})
        self.socket.sendall(struct.pack(">I", len(payload)) + payload)

    def read(self) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self.file.read(4))
        return dict(orjson.loads(self.file.read(length)))

    def answers(self, count: int) -> dict[int, dict[str, Any]]:
        return {message["id"]: message for message in (self.read() for _ in range(count))}


@contextmanager
def worker(model: SlowModel, max_batch_size: int = 32, max_wait_ms: float = 2.0) -> Iterator[Router]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    batcher = Batcher(model, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    hello = {"labels": list(model.labels), "model": "slow:1", "pid": os.getpid()}
    stop = threading.Event()

    async def run() -> None:
        serving = asyncio.ensure_future(serve(hello, batcher, port))
        while not stop.is_set():
            await asyncio.sleep(0.02)
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            router = Router(port)
            break
        except OSError:
            assert time.monotonic() < deadline, "the worker did not start listening"
            time.sleep(0.02)
    try:
        yield router
    finally:
        router.file.close()
        router.socket.close()
        stop.set()
        thread.join(timeout=10)


def test_requests_arriving_while_the_model_is_busy_share_the_next_call() -> None:
    model = SlowModel(0.2)
    with worker(model) as router:
        router.send(0, "alone")  # an idle worker answers a lone request at once
        time.sleep(0.05)  # the model is busy with it
        for request_id in range(1, 11):
            router.send(request_id, f"text {request_id}")
        answers = router.answers(11)
    assert model.calls == [1, 10]
    assert sorted(answers) == list(range(11))
    for answer in answers.values():
        assert answer["proba"] == [[0.25, 0.75]] and answer["model_ms"] >= 200


def test_a_call_takes_at_most_max_batch_size_texts() -> None:
    model = SlowModel(0.1)
    with worker(model, max_batch_size=4) as router:
        router.send(0, "alone")
        time.sleep(0.03)
        for request_id in range(1, 6):
            router.send(request_id, f"text {request_id}", "a second text")  # 10 texts in all
        answers = router.answers(6)
    assert model.calls == [1, 4, 4, 2]  # whole requests: a call never splits one
    assert all(len(answers[i]["proba"]) == 2 for i in range(1, 6))


def test_under_load_a_call_waits_up_to_max_wait_for_more() -> None:
    for max_wait_ms, expected in ((400.0, [1, 2, 2]), (0.0, [1, 2, 1, 1])):
        model = SlowModel(0.1)
        with worker(model, max_wait_ms=max_wait_ms) as router:
            router.send(0, "alone")
            time.sleep(0.03)
            router.send(1, "one")
            router.send(2, "two")  # the two share the next call: now the worker is under load
            router.answers(3)
            router.send(3, "three")
            time.sleep(0.1)  # a later request joins it only if the call waits
            router.send(4, "four")
            router.answers(2)
        assert model.calls == expected, max_wait_ms


def test_a_bad_request_fails_alone_and_its_batch_is_answered() -> None:
    model = SlowModel(0.1)
    with worker(model) as router:
        router.send(0, "alone")
        time.sleep(0.03)
        for request_id, text in enumerate(["fine", "boom!", "also fine"], start=1):
            router.send(request_id, text)
        answers = router.answers(4)
    assert answers[2]["error"] == "ValueError: boom in the model"
    assert answers[1]["proba"] == answers[3]["proba"] == [[0.25, 0.75]]
    assert model.calls == [1, 1, 1]  # the failed batch's good requests, each answered alone
