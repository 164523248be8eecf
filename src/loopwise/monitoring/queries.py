"""Read models of monitoring for the API and the console: alerts and schedules, read in one place so
that adapters never open a unit of work themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopwise.monitoring.records import Alert, Schedule
    from loopwise.storage import Store


def alerts(
    store: Store, *, endpoint: str | None = None, status: str | None = None, limit: int = 100
) -> list[Alert]:
    """Monitoring's alerts, newest first (of ``endpoint``, in ``status``; at most ``limit``)."""
    with store.uow() as uow:
        return uow.monitoring.alerts(endpoint=endpoint, status=status, limit=limit)


def schedules(store: Store) -> list[Schedule]:
    """Every monitoring schedule."""
    with store.uow() as uow:
        return uow.monitoring.schedules()


def alerts_and_schedules(
    store: Store, *, endpoint: str | None = None, status: str | None = None
) -> tuple[list[Alert], list[Schedule]]:
    """The newest 100 alerts (as :func:`alerts`) and every schedule, in one transaction: the console's
    alerts page."""
    with store.uow() as uow:
        return uow.monitoring.alerts(endpoint=endpoint, status=status), uow.monitoring.schedules()
