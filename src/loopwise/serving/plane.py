"""The data plane of ``loopwise server``: every InService endpoint running, kept in step with the database.

:class:`DataPlane` starts a runtime (variant pools of worker processes) for each endpoint that is
InService, and looks at the endpoints' configuration versions every :data:`WATCH_S` seconds: a new
version is applied in place (new weights take effect at once, with no restart and no failed request;
variants whose model or batching changed get new pools, the old ones drain), a new endpoint is started, a
deleted one stopped. :meth:`DataPlane.invoke` answers one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.errors import NotFoundError
from loopwise.serving.autoscaler import Autoscaler
from loopwise.serving.endpoints import Endpoint, EndpointStatus
from loopwise.serving.metrics import Metrics
from loopwise.serving.router import (
    DRAIN_S,
    EndpointRuntime,
    ModelFailed,
    PoolSpec,
    Routing,
    VariantPool,
    VariantUnavailable,
)

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)

#: seconds between two looks at the endpoints' configuration versions
WATCH_S = 0.5


@dataclass(frozen=True)
class Invocation:
    """One answered request."""

    inference_id: str
    endpoint: str
    variant: str
    #: the model version that answered (``name:version``)
    model: str
    labels: list[str]
    proba: np.ndarray
    model_ms: float
    #: what the router added: the whole request minus the model call
    overhead_ms: float


class DataPlane:
    def __init__(self, store: Store, *, watch_s: float = WATCH_S) -> None:
        self.store = store
        self.watch_s = watch_s
        self.runtimes: dict[str, EndpointRuntime] = {}
        self.watcher: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.draining: set[asyncio.Task[None]] = set()
        self.metrics = Metrics()
        self.autoscaler = Autoscaler(self.metrics)
        self._processes: dict[int, Any] = {}  # psutil.Process by pid, for CPU deltas
        self._sampled = 0.0

    async def start(self) -> None:
        await self.refresh()
        self.watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes.clear()

    async def invoke(
        self,
        endpoint: str,
        texts: Sequence[str],
        *,
        target: str | None = None,
        key: str | None = None,
        inference_id: str | None = None,
    ) -> Invocation:
        """Answer ``texts`` on the endpoint: on ``target`` variant if given, else by the caller ``key``
        (sticky), else by weighted draw."""
        started = time.perf_counter()
        runtime = self.runtimes.get(endpoint)
        if runtime is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} is not in service here; see `loopwise endpoint list` "
                "(an endpoint created a moment ago is picked up within a second)"
            )
        variant = runtime.pick(target, key)
        pool = runtime.pools[variant]
        try:
            proba, labels, model_ms = await pool.predict(texts)
        except ModelFailed:
            self.metrics.failed(endpoint, variant, 500)
            raise
        except VariantUnavailable:
            self.metrics.failed(endpoint, variant, 503)
            raise
        overhead_ms = max(0.0, (time.perf_counter() - started) * 1000 - model_ms)
        self.metrics.answered(endpoint, variant, model_ms, overhead_ms)
        return Invocation(
            inference_id=inference_id or uuid.uuid4().hex,
            endpoint=endpoint,
            variant=variant,
            model=pool.spec.model,
            labels=labels,
            proba=proba,
            model_ms=model_ms,
            overhead_ms=overhead_ms,
        )

    async def refresh(self) -> None:
        """Bring the runtimes in step with the database's endpoints."""
        async with self.lock:
            endpoints = await asyncio.to_thread(self._endpoints)
            wanted = {e.name: e for e in endpoints if e.status is EndpointStatus.IN_SERVICE}
            for name in list(self.runtimes):
                if name not in wanted:
                    log.info("endpoint %s: stopped", name)
                    await self.runtimes.pop(name).close()
            for name, endpoint in wanted.items():
                runtime = self.runtimes.get(name)
                if runtime is None or runtime.routing.version != endpoint.current.version:
                    try:
                        await self._apply(endpoint, runtime)
                    except Exception:
                        log.exception(
                            "endpoint %s: configuration %d not applied", name, endpoint.current.version
                        )

    def _endpoints(self) -> list[Endpoint]:
        with self.store.uow() as uow:
            return uow.endpoints.list()

    async def _apply(self, endpoint: Endpoint, runtime: EndpointRuntime | None) -> None:
        config = endpoint.config
        specs = await asyncio.to_thread(self._pool_specs, endpoint)
        old = {} if runtime is None else dict(runtime.pools)
        pools: dict[str, VariantPool] = {}
        for variant in config.variants:
            pool = old.get(variant.name)
            if pool is not None and pool.spec == specs[variant.name]:
                policy = variant.autoscaling
                if policy is None:
                    pool.scale(variant.instances)
                else:  # the autoscaler owns the count: keep it within the (new) bounds
                    pool.scale(max(policy.min_instances, min(policy.max_instances, pool.target)))
            else:
                pool = VariantPool(variant, specs[variant.name])
                await pool.start(wait=True)
            pools[variant.name] = pool
        routing = Routing.of(endpoint.current.version, config)
        if runtime is None:
            self.runtimes[endpoint.name] = EndpointRuntime(endpoint.name, routing, pools)
            log.info("endpoint %s: in service (configuration %d)", endpoint.name, routing.version)
        else:
            # one assignment each: a request sees the old pools and routing or the new ones, never a mix
            runtime.pools = pools
            runtime.routing = routing
            log.info("endpoint %s: configuration %d in force", endpoint.name, routing.version)
        for name, pool in old.items():
            if pools.get(name) is not pool:
                task = asyncio.create_task(pool.close(drain_s=DRAIN_S))
                self.draining.add(task)
                task.add_done_callback(self.draining.discard)

    def _pool_specs(self, endpoint: Endpoint) -> dict[str, PoolSpec]:
        from loopwise.serving.service import serving_dir

        instances = sum(v.instances for v in endpoint.config.variants)
        threads = max(1, (os.cpu_count() or 1) // max(1, instances))
        specs = {}
        for variant in endpoint.config.variants:
            with self.store.uow() as uow:
                version = uow.models.get_by_id(int(variant.model_version_id or -1))
            specs[variant.name] = PoolSpec(
                directory=serving_dir(self.store, version, variant.precision),
                precision=variant.precision,
                max_batch_size=variant.max_batch_size,
                max_wait_ms=variant.max_wait_ms,
                model=version.ref,
                threads=threads,
            )
        return specs

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read the endpoints' configurations; trying again")
            for runtime in list(self.runtimes.values()):
                self.autoscaler.tick(runtime)
            if time.monotonic() - self._sampled >= 1.0:
                self._sample_resources()
                self._sampled = time.monotonic()

    def _sample_resources(self) -> None:
        """Record each variant's live workers and their CPU since the last sample."""
        import psutil

        seen = set()
        for runtime in self.runtimes.values():
            for name, pool in runtime.pools.items():
                cpu = 0.0
                live = pool.live
                for instance in live:
                    if instance.process is None:
                        continue
                    pid = instance.process.pid
                    seen.add(pid)
                    try:
                        process = self._processes.get(pid)
                        if process is None:
                            process = self._processes[pid] = psutil.Process(pid)
                            process.cpu_percent()  # the first call only starts the measurement
                        cpu += process.cpu_percent()
                    except psutil.Error:
                        continue
                self.metrics.resources(runtime.name, name, len(live), cpu)
        for pid in set(self._processes) - seen:
            del self._processes[pid]


__all__ = ["DataPlane", "Invocation"]
