"""A variant instance: one process that holds a model and answers the router with dynamic batching.

``python -m loopwise.serving.worker DIR`` loads the classifier in DIR (an ONNX export or a saved
checkpoint), listens on an ephemeral port of 127.0.0.1, prints ``READY <port>`` and answers frames of
:mod:`loopwise.serving.protocol` until its parent dies. With ``--device cuda`` (or ``cuda:N``, ``auto``)
an ONNX export runs on ONNX Runtime's CUDA provider; when that cannot be opened the worker serves on the
CPU and logs one warning, and its greeting reports the provider it runs on (``provider``) and the
warning (``fallback``), which the router keeps for the endpoint's description.

Batching: requests arriving while the model is busy wait (in the socket, then the queue), and the next
model call takes everything waiting, up to ``max_batch_size`` texts. An idle worker answers a lone
request at once; under load (the previous call answered several requests) a call waits up to
``max_wait_ms`` for more to join it. A request whose batch failed is answered alone, so one bad request
does not fail the others of its batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopwise.serving import protocol


@dataclass
class Request:
    """A request waiting for the model: its texts, whether it wants embeddings, and where its answer
    goes (a frame to send back)."""

    id: Any
    texts: list[str]
    embed: bool
    reply: Callable[[dict[str, Any]], None]
    #: when it arrived (``time.perf_counter``): its answer's ``model_ms`` is its whole time here
    received: float


class Batcher:
    """Dynamic batching in front of a classifier, whose calls run on the event loop's thread.

    While the model runs, the loop does nothing else: requests that arrive meanwhile wait in the socket,
    are read when the call ends, and go together into the next call (a hop to a model thread would cost
    two thread wake-ups a call, a third of the router's overhead budget)."""

    def __init__(self, classifier: Any, max_batch_size: int = 32, max_wait_ms: float = 2.0) -> None:
        self.classifier = classifier
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.waiting: deque[Request] = deque()
        self.waiting_texts = 0
        self.busy = False  # the last model call answered more than one request
        self.timer: asyncio.Handle | None = None  # the next call, when one is planned
        self.delayed = False  # that call waits for more requests (under load)

    def submit(self, message: dict[str, Any], reply: Callable[[dict[str, Any]], None]) -> None:
        """Queue a request frame (``{"id", "texts", "embed"}``); its answer goes to ``reply``."""
        texts = message.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            reply({"id": message.get("id"), "error": "ValueError: texts must be a list of strings"})
            return
        request = Request(message.get("id"), texts, bool(message.get("embed")), reply, time.perf_counter())
        self.waiting.append(request)
        self.waiting_texts += len(texts)
        self._schedule()

    def _schedule(self) -> None:
        """Run the next call soon: at once when idle or when a full batch waits, else (under load) after
        up to ``max_wait_ms`` for more requests to join it."""
        full = self.waiting_texts >= self.max_batch_size
        if self.timer is not None:
            if not (full and self.delayed):
                return
            self.timer.cancel()  # a full batch does not wait out the timer
        loop = asyncio.get_running_loop()
        self.delayed = self.busy and not full and self.max_wait_s > 0
        if self.delayed:
            self.timer = loop.call_later(self.max_wait_s, self._run)
        else:
            self.timer = loop.call_soon(self._run)

    def _run(self) -> None:
        self.timer = None
        batch = [self.waiting.popleft()]
        count = len(batch[0].texts)
        while self.waiting and count + len(self.waiting[0].texts) <= self.max_batch_size:
            request = self.waiting.popleft()
            batch.append(request)
            count += len(request.texts)
        self.waiting_texts -= count
        self._answer(batch)
        self.busy = len(batch) > 1
        if self.waiting:
            self._schedule()

    def _answer(self, batch: list[Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        embed = any(request.embed for request in batch)  # one call gives them for the whole batch
        size = max(64, self.max_batch_size)  # a GPU variant's larger batches reach the model whole
        try:
            if embed:
                proba, embeddings = self.classifier.predict_with_embeddings(texts, size)
            else:
                proba, embeddings = self.classifier.predict_proba(texts, size), None
        except Exception as exc:
            if len(batch) == 1:
                _reply(batch[0], {"id": batch[0].id, "error": f"{type(exc).__name__}: {exc}"[:2000]})
                return
            for request in batch:  # find the bad request: answer each alone
                self._answer([request])
            return
        answered = time.perf_counter()
        start = 0
        for request in batch:
            end = start + len(request.texts)
            model_ms = (answered - request.received) * 1000  # waiting for its batch included
            answer: dict[str, Any] = {"id": request.id, "proba": proba[start:end], "model_ms": model_ms}
            if request.embed and embeddings is not None:
                answer["embedding"] = embeddings[start:end]
            _reply(request, answer)
            start = end


def _reply(request: Request, answer: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError):  # the router went away meanwhile
        request.reply(answer)


async def serve(hello: dict[str, Any], batcher: Batcher, port: int = 0) -> None:
    """Answer the router's frames on 127.0.0.1:``port`` (0: any free port; printed as ``READY <port>``)."""

    def greeted() -> protocol.FrameProtocol:
        frames = protocol.FrameProtocol(
            lambda message: batcher.submit(message, frames.send), greeting={"hello": hello}
        )
        return frames

    server = await asyncio.get_running_loop().create_server(greeted, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def load_for_serving(
    directory: Path, precision: str = "fp32", threads: int | None = None, device: str = "cpu"
) -> Any:
    """The classifier a worker serves from ``directory``: an ONNX export at ``precision`` on ``device``
    (falling back to the CPU with one warning), else the saved checkpoint through its backend (on the
    CPU)."""
    from loopwise.classifiers import load_classifier, read_manifest

    if read_manifest(directory)["backend"] == "onnx":
        from loopwise.classifiers.onnx import OnnxClassifier

        return OnnxClassifier.load(
            directory,
            precision=precision,  # type: ignore[arg-type]
            threads=threads,
            device=device,
        )
    return load_classifier(directory)


def greeting(classifier: Any, model: str, device: str = "cpu") -> dict[str, Any]:
    """What a worker tells the router first: its labels, model, process, device and the execution
    provider it runs on, with the fallback warning when a GPU device ended on the CPU."""
    return {
        "labels": list(classifier.labels),
        "model": model,
        "pid": os.getpid(),
        "device": device,
        "provider": getattr(classifier, "provider", "CPUExecutionProvider"),
        "fallback": getattr(classifier, "fallback", None),
    }


def main(argv: list[str] | None = None) -> int:
    from loopwise._process import die_with_parent

    parser = argparse.ArgumentParser(prog="python -m loopwise.serving.worker", description=__doc__)
    parser.add_argument("directory", type=Path, help="an ONNX export or a saved classifier")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None, help="the model's compute threads")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--model", default="", help="the model version's reference (reported to the router)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format=f"loopwise worker {os.getpid()}: %(message)s")
    classifier = load_for_serving(args.directory, args.precision, args.threads, args.device)
    hello = greeting(classifier, args.model, args.device)
    batcher = Batcher(classifier, args.max_batch_size, args.max_wait_ms)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(hello, batcher, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
