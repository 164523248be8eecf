"""Rollouts: guarded traffic shifts of endpoints."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.errors import EndpointError, NotFoundError
from loopwise.serving.records import Rollout, RolloutStatus
from loopwise.storage.tables import RolloutRow, utcnow


class RolloutRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def start(
        self, endpoint: str, variant: str, plan: Mapping[str, Any], baseline: dict[str, float]
    ) -> Rollout:
        """Record a running rollout; raises :class:`EndpointError` when one runs on the endpoint already."""
        if self.running(endpoint) is not None:
            raise EndpointError(
                f"a rollout is running on {endpoint}: wait for it "
                f"(`loopwise endpoint rollout-status {endpoint}`)"
            )
        row = RolloutRow(
            endpoint=endpoint,
            variant=variant,
            plan=dict(plan),
            baseline=baseline,
            status=RolloutStatus.RUNNING.value,
            step=0,
        )
        self.session.add(row)
        self.session.flush()
        return _domain(row)

    def running(self, endpoint: str) -> Rollout | None:
        row = self.session.scalar(
            select(RolloutRow).where(
                RolloutRow.endpoint == endpoint, RolloutRow.status == RolloutStatus.RUNNING.value
            )
        )
        return None if row is None else _domain(row)

    def all_running(self) -> builtins.list[Rollout]:
        rows = self.session.scalars(
            select(RolloutRow).where(RolloutRow.status == RolloutStatus.RUNNING.value)
        )
        return [_domain(row) for row in rows]

    def latest(self, endpoint: str) -> Rollout:
        row = self.session.scalar(
            select(RolloutRow).where(RolloutRow.endpoint == endpoint).order_by(RolloutRow.id.desc()).limit(1)
        )
        if row is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} has had no rollout; start one with `loopwise endpoint rollout`"
            )
        return _domain(row)

    def advance(self, rollout_id: int, step: int) -> Rollout:
        row = self._row(rollout_id)
        row.step = step
        row.step_started_at = utcnow()
        self.session.flush()
        return _domain(row)

    def finish(self, rollout_id: int, status: RolloutStatus, reason: str | None = None) -> Rollout:
        row = self._row(rollout_id)
        row.status = status.value
        row.reason = reason
        row.finished_at = utcnow()
        self.session.flush()
        return _domain(row)

    def _row(self, rollout_id: int) -> RolloutRow:
        row = self.session.get(RolloutRow, rollout_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"rollout {rollout_id} not found")
        return row


def _domain(row: RolloutRow) -> Rollout:
    return Rollout(
        id=row.id,
        endpoint=row.endpoint,
        variant=row.variant,
        plan=dict(row.plan),
        baseline={k: float(v) for k, v in row.baseline.items()},
        status=RolloutStatus(row.status),
        step=row.step,
        created_at=row.created_at,
        step_started_at=row.step_started_at,
        reason=row.reason,
        finished_at=row.finished_at,
    )
