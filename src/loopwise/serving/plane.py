"""The data plane of ``loopwise server``: every InService endpoint running, kept in step with the database.

:class:`DataPlane` starts a runtime (variant pools of worker processes) for each InService endpoint and
polls the endpoints' versions every :data:`WATCH_S` seconds (one small query, :mod:`.replica`): a new
configuration is applied in place (new weights take effect at once, with no restart and no failed
request; variants whose model or batching changed get new pools, the old ones drain), a new live state
resizes the pools (the autoscaler's counts) or reloads a bandit's arms, a new endpoint is started, a
deleted one stopped. Every server of one database polls, so a change made through any of them reaches
all of them within a poll; requests never read the database. :meth:`DataPlane.invoke` answers one
request. The server reports its autoscaled variants' load for the autoscaler, a duty of its own
(:mod:`.autoscaler`); the rollout guard, which writes the endpoints' weights, runs only in the server
that holds its lease (:data:`ROLLOUT_GUARD`) when given a :class:`~loopwise.storage.leases.LeaseKeeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.errors import LeaseLostError, NotFoundError
from loopwise.experiments.bandit import BanditBook
from loopwise.review.activation import LoopStarter, activate
from loopwise.review.conditions import Condition
from loopwise.review.records import Flow
from loopwise.serving.capture import CaptureWriter
from loopwise.serving.deployment import pool_specs
from loopwise.serving.invocation import Invocation, capture_record
from loopwise.serving.known import Known
from loopwise.serving.metrics import Metrics
from loopwise.serving.records import EndpointVersion, Feedback
from loopwise.serving.replica import Replica, changes
from loopwise.serving.resources import ResourceSampler
from loopwise.serving.router import (
    DRAIN_S,
    EndpointRuntime,
    ModelFailed,
    Routing,
    VariantPool,
    VariantUnavailable,
    start_together,
)
from loopwise.serving.service import guard_rollouts
from loopwise.serving.shadow import ShadowComparison
from loopwise.storage.leases import new_holder, run_fenced

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.storage.leases import LeaseKeeper

log = logging.getLogger(__name__)

#: seconds between two looks at the endpoints' configuration versions
WATCH_S = 0.5
#: shadow requests in flight at most; past this, copies are skipped (and counted as the shadow's 5XX)
MAX_SHADOW_IN_FLIGHT = 256
#: the rollout guard's duty lease: one server advances or rolls back the rollouts at a time
ROLLOUT_GUARD = "rollout-guard"


class DataPlane:
    def __init__(self, store: Store, *, watch_s: float = WATCH_S, leases: LeaseKeeper | None = None) -> None:
        self.store = store
        self.watch_s = watch_s
        #: the server's duty leases: the rollout guard runs while it holds ROLLOUT_GUARD (always without)
        self.leases = leases
        #: this server among the others (its load reports carry the leases' holder id)
        self.replica = Replica(store, leases.holder if leases is not None else new_holder())
        self.runtimes: dict[str, EndpointRuntime] = {}
        #: the versions each running endpoint was last brought in step with
        self.applied: dict[str, EndpointVersion] = {}
        self.watcher: asyncio.Task[None] | None = None
        self.reporter: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.draining: set[asyncio.Task[None]] = set()
        self.metrics = Metrics()
        self.shadows = ShadowComparison()
        self.shadow_tasks: set[asyncio.Task[None]] = set()
        self.capture_writers: dict[str, CaptureWriter] = {}
        self.bandits = BanditBook()
        #: what feedback may name: the ids answered lately, the capture's, the classes (serving.known)
        self.known = Known(store.artifacts.host_dir("capture"))
        self.resources = ResourceSampler()
        self._sampled = 0.0
        self.loops = LoopStarter(store)
        #: each reviewed endpoint's flow, with its activation conditions parsed once (not per request)
        self.flows: dict[str, tuple[Flow, Condition]] = {}

    async def start(self) -> None:
        await self.loops.start()
        await self.refresh()
        self.watcher = asyncio.create_task(self._watch())
        self.reporter = asyncio.create_task(self.replica.report(self.runtimes.values, self.metrics))

    async def close(self) -> None:
        for task in (self.watcher, self.reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.replica.withdraw()
        for task in list(self.shadow_tasks):
            task.cancel()
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes.clear()
        for writer in self.capture_writers.values():
            await asyncio.to_thread(writer.close)
        self.capture_writers.clear()
        await self.loops.close()

    def runtime(self, endpoint: str) -> EndpointRuntime:
        """The running endpoint; :class:`NotFoundError` when it is not in service here."""
        runtime = self.runtimes.get(endpoint)
        if runtime is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} is not in service here; see `loopwise endpoint list` "
                "(an endpoint created a moment ago is picked up within a second)"
            )
        return runtime

    def live_instances(self, endpoint: str) -> dict[str, int]:
        """Each variant's live workers here (empty when the endpoint is not in service here)."""
        runtime = self.runtimes.get(endpoint)
        return {v: len(pool.live) for v, pool in runtime.pools.items()} if runtime else {}

    def providers(self, endpoint: str) -> dict[str, dict[str, str | None]]:
        """Each variant's execution provider as its live workers report it, with the fallback warning
        of a GPU variant that ended on the CPU (empty when the endpoint is not in service here)."""
        runtime = self.runtimes.get(endpoint)
        found: dict[str, dict[str, str | None]] = {}
        for variant, pool in runtime.pools.items() if runtime else ():
            clients = [i.client for i in pool.live if i.client is not None]
            if clients:
                fallen = next((c for c in clients if c.fallback), clients[0])
                found[variant] = {
                    "device": pool.spec.device,
                    "provider": fallen.provider,
                    "fallback": fallen.fallback,
                }
        return found

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
        (sticky), else by weighted draw. A sampled share is captured, and copied to shadow variants,
        after the answer is ready and without waiting for either."""
        started = time.perf_counter()
        runtime = self.runtime(endpoint)
        config = runtime.routing.config
        variant = runtime.pick(target, key)
        pool = runtime.pools[variant]
        captured = config.capture is not None and runtime.rng.random() < config.capture.share
        embed = captured and config.capture is not None and config.capture.embeddings
        try:
            answer = await pool.predict(texts, embed=embed)
        except ModelFailed:
            self.metrics.failed(endpoint, variant, 500)
            raise
        except VariantUnavailable:
            self.metrics.failed(endpoint, variant, 503)
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        overhead_ms = max(0.0, latency_ms - answer.model_ms)
        self.metrics.answered(endpoint, variant, answer.model_ms, overhead_ms)
        result = Invocation(
            inference_id=inference_id or uuid.uuid4().hex,
            endpoint=endpoint,
            variant=variant,
            model=pool.spec.model,
            labels=answer.labels,
            proba=answer.proba,
            model_ms=answer.model_ms,
            overhead_ms=overhead_ms,
        )
        self.known.answered.add(endpoint, result.inference_id)
        reviewed = self.flows.get(endpoint) if config.review is not None else None
        if reviewed is not None and config.reviewed(variant):
            result = self._review(*reviewed, result, texts, runtime)
        if config.routing == "bandit":
            self._remember(result)
        if captured:
            self._capture(result, texts, answer.embeddings, latency_ms)
        for shadow in config.shadows:
            if runtime.rng.random() < shadow.shadow_share:
                self._start_shadow(runtime, shadow.name, texts, result, embed)
        return result

    def _review(
        self,
        flow: Flow,
        condition: Condition,
        result: Invocation,
        texts: Sequence[str],
        runtime: EndpointRuntime,
    ) -> Invocation:
        """Start a human loop for each text whose prediction fires the flow's conditions (journaled now,
        written to the database a few milliseconds later: ``review.activation``)."""
        started = activate(
            flow, result.endpoint, result.variant, result.inference_id, texts, result.labels, result.proba,
            runtime.rng, condition=condition,
        )  # fmt: skip
        if not started:
            return result
        try:
            self.loops.offer(flow, [record for _, record in started])
        except OSError:  # the journal cannot be written (a full disk): the prediction still answers
            log.exception("endpoint %s: human loops not started for %s", result.endpoint, result.inference_id)
            return result
        names: list[str | None] = [None] * len(texts)
        for position, record in started:
            names[position] = record["name"]
        return dataclasses.replace(result, human_loops=tuple(names))

    def _remember(self, result: Invocation) -> None:
        """Keep a bandit endpoint's answer, so that feedback can reward the arm that gave it."""
        predicted = [result.labels[int(i)] for i in result.proba.argmax(axis=1)]
        self.bandits.remember(result.endpoint, result.inference_id, result.variant, predicted)

    async def reward(self, endpoint: str, items: Sequence[Feedback]) -> int:
        """Turn feedback on a bandit endpoint's recent answers into evidence for their arms (kept in the
        database, so a restarted server goes on from it); returns how many answers it rewarded."""
        runtime = self.runtimes.get(endpoint)
        if runtime is None or runtime.routing.config.routing != "bandit":
            return 0
        evidence = self.bandits.evidence(endpoint, items)
        if evidence:
            await asyncio.to_thread(self.replica.add_evidence, endpoint, evidence)
            for variant, (total, pulls) in evidence.items():
                old_total, old_pulls = runtime.arms.get(variant, (0.0, 0))
                runtime.arms[variant] = (old_total + total, old_pulls + pulls)
        return sum(pulls for _, pulls in evidence.values())

    def shadow_report(self, endpoint: str) -> dict[str, Any]:
        return self.shadows.report(endpoint)

    def _capture(
        self,
        result: Invocation,
        texts: Sequence[str],
        embeddings: np.ndarray | None,
        latency_ms: float,
        shadow_of: str | None = None,
    ) -> None:
        """Offer the request's record to the capture writer (dropped and counted when it is behind)."""
        runtime = self.runtimes.get(result.endpoint)
        capture = None if runtime is None else runtime.routing.config.capture
        writer = self.capture_writers.get(result.endpoint)
        if writer is None:
            root = self.store.artifacts.host_dir("capture")
            max_queue = capture.max_queue if capture is not None else 10_000
            writer = self.capture_writers[result.endpoint] = CaptureWriter(root, max_queue=max_queue)
        version = None if runtime is None else runtime.routing.version
        record = capture_record(result, texts, embeddings, latency_ms, version, shadow_of)
        if not writer.offer(record):
            self.metrics.capture_dropped(result.endpoint)

    def _start_shadow(
        self, runtime: EndpointRuntime, shadow: str, texts: Sequence[str], production: Invocation, embed: bool
    ) -> None:
        if len(self.shadow_tasks) >= MAX_SHADOW_IN_FLIGHT:  # shadows must never hold production back
            self.metrics.failed(runtime.name, shadow, 503)
            return
        task = asyncio.create_task(self._shadow(runtime, shadow, list(texts), production, embed))
        self.shadow_tasks.add(task)
        task.add_done_callback(self.shadow_tasks.discard)

    async def _shadow(
        self, runtime: EndpointRuntime, shadow: str, texts: list[str], production: Invocation, embed: bool
    ) -> None:
        pool = runtime.pools.get(shadow)
        if pool is None:
            return
        started = time.perf_counter()
        try:
            answer = await pool.predict(texts, embed=embed)
        except (ModelFailed, VariantUnavailable) as exc:
            self.metrics.failed(runtime.name, shadow, 500 if isinstance(exc, ModelFailed) else 503)
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.answered(runtime.name, shadow, answer.model_ms, max(0.0, latency_ms - answer.model_ms))
        result = Invocation(
            inference_id=production.inference_id,
            endpoint=runtime.name,
            variant=shadow,
            model=pool.spec.model,
            labels=answer.labels,
            proba=answer.proba,
            model_ms=answer.model_ms,
            overhead_ms=0.0,
        )
        produced = [production.labels[int(i)] for i in production.proba.argmax(axis=1)]
        shadowed = [answer.labels[int(i)] for i in answer.proba.argmax(axis=1)]
        self.shadows.add(runtime.name, shadow, produced, shadowed)
        self._capture(result, texts, answer.embeddings, latency_ms, shadow_of=production.variant)

    async def refresh(self) -> None:
        """Bring the runtimes in step with the database's endpoints: read every endpoint's versions, then
        load and apply only what changed."""
        async with self.lock:
            versions = await asyncio.to_thread(self.replica.versions)
            stopped, configured, restated = changes(self.applied, versions)
            for name in stopped:
                log.info("endpoint %s: stopped", name)
                self.applied.pop(name, None)
                await self.runtimes.pop(name).close()
            for apply, group in ((self._apply, configured), (self._restate, restated)):
                for seen in group:
                    try:
                        await apply(seen)
                    except Exception:
                        log.exception("endpoint %s: version %d not applied", seen.name, seen.config_version)

    async def _restate(self, seen: EndpointVersion) -> None:
        """Apply a new live state (the autoscaler's counts, a bandit's evidence) to the running endpoint."""
        endpoint, wanted = await asyncio.to_thread(self.replica.configuration, seen.name)
        runtime = self.runtimes[seen.name]
        if endpoint.current.version != runtime.routing.version:
            # a configuration came in between the two reads: the next poll applies it whole
            self.applied[seen.name] = dataclasses.replace(seen, config_version=-1)
            return
        for variant, pool in runtime.pools.items():
            if pool.target != wanted.get(variant, pool.target):
                pool.scale(wanted[variant])
        if endpoint.config.routing == "bandit":
            runtime.arms = await asyncio.to_thread(self.replica.arms, seen.name)
        self.applied[seen.name] = seen

    async def _apply(self, seen: EndpointVersion) -> None:
        endpoint, wanted = await asyncio.to_thread(self.replica.configuration, seen.name)
        runtime = self.runtimes.get(seen.name)
        config = endpoint.config
        specs = await asyncio.to_thread(pool_specs, self.store, endpoint)
        old = {} if runtime is None else dict(runtime.pools)
        pools: dict[str, VariantPool] = {}
        for variant in config.variants:
            pool = old.get(variant.name)
            if pool is None or pool.spec != specs[variant.name]:
                pool = VariantPool(variant, specs[variant.name], wanted[variant.name])
            pools[variant.name] = pool
        await start_together([p for p in pools.values() if p.supervisor is None])
        for name, pool in old.items():
            if pools.get(name) is pool:
                pool.scale(wanted[name])
        if config.review is not None:
            from loopwise.review.conditions import flow_condition
            from loopwise.review.flows import find_flow

            flow = await asyncio.to_thread(find_flow, self.store, config.review.flow)
            self.flows[endpoint.name] = (flow, flow_condition(flow))
        else:
            self.flows.pop(endpoint.name, None)
        routing = Routing.of(endpoint.current.version, config)
        arms = await asyncio.to_thread(self.replica.arms, endpoint.name) if config.routing == "bandit" else {}
        if runtime is None:
            self.runtimes[endpoint.name] = EndpointRuntime(endpoint.name, routing, pools, arms=arms)
            log.info("endpoint %s: in service (configuration %d)", endpoint.name, routing.version)
        else:
            # one assignment each: a request sees the old pools and routing or the new ones, never a mix
            runtime.pools = pools
            runtime.arms = arms
            runtime.routing = routing
            log.info("endpoint %s: configuration %d in force", endpoint.name, routing.version)
        # what was read may be newer than the poll: the next poll applies anything newer still
        self.applied[endpoint.name] = dataclasses.replace(seen, config_version=endpoint.current.version)
        for name, pool in old.items():
            if pools.get(name) is not pool:
                task = asyncio.create_task(pool.close(drain_s=DRAIN_S))
                self.draining.add(task)
                task.add_done_callback(self.draining.discard)

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read the endpoints' configurations; trying again")
            await self._guard_rollouts()
            if time.monotonic() - self._sampled >= 1.0:
                self.resources.sample(self.runtimes.values(), self.metrics)
                self._sampled = time.monotonic()
            # a poll every watch_s, whatever the pass took (a slow guard does not delay the next poll)
            await asyncio.sleep(max(0.05, self.watch_s - (time.monotonic() - started)))

    async def _guard_rollouts(self) -> None:
        """Advance, complete or roll back the rollouts: here if this server holds the guard's lease (each
        write fenced by it), or always when the plane has no leases."""
        fence = None if self.leases is None else self.leases.fence(ROLLOUT_GUARD)
        if self.leases is not None and fence is None:
            return  # another server guards the rollouts
        guard = functools.partial(guard_rollouts, metrics=self.metrics, in_service=set(self.runtimes))
        try:
            if fence is None:
                await asyncio.to_thread(guard, self.store)
            else:
                await asyncio.to_thread(run_fenced, self.store, fence, guard)
        except LeaseLostError:
            if self.leases is not None:
                self.leases.lost(ROLLOUT_GUARD)
        except Exception:
            log.exception("could not advance the rollouts; trying again")


__all__ = ["ROLLOUT_GUARD", "DataPlane", "Invocation"]
