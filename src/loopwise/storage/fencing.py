"""The fence in force: the lease (duty and token) whose holder is doing the work on this thread.

A background duty's pass runs inside :func:`fenced`; every unit of work it opens then checks, in the
same transaction and just before the commit, that the duty's lease still carries the token
(:meth:`loopwise.storage.repositories.leases.LeaseRepository.check`), and rolls the work back with
:class:`~loopwise.errors.LeaseLostError` when another server took the lease over meanwhile. The fence
is a context variable: ``asyncio.to_thread`` carries it into the thread it starts, and a plain
``threading.Thread`` does not (a pipeline run started by the trigger duty is a job of its own, not a
write of the duty).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Fence:
    """A duty's lease as its holder got it: the writes it makes are valid while the token is current."""

    duty: str
    token: int


_CURRENT: ContextVar[Fence | None] = ContextVar("loopwise_fence", default=None)


@contextmanager
def fenced(fence: Fence) -> Iterator[None]:
    """Check ``fence`` in every unit of work committed inside the ``with`` block (on this thread, and
    in the threads ``asyncio.to_thread`` starts from it)."""
    reset = _CURRENT.set(fence)
    try:
        yield
    finally:
        _CURRENT.reset(reset)


def current_fence() -> Fence | None:
    """The fence in force here, or None outside any duty."""
    return _CURRENT.get()


__all__ = ["Fence", "current_fence", "fenced"]
