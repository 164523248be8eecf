"""The data plane's router: variant pools of worker processes, and the choice of a variant per request.

An :class:`EndpointRuntime` holds one :class:`VariantPool` per variant of the configuration in force and a
:class:`Routing` snapshot (the production variants' cumulative weights). Applying a new configuration
swaps the snapshot in one assignment: a request already routed finishes on its variant, the next one sees
the new weights, nothing restarts. Pools whose model or batching changed are started anew and the old
ones are closed once their requests have drained.

Each pool keeps its instances (worker processes, :mod:`loopwise.serving.worker`) alive: an instance that
dies is restarted; while a pool has no live instance its requests fail at once (503), other variants are
untouched.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import itertools
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.experiments.bandit import thompson
from loopwise.serving import protocol
from loopwise.serving.config import EndpointConfig, Variant

log = logging.getLogger(__name__)

#: how long a worker may take to load its model and report ready
START_TIMEOUT_S = 120.0
#: how long an old pool waits for its requests before it is closed
DRAIN_S = 30.0


class VariantUnavailable(Exception):
    """No live instance of the variant can take the request now (it is starting or restarting)."""


class ModelFailed(Exception):
    """The variant's model raised for this request."""


@dataclass(frozen=True)
class Answer:
    """A worker's answer to one request."""

    proba: np.ndarray
    labels: list[str]
    model_ms: float
    #: each text's sentence embedding, when asked for and the model has one
    embeddings: np.ndarray | None = None


class WorkerClient:
    """One multiplexed connection to a worker: many requests in flight, answered in any order (each
    answer frame settles its request's future as soon as the socket delivers it)."""

    def __init__(self, frames: protocol.FrameProtocol, hello: dict[str, Any]) -> None:
        self.frames = frames
        self.labels: list[str] = list(hello["labels"])
        self.pid: int = int(hello["pid"])
        #: the execution provider the worker runs on, and its fallback warning (None: none)
        self.provider: str = str(hello.get("provider", "CPUExecutionProvider"))
        self.fallback: str | None = hello.get("fallback")
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count()

    @property
    def closed(self) -> bool:
        return self.frames.closing or self.frames.closed

    @classmethod
    async def connect(cls, port: int, timeout: float = 30.0) -> WorkerClient:
        loop = asyncio.get_running_loop()
        hello: asyncio.Future[dict[str, Any]] = loop.create_future()
        client: WorkerClient | None = None

        def on_frame(message: dict[str, Any]) -> None:
            if client is not None:
                client._settle(message)
            elif not hello.done() and isinstance(message.get("hello"), dict):
                hello.set_result(message["hello"])

        def on_closed(reason: Exception | None) -> None:
            if client is not None:
                client._fail_pending()
            elif not hello.done():
                hello.set_exception(VariantUnavailable(f"the worker closed before greeting ({reason})"))

        _, frames = await loop.create_connection(
            lambda: protocol.FrameProtocol(on_frame, on_closed), "127.0.0.1", port
        )
        try:
            client = cls(frames, await asyncio.wait_for(hello, timeout))
        except BaseException:
            frames.close()
            raise
        return client

    async def predict(self, texts: Sequence[str], embed: bool = False) -> Answer:
        if self.closed:
            raise VariantUnavailable("the worker's connection closed")
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            message: dict[str, Any] = {"id": request_id, "texts": list(texts)}
            if embed:
                message["embed"] = True
            self.frames.send(message)
            answer = await future
        except ConnectionError as exc:
            raise VariantUnavailable(f"the worker's connection closed ({exc})") from None
        finally:
            self.pending.pop(request_id, None)
        if "error" in answer:
            raise ModelFailed(answer["error"])
        embedding = answer.get("embedding")
        return Answer(
            proba=np.asarray(answer["proba"], dtype=np.float64),
            labels=self.labels,
            model_ms=float(answer["model_ms"]),
            embeddings=None if embedding is None else np.asarray(embedding, dtype=np.float32),
        )

    def _settle(self, message: dict[str, Any]) -> None:
        future = self.pending.get(message.get("id", -1))
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(VariantUnavailable("the worker died while answering"))

    def close(self) -> None:
        self.frames.close()


@dataclass
class Instance:
    """A worker process of a pool and its connection (None while it starts)."""

    process: asyncio.subprocess.Process | None = None
    client: WorkerClient | None = None
    in_flight: int = 0
    restarts: int = 0

    @property
    def live(self) -> bool:
        return self.client is not None and not self.client.closed


@dataclass(frozen=True)
class PoolSpec:
    """What a pool's workers load and how they batch; a pool is rebuilt only when this changes."""

    directory: Path
    precision: str
    max_batch_size: int
    max_wait_ms: float
    model: str
    #: where the workers run the model: cpu, cuda, cuda:N or auto
    device: str = "cpu"
    #: compute threads per worker (not part of what makes a pool: scaling one keeps it)
    threads: int = field(default=1, compare=False)


