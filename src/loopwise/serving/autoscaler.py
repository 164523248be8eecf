"""Target-tracking autoscaling of variant pools on InvocationsPerInstance (see
:class:`loopwise.serving.config.Autoscaling`); the data plane calls :meth:`Autoscaler.tick` twice a second."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass

from loopwise.serving.metrics import Metrics
from loopwise.serving.router import EndpointRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingEvent:
    at: float
    endpoint: str
    variant: str
    instances_before: int
    instances_after: int
    #: invocations per instance over the policy's period when it was decided
    metric: float


class Autoscaler:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.last_scale_out: dict[tuple[str, str], float] = {}
        self.last_change: dict[tuple[str, str], float] = {}
        self.events: deque[ScalingEvent] = deque(maxlen=1000)

    def tick(self, runtime: EndpointRuntime, now: float | None = None) -> list[ScalingEvent]:
        """Scale the runtime's autoscaled pools where their policy says so; returns what changed."""
        now = time.time() if now is None else now
        changed = []
        for variant in runtime.routing.config.variants:
            policy, pool = variant.autoscaling, runtime.pools.get(variant.name)
            if policy is None or pool is None:
                continue
            key = (runtime.name, variant.name)
            current = pool.target
            invocations = self.metrics.invocations_since(runtime.name, variant.name, now - policy.period_s)
            per_instance = invocations / current
            desired = policy.desired(current, per_instance)
            out_ready = now - self.last_scale_out.get(key, -math.inf) >= policy.scale_out_cooldown_s
            in_ready = now - self.last_change.get(key, -math.inf) >= policy.scale_in_cooldown_s
            if (desired > current and out_ready) or (desired < current and in_ready):
                pool.scale(desired)
                if desired > current:
                    self.last_scale_out[key] = now
                self.last_change[key] = now
                event = ScalingEvent(now, runtime.name, variant.name, current, desired, per_instance)
                self.events.append(event)
                changed.append(event)
                log.info(
                    "endpoint %s: %s scaled %d -> %d (%.2f invocations per instance over %g s, target %g)",
                    runtime.name,
                    variant.name,
                    current,
                    desired,
                    per_instance,
                    policy.period_s,
                    policy.target,
                )
        return changed
