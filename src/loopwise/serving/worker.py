"""A variant instance: one process that holds a model and answers the router with dynamic batching.

``python -m loopwise.serving.worker DIR`` loads the classifier in DIR (an ONNX export or a saved
checkpoint), listens on an ephemeral port of 127.0.0.1, prints ``READY <port>`` and answers frames of
:mod:`loopwise.serving.protocol` until its parent dies.

Batching: requests queue while the model is busy, and the next model call takes everything queued, up to
``max_batch_size`` texts. An idle worker answers a lone request at once; under load (the previous call
answered several requests) a call waits up to ``max_wait_ms`` for more to join it. A request whose batch
failed is answered alone, so one bad request does not fail the others of its batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.serving import protocol

#: a queued request: its texts, whether it wants embeddings, and where its answer goes
Request = tuple[list[str], bool, "asyncio.Future[Answer]"]
#: probabilities, embeddings (when asked for and the model has them), milliseconds of the model call
Answer = tuple[np.ndarray, "np.ndarray | None", float]


class Batcher:
    """Dynamic batching in front of a classifier's ``predict_proba`` (run on one model thread)."""

    def __init__(self, classifier: Any, max_batch_size: int = 32, max_wait_ms: float = 2.0) -> None:
        self.classifier = classifier
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self.busy = False  # the last model call answered more than one request
        #: how many model calls and requests there were (for tests and metrics)
        self.calls = 0
        self.requests = 0

    async def predict(self, texts: list[str], embed: bool = False) -> Answer:
        """Class probabilities of ``texts``, their sentence embeddings when ``embed`` (None when the model
        has none), and the milliseconds of the model call that answered them."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, embed, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            await self._answer(batch)

    async def _next_batch(self) -> list[Request]:
        batch = [await self.queue.get()]
        count = len(batch[0][0])
        deadline = time.monotonic() + (self.max_wait_s if self.busy else 0.0)
        while count < self.max_batch_size:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            batch.append(item)
            count += len(item[0])
        return batch

    async def _answer(self, batch: list[Request]) -> None:
        loop = asyncio.get_running_loop()
        texts = [text for request_texts, _, _ in batch for text in request_texts]
        embed = any(wants for _, wants, _ in batch)  # the same model call gives them for the whole batch
        started = time.perf_counter()
        try:
            if embed:
                call = self.classifier.predict_with_embeddings
                proba, embeddings = await loop.run_in_executor(self.model_thread, call, texts, 64)
            else:
                proba = await loop.run_in_executor(
                    self.model_thread, self.classifier.predict_proba, texts, 64
                )
                embeddings = None
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][2], exc)
                return
            for request in batch:  # find the bad request: answer each alone
                await self._answer([request])
            return
        model_ms = (time.perf_counter() - started) * 1000
        self.calls += 1
        self.requests += len(batch)
        self.busy = len(batch) > 1
        start = 0
        for request_texts, wants, future in batch:
            end = start + len(request_texts)
            mine = embeddings[start:end] if wants and embeddings is not None else None
            _settle(future, (proba[start:end], mine, model_ms))
            start = end


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the router went away meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def serve(hello: dict[str, Any], batcher: Batcher, port: int = 0) -> None:
    """Answer the router's frames on 127.0.0.1:``port`` (0: any free port; printed as ``READY <port>``)."""
    batching = asyncio.create_task(batcher.run())

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(protocol.encode({"hello": hello}))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                message = await protocol.read(reader)
                task = asyncio.create_task(_handle(message, batcher, writer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, protocol.ProtocolError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), batching)


async def _handle(message: dict[str, Any], batcher: Batcher, writer: asyncio.StreamWriter) -> None:
    request_id = message.get("id")
    texts = message.get("texts")
    try:
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings")
        proba, embeddings, model_ms = await batcher.predict(texts, bool(message.get("embed")))
        answer: dict[str, Any] = {"id": request_id, "proba": proba, "model_ms": model_ms}
        if embeddings is not None:
            answer["embedding"] = embeddings
    except Exception as exc:
        answer = {"id": request_id, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.write(protocol.encode(answer))


def load_for_serving(directory: Path, precision: str = "fp32", threads: int | None = None) -> Any:
    """The classifier a worker serves from ``directory``: an ONNX export at ``precision``, else the
    saved checkpoint through its backend."""
    from loopwise.classifiers import load_classifier, read_manifest

    if read_manifest(directory)["backend"] == "onnx":
        from loopwise.classifiers.onnx import OnnxClassifier

        return OnnxClassifier.load(directory, precision=precision, threads=threads)  # type: ignore[arg-type]
    return load_classifier(directory)


def main(argv: list[str] | None = None) -> int:
    from loopwise._process import die_with_parent

    parser = argparse.ArgumentParser(prog="python -m loopwise.serving.worker", description=__doc__)
    parser.add_argument("directory", type=Path, help="an ONNX export or a saved classifier")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=None, help="the model's compute threads")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--model", default="", help="the model version's reference (reported to the router)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    die_with_parent()
    classifier = load_for_serving(args.directory, args.precision, args.threads)
    hello = {"labels": list(classifier.labels), "model": args.model, "pid": os.getpid()}
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
