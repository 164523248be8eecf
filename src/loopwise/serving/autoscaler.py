"""Target-tracking autoscaling of variants on InvocationsPerInstance (see
:class:`loopwise.serving.config.Autoscaling`), over every server of one database.

**A variant's instance count is per server**: ``instances: 2`` (or an autoscaled count of 2) means two
worker processes on each ``loopwise server`` that serves the endpoint, since a load balancer sends each
server an even share of the requests and each server's workers answer only its own. The autoscaler sets
one count for all of them:

- every server reports, every :data:`REPORT_S` seconds, each autoscaled variant's invocations over the
  policy's period and its live instances (:func:`reports`, stored by ``uow.scaling.publish``, stamped
  with the database's clock);
- one server, the holder of the :data:`AUTOSCALER` duty's lease, sums the reports of the last
  :data:`FRESH_S` seconds (a server that stopped reporting drops out) and decides (:func:`autoscale`,
  :func:`decide`): InvocationsPerInstance is the servers' invocations over ``servers x count``, and the
  new count ``ceil(count * metric / target)`` within the bounds, after the cooldowns;
- the count is stored (``variant_scales``, with its decision in ``scaling_events``) and every server's
  data plane applies it at its next poll of the endpoints' versions (half a second).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from loopwise.errors import NotFoundError
from loopwise.serving.config import EndpointConfig, Variant
from loopwise.serving.endpoints import load
from loopwise.serving.metrics import Metrics
from loopwise.serving.records import EndpointStatus, ScalingEvent, VariantLoad, VariantScale
from loopwise.serving.router import EndpointRuntime

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)

#: the autoscaler's duty lease: one server decides for all of them
AUTOSCALER = "autoscaler"
#: seconds between two load reports of a server
REPORT_S = 0.5
#: a server whose latest report is older than this has stopped: its load is no longer counted
FRESH_S = 5.0
#: reports older than this (of servers that died) are deleted
FORGET_S = 3600.0

__all__ = [
    "AUTOSCALER",
    "FRESH_S",
    "REPORT_S",
    "autoscale",
    "count_of",
    "counts",
    "decide",
    "reports",
    "scaling_view",
]


def counts(config: EndpointConfig, scales: dict[str, VariantScale]) -> dict[str, int]:
    """Each variant's instance count per server (:func:`count_of`)."""
    return {variant.name: count_of(variant, scales.get(variant.name)) for variant in config.variants}


def count_of(variant: Variant, scale: VariantScale | None) -> int:
    """``variant``'s instance count per server: the configuration's ``instances``, or for an autoscaled
    variant the count the autoscaler set (``scale``; the configuration's until it sets one), within the
    policy's bounds."""
    policy = variant.autoscaling
    if policy is None:
        return variant.instances
    chosen = variant.instances if scale is None else scale.instances
    return max(policy.min_instances, min(policy.max_instances, chosen))


def decide(
    endpoint: str,
    variant: Variant,
    reported: list[VariantLoad],
    scale: VariantScale | None,
    now: datetime,
) -> ScalingEvent | None:
    """The decision for an autoscaled ``variant`` from the servers' fresh ``reported`` loads, the count
    in force (``scale``, None: the configuration's) and the database's clock ``now``; None: no change.
    A scale-out waits ``scale_out_cooldown_s`` after the last scale-out, a scale-in
    ``scale_in_cooldown_s`` after any change."""
    policy = variant.autoscaling
    if policy is None or not reported:
        return None
    current = count_of(variant, scale)
    invocations = sum(r.invocations for r in reported)
    per_instance = invocations / (len(reported) * current)
    desired = policy.desired(current, per_instance)
    if scale is None:
        out_ready = in_ready = True
    else:
        out_ready = (
            scale.scaled_out_at is None
            or (now - scale.scaled_out_at).total_seconds() >= policy.scale_out_cooldown_s
        )
        in_ready = (now - scale.changed_at).total_seconds() >= policy.scale_in_cooldown_s
    if not ((desired > current and out_ready) or (desired < current and in_ready)):
        return None
    return ScalingEvent(
        endpoint=endpoint,
        variant=variant.name,
        at=now,
        instances_before=current,
        instances_after=desired,
        metric=per_instance,
        invocations=invocations,
        replicas=len(reported),
    )


def autoscale(store: Store) -> list[ScalingEvent]:
    """One pass of the autoscaler duty: decide every reported autoscaled variant's count from all the
    servers' fresh reports and record the changes (one transaction, fenced by the duty's lease when
    run under it); returns the decisions."""
    decided = []
    with store.uow() as uow:
        now = uow.scaling.clock()
        uow.scaling.forget_loads(FORGET_S)
        reported: dict[tuple[str, str], list[VariantLoad]] = defaultdict(list)
        for report in uow.scaling.fresh_loads(FRESH_S):
            reported[(report.endpoint, report.variant)].append(report)
        for name in sorted({endpoint for endpoint, _ in reported}):
            try:
                endpoint = load(uow, name)
            except NotFoundError:
                continue  # deleted: its reports age out
            if endpoint.status is not EndpointStatus.IN_SERVICE:
                continue
            scales = uow.scaling.scales(name)
            for variant in endpoint.config.variants:
                event = decide(
                    name, variant, reported.get((name, variant.name), []), scales.get(variant.name), now
                )
                if event is None:
                    continue
                uow.scaling.set_count(event)
                decided.append(event)
                log.info(
                    "endpoint %s: %s scaled %d -> %d instances a server (%.2f invocations per instance "
                    "over %g s on %d servers, target %g)",
                    name,
                    variant.name,
                    event.instances_before,
                    event.instances_after,
                    event.metric,
                    variant.autoscaling.period_s if variant.autoscaling else 0,
                    event.replicas,
                    variant.autoscaling.target if variant.autoscaling else 0,
                )
    return decided


def scaling_view(store: Store, endpoint: str) -> tuple[list[ScalingEvent], list[VariantLoad]]:
    """The autoscaler's decisions for ``endpoint`` (oldest first, whichever server took them) and the
    servers' fresh load reports it decides from."""
    with store.uow() as uow:
        events = uow.scaling.events(endpoint)
        loads = [r for r in uow.scaling.fresh_loads(FRESH_S) if r.endpoint == endpoint]
    return events, loads


def reports(
    runtimes: Iterable[EndpointRuntime], metrics: Metrics, now: float | None = None
) -> list[VariantLoad]:
    """This server's load of each autoscaled variant it runs: invocations over the policy's period
    (this server's own metrics) and live instances."""
    now = time.time() if now is None else now
    found = []
    for runtime in runtimes:
        for variant in runtime.routing.config.variants:
            policy, pool = variant.autoscaling, runtime.pools.get(variant.name)
            if policy is None or pool is None:
                continue
            invocations = metrics.invocations_since(runtime.name, variant.name, now - policy.period_s)
            found.append(
                VariantLoad(runtime.name, variant.name, invocations, policy.period_s, len(pool.live))
            )
    return found
