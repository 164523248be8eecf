"""The evidence of multi-armed bandit endpoints."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.storage.repositories._state import raise_state_version
from loopwise.storage.tables import BanditArmRow, utcnow


class BanditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, endpoint: str, evidence: Mapping[str, tuple[float, int]]) -> None:
        """Add ``(rewards, pulls)`` to each variant's arm (rows are locked while they change) and raise the
        endpoint's ``state_version``."""
        rows = {
            row.variant: row
            for row in self.session.scalars(
                select(BanditArmRow)
                .where(BanditArmRow.endpoint == endpoint, BanditArmRow.variant.in_(list(evidence)))
                .with_for_update()
            )
        }
        for variant, (rewards, pulls) in evidence.items():
            row = rows.get(variant)
            if row is None:
                row = BanditArmRow(endpoint=endpoint, variant=variant, rewards=0.0, pulls=0)
                self.session.add(row)
            row.rewards += rewards
            row.pulls += pulls
            row.updated_at = utcnow()
        raise_state_version(self.session, name=endpoint)  # every server's router re-reads the arms
        self.session.flush()

    def arms(self, endpoint: str) -> dict[str, tuple[float, int]]:
        """Each variant's ``(rewards, pulls)``."""
        rows = self.session.scalars(select(BanditArmRow).where(BanditArmRow.endpoint == endpoint))
        return {row.variant: (row.rewards, row.pulls) for row in rows}
