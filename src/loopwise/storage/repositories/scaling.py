"""The autoscaler's shared view over several servers: each server's load reports (``variant_loads``),
the instance count the autoscaler set per variant (``variant_scales``, with ``endpoints.state_version``
raised at each change so that the servers notice it by polling one row an endpoint) and its decisions
(``scaling_events``). Times are the database's clock (:mod:`._clock`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.serving.records import ScalingEvent, VariantLoad, VariantScale
from loopwise.storage.repositories._clock import database_now, later_expression, now_expression
from loopwise.storage.repositories._state import raise_state_version
from loopwise.storage.tables import (
    EndpointRow,
    ScalingEventRow,
    VariantLoadRow,
    VariantScaleRow,
)

#: how long the decisions are kept
EVENTS_KEPT = timedelta(days=30)


class ScalingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def clock(self) -> datetime:
        """The database's clock now."""
        return database_now(self.session)

    # --- load reports ----------------------------------------------------------------------------

    def publish(self, replica: str, loads: Sequence[VariantLoad]) -> None:
        """Replace ``replica``'s reports with ``loads``, stamped with the database's clock (a variant it
        no longer reports loses its row)."""
        kept = [(load.endpoint, load.variant) for load in loads]
        stale = delete(VariantLoadRow).where(VariantLoadRow.replica == replica)
        if kept:
            stale = stale.where(tuple_(VariantLoadRow.endpoint, VariantLoadRow.variant).not_in(kept))
        self.session.execute(stale)
        if not loads:
            return
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        insert = dialect.insert(VariantLoadRow)
        statement = insert.on_conflict_do_update(
            index_elements=["replica", "endpoint", "variant"],
            set_={
                "invocations": insert.excluded.invocations,
                "period_s": insert.excluded.period_s,
                "instances": insert.excluded.instances,
                "reported_at": insert.excluded.reported_at,
            },
        )
        now = now_expression(self.session)
        for load in loads:  # a handful of rows a server: one statement each
            self.session.execute(
                statement.values(
                    replica=replica,
                    endpoint=load.endpoint,
                    variant=load.variant,
                    invocations=load.invocations,
                    period_s=load.period_s,
                    instances=load.instances,
                    reported_at=now,
                )
            )

    def forget_loads(self, older_than_s: float) -> None:
        """Delete the reports older than ``older_than_s`` seconds (servers that died long ago)."""
        self.session.execute(
            delete(VariantLoadRow).where(
                VariantLoadRow.reported_at < later_expression(self.session, -older_than_s)
            )
        )

    def fresh_loads(self, within_s: float) -> list[VariantLoad]:
        """The reports of the last ``within_s`` seconds (a server that stopped reporting is left out)."""
        rows = self.session.scalars(
            select(VariantLoadRow)
            .where(VariantLoadRow.reported_at >= later_expression(self.session, -within_s))
            .order_by(VariantLoadRow.endpoint, VariantLoadRow.variant, VariantLoadRow.replica)
        )
        return [
            VariantLoad(
                endpoint=r.endpoint,
                variant=r.variant,
                invocations=r.invocations,
                period_s=r.period_s,
                instances=r.instances,
                replica=r.replica,
                reported_at=r.reported_at,
            )
            for r in rows
        ]

    # --- instance counts -------------------------------------------------------------------------

    def scales(self, endpoint: str) -> dict[str, VariantScale]:
        """The instance counts the autoscaler set for the endpoint's variants, by variant."""
        rows = self.session.scalars(
            select(VariantScaleRow).where(VariantScaleRow.endpoint_id == self._endpoint_id(endpoint))
        )
        return {
            r.variant: VariantScale(endpoint, r.variant, r.instances, r.changed_at, r.scaled_out_at)
            for r in rows
        }

    def set_count(self, event: ScalingEvent) -> None:
        """Put ``event``'s count in force for its variant on every server and record the decision; its
        time starts the cooldowns (a scale-out's also the scale-out cooldown)."""
        endpoint_id = self._endpoint_id(event.endpoint, lock=True)
        row = self.session.get(VariantScaleRow, (endpoint_id, event.variant))
        if row is None:
            row = VariantScaleRow(endpoint_id=endpoint_id, variant=event.variant)
            self.session.add(row)
        row.instances, row.changed_at = event.instances_after, event.at
        if event.instances_after > event.instances_before:
            row.scaled_out_at = event.at
        self.session.add(
            ScalingEventRow(
                endpoint_id=endpoint_id,
                variant=event.variant,
                at=event.at,
                instances_before=event.instances_before,
                instances_after=event.instances_after,
                metric=event.metric,
                invocations=event.invocations,
                replicas=event.replicas,
            )
        )
        self.session.execute(
            delete(ScalingEventRow).where(
                ScalingEventRow.endpoint_id == endpoint_id, ScalingEventRow.at < event.at - EVENTS_KEPT
            )
        )
        self._raise_version(endpoint_id)

    def forget(self, endpoint: str, variant: str) -> None:
        """Drop the count set for ``variant`` (its policy was removed, or the variant): the
        configuration's ``instances`` count again, and a policy attached later starts from them."""
        endpoint_id = self._endpoint_id(endpoint, lock=True)
        removed = self.session.execute(
            delete(VariantScaleRow).where(
                VariantScaleRow.endpoint_id == endpoint_id, VariantScaleRow.variant == variant
            )
        )
        if removed.rowcount:  # type: ignore[attr-defined]
            self._raise_version(endpoint_id)

    def events(self, endpoint: str, limit: int = 1000) -> builtins.list[ScalingEvent]:
        """The endpoint's latest ``limit`` decisions, oldest first."""
        rows = self.session.scalars(
            select(ScalingEventRow)
            .where(ScalingEventRow.endpoint_id == self._endpoint_id(endpoint))
            .order_by(ScalingEventRow.id.desc())
            .limit(limit)
        ).all()
        return [
            ScalingEvent(
                endpoint=endpoint,
                variant=r.variant,
                at=r.at,
                instances_before=r.instances_before,
                instances_after=r.instances_after,
                metric=r.metric,
                invocations=r.invocations,
                replicas=r.replicas,
            )
            for r in reversed(rows)
        ]

    def _endpoint_id(self, name: str, *, lock: bool = False) -> int:
        query = select(EndpointRow.id).where(EndpointRow.name == name)
        found = self.session.scalar(query.with_for_update() if lock else query)
        if found is None:
            raise NotFoundError(f"endpoint {name!r} not found; see `loopwise endpoint list`")
        return found

    def _raise_version(self, endpoint_id: int) -> None:
        raise_state_version(self.session, endpoint_id=endpoint_id)
        self.session.flush()