class VariantPool:
    """The instances of one variant: started, watched and restarted; requests go to the least busy."""

    def __init__(self, variant: Variant, spec: PoolSpec, instances: int) -> None:
        """A pool of ``instances`` workers (the variant's count on this server:
        :func:`loopwise.serving.autoscaler.count_of`)."""
        self.name = variant.name
        self.spec = spec
        self.instances: list[Instance] = []
        self.target = instances
        self.closing = False
        self.supervisor: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    @property
    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.live]

    async def start(self, wait: bool = True) -> None:
        """Start the instances; with ``wait``, return once at least one answers (or raise)."""
        self.supervisor = asyncio.create_task(self._supervise())
        if wait:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self.live:
                if time.monotonic() > deadline:
                    raise VariantUnavailable(f"variant {self.name}: no worker became ready")
                await asyncio.sleep(0.05)

    def scale(self, instances: int) -> None:
        self.target = instances
        self.changed.set()

    async def predict(self, texts: Sequence[str], embed: bool = False) -> Answer:
        live = self.live
        if not live:
            raise VariantUnavailable(f"variant {self.name} has no live instance (starting or restarting)")
        instance = min(live, key=lambda i: i.in_flight)
        assert instance.client is not None
        instance.in_flight += 1
        try:
            return await instance.client.predict(texts, embed)
        finally:
            instance.in_flight -= 1

    async def close(self, drain_s: float = 0.0) -> None:
        self.closing = True
        deadline = time.monotonic() + drain_s
        while any(i.in_flight for i in self.instances) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.supervisor is not None:
            self.supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.supervisor
        for instance in self.instances:
            await _stop(instance)
        self.instances.clear()

    async def _supervise(self) -> None:
        """Keep ``target`` instances running: start missing ones, restart dead ones, stop extras."""
        while not self.closing:
            while len(self.instances) > self.target:
                await _stop(self.instances.pop())
            for instance in list(self.instances):
                if instance.process is not None and instance.process.returncode is not None:
                    log.warning("variant %s: worker %s died; restarting it", self.name, instance.process.pid)
                    if instance.client is not None:
                        instance.client.close()
                    instance.client, instance.process = None, None
                    instance.restarts += 1
            starting = [self._run(i) for i in self.instances if i.process is None]
            while len(self.instances) < self.target:
                instance = Instance()
                self.instances.append(instance)
                starting.append(self._run(instance))
            if starting:
                await asyncio.gather(*starting, return_exceptions=True)
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)

    async def _run(self, instance: Instance) -> None:
        spec = self.spec
        command = [sys.executable, "-m", "loopwise.serving.worker", str(spec.directory)]
        command += ["--precision", spec.precision, "--threads", str(spec.threads)]
        command += ["--max-batch-size", str(spec.max_batch_size), "--max-wait-ms", str(spec.max_wait_ms)]
        command += ["--model", spec.model, "--device", spec.device]
        env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads)}
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=None, env=env
        )
        instance.process = process
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if not line.startswith(b"READY "):
                raise VariantUnavailable(f"variant {self.name}: the worker did not start ({line!r})")
            instance.client = await WorkerClient.connect(int(line.split()[1]))
        except Exception:
            log.exception("variant %s: a worker failed to start", self.name)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def start_together(pools: Sequence[VariantPool]) -> None:
    """Start new pools together (an endpoint of several variants starts as fast as its slowest); if
    one cannot start, the others are closed again and its error raised."""
    outcomes = await asyncio.gather(*(p.start(wait=True) for p in pools), return_exceptions=True)
    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failed is not None:
        for pool in pools:
            await pool.close()
        raise failed


async def _stop(instance: Instance) -> None:
    if instance.client is not None:
        instance.client.close()
    process = instance.process
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@dataclass(frozen=True)
class Routing:
    """An immutable snapshot of who gets the traffic: production variants and cumulative weights."""

    version: int
    config: EndpointConfig
    names: tuple[str, ...] = ()
    cumulative: tuple[float, ...] = ()

    @classmethod
    def of(cls, version: int, config: EndpointConfig) -> Routing:
        live = [v for v in config.production if v.weight > 0]
        return cls(
            version, config, tuple(v.name for v in live), tuple(itertools.accumulate(v.weight for v in live))
        )

    def choose(self, point: float) -> str:
        """The production variant at ``point`` (in [0, 1)) of the weights laid end to end: a uniform
        random point draws in proportion to the weights."""
        scaled = point * self.cumulative[-1]
        return self.names[min(bisect.bisect_right(self.cumulative, scaled), len(self.names) - 1)]


@dataclass
class EndpointRuntime:
    """A running endpoint: its routing snapshot and its variant pools."""

    name: str
    routing: Routing
    pools: dict[str, VariantPool] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    #: a bandit endpoint's evidence per variant: (rewards, pulls)
    arms: dict[str, tuple[float, int]] = field(default_factory=dict)

    def pick(self, target: str | None = None, key: str | None = None) -> str:
        """The variant for a request: the target variant if given (it must exist); else, with a caller
        ``key``, the same variant for the same key as long as the weights stay (sticky: a user stays in
        one arm); else a weighted random draw."""
        if target is not None:
            self.routing.config.variant(target)  # raises EndpointConfigError naming the variants
            return target
        if key is not None:
            return self.routing.choose(sticky_point(self.name, key))
        if self.routing.config.routing == "bandit":
            return thompson(self.routing.names, self.arms, self.rng)
        return self.routing.choose(self.rng.random())

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()
        self.pools.clear()


def sticky_point(endpoint: str, key: str) -> float:
    """A caller key's fixed point in [0, 1): uniform over keys, independent between endpoints."""
    digest = hashlib.blake2b(f"{endpoint}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
