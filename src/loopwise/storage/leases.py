"""Background duties run once across the servers on one database: each duty has a lease, and only the
server process that holds it runs the duty.

A lease (a row of ``duty_leases``) names its holder and carries a fencing token; it lasts ``ttl_s``
seconds of the database's clock and its holder renews it every ``renew_s`` seconds. A server that dies
stops renewing, and another takes the lease over once it expires: within ``ttl_s + renew_s`` (8 s with
the defaults). The takeover raises the token, and every write a duty's pass commits checks its token
(:mod:`loopwise.storage.fencing`), so a holder that was only slow, not dead, cannot write over its
successor. :class:`LeaseKeeper` holds the leases of one server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from loopwise.storage.fencing import Fence, fenced

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds a lease lasts from its last renewal
TTL_S = 6.0
#: seconds between two renewals (and between two attempts to take a lease someone else holds)
RENEW_S = 2.0


def new_holder() -> str:
    """A holder id for one server: ``host:pid:uuid`` (the uuid tells a restarted process with a
    recycled pid from the one before it, and two apps served by one process, as tests do, apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaseKeeper:
    """Takes and renews the leases of ``duties`` for ``holder`` (a :func:`new_holder` unless told)
    while started; :meth:`fence` says whether a duty may run here now.

    A lease counts as held until ``ttl_s`` after the start of the renewal that last got it, by this
    process's monotonic clock: the database's expiry is later than that, so the keeper lets go of a duty
    before any other server may take it, even when the database is out of reach. :meth:`fence` and
    :meth:`held` may be called from any thread; :meth:`renew` runs in one thread at a time.
    """

    def __init__(
        self,
        store: Store,
        duties: Sequence[str],
        *,
        holder: str | None = None,
        ttl_s: float = TTL_S,
        renew_s: float = RENEW_S,
    ) -> None:
        if not 0 < renew_s < ttl_s:
            raise ValueError(f"renew_s ({renew_s}) must be above 0 and below ttl_s ({ttl_s})")
        self.store = store
        self.duties = tuple(duties)
        self.holder = holder or new_holder()
        self.ttl_s, self.renew_s = ttl_s, renew_s
        #: duty -> (token, monotonic time until which it counts as held)
        self._held: dict[str, tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def renew(self) -> None:
        """Take or renew every duty's lease now (blocking: call it off the event loop). A duty whose
        lease another holder has is dropped; one the database could not be asked about stays held
        until its time runs out."""
        for duty in self.duties:
            started = time.monotonic()
            try:
                with self.store.uow() as uow:
                    token = uow.leases.acquire(duty, self.holder, self.ttl_s)
            except Exception:
                log.exception("the lease of duty %s could not be renewed; trying again", duty)
                continue
            if token is None:
                self._held.pop(duty, None)
                continue
            if duty not in self._held:
                log.info("duty %s: taken (token %d, holder %s)", duty, token, self.holder)
            self._held[duty] = (token, started + self.ttl_s)

    def fence(self, duty: str) -> Fence | None:
        """The duty's fence while this process holds its lease, else None."""
        held = self._held.get(duty)
        if held is None or time.monotonic() >= held[1]:
            return None
        return Fence(duty, held[0])

    def held(self) -> list[str]:
        """The duties this process holds now, sorted."""
        return sorted(duty for duty in self.duties if self.fence(duty) is not None)

    def lost(self, duty: str) -> None:
        """Forget the duty's lease (a fenced write found it stale); the next renewal may take it again."""
        if self._held.pop(duty, None) is not None:
            log.info("duty %s: lease lost to another server", duty)

    def release(self) -> None:
        """Give every held lease up (blocking), so other servers take the duties at once."""
        for duty in list(self._held):
            try:
                with self.store.uow() as uow:
                    uow.leases.release(duty, self.holder)
            except Exception:
                log.exception("the lease of duty %s could not be released; it expires by itself", duty)
            self._held.pop(duty, None)

    def start(self) -> None:
        """Renew every ``renew_s`` seconds in a task of the running event loop."""
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop renewing and release what is held."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.release)

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.renew)
            await asyncio.sleep(self.renew_s)


def run_fenced(store: Store, fence: Fence, step: Callable[[Store], T]) -> T:
    """``step(store)`` as a pass of the fence's duty: the lease is checked first, and again by every unit
    of work the step commits (:func:`~loopwise.storage.fencing.fenced`); raises
    :class:`~loopwise.errors.LeaseLostError` when another server holds it now."""
    with store.uow() as uow:
        uow.leases.check(fence.duty, fence.token)
    with fenced(fence):
        return step(store)


__all__ = ["RENEW_S", "TTL_S", "LeaseKeeper", "new_holder", "run_fenced"]
