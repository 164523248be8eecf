"""This server among the others of one database: what its data plane reads of the endpoints at each
poll, and the load it reports for the autoscaler (:mod:`loopwise.serving.autoscaler`).

Both are off the request path: a poll reads one small row an endpoint (its versions) and loads an
endpoint's configuration only when a version moved; a report is one short transaction every half
second, and none at all while this server runs no autoscaled variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from loopwise.serving.autoscaler import REPORT_S, counts, reports
from loopwise.serving.endpoints import Endpoint, load
from loopwise.serving.metrics import Metrics
from loopwise.serving.records import EndpointStatus, EndpointVersion, VariantLoad
from loopwise.serving.router import EndpointRuntime

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)


class Replica:
    """The database side of one server's data plane; ``name`` tells its load reports from the other
    servers' (the leases' holder id). Its blocking methods run off the event loop."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self._reported = False

    def versions(self) -> list[EndpointVersion]:
        """Every endpoint's id, status and versions (one query)."""
        with self.store.uow() as uow:
            return uow.endpoints.versions()

    def configuration(self, name: str) -> tuple[Endpoint, dict[str, int]]:
        """The endpoint as stored now, and each variant's instance count on every server
        (:func:`~loopwise.serving.autoscaler.counts`)."""
        with self.store.uow() as uow:
            endpoint = load(uow, name)
            return endpoint, counts(endpoint.config, uow.scaling.scales(name))

    def arms(self, endpoint: str) -> dict[str, tuple[float, int]]:
        """A bandit endpoint's evidence per variant, as stored."""
        with self.store.uow() as uow:
            return uow.bandits.arms(endpoint)

    def add_evidence(self, endpoint: str, evidence: dict[str, tuple[float, int]]) -> None:
        with self.store.uow() as uow:
            uow.bandits.add(endpoint, evidence)

    async def report(self, runtimes: Callable[[], Iterable[EndpointRuntime]], metrics: Metrics) -> None:
        """Report this server's load of the autoscaled variants it runs every REPORT_S seconds, until
        cancelled; a report that fails is logged and the next one tried."""
        while True:
            await asyncio.sleep(REPORT_S)
            found = reports(runtimes(), metrics)
            if not found and not self._reported:
                continue  # nothing autoscaled here: no write at all
            try:
                await asyncio.to_thread(self._publish, found)
            except Exception:
                log.exception("could not report this server's load; trying again")

    async def withdraw(self) -> None:
        """Take this server's reports back (it stops): its load no longer counts, at once."""
        if self._reported:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._publish, [])

    def _publish(self, found: list[VariantLoad]) -> None:
        with self.store.uow() as uow:
            uow.scaling.publish(self.name, found)
        self._reported = bool(found)


def changes(
    applied: dict[str, EndpointVersion], versions: list[EndpointVersion]
) -> tuple[list[str], list[EndpointVersion], list[EndpointVersion]]:
    """What a poll's ``versions`` change against the ``applied`` ones: the running endpoints to stop
    (no longer in service, deleted, or deleted and made anew under the same name), those whose
    configuration to apply (new ones included), and those whose live state alone changed (instance
    counts, bandit evidence)."""
    wanted = {v.name: v for v in versions if v.status is EndpointStatus.IN_SERVICE}
    stopped = [n for n, v in applied.items() if n not in wanted or wanted[n].id != v.id]
    configured, restated = [], []
    for name, seen in wanted.items():
        before = applied.get(name)
        if before is None or name in stopped or before.config_version != seen.config_version:
            configured.append(seen)
        elif before.state_version != seen.state_version:
            restated.append(seen)
    return stopped, configured, restated


__all__ = ["Replica", "changes"]
