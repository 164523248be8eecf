"""``endpoints.state_version``: raised by every write of an endpoint's live state beside its
configuration (the autoscaler's instance counts, a bandit's evidence), in the same transaction, so that
each server's poll of the endpoints' versions sees the change (``serving.replica``)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from loopwise.storage.tables import EndpointRow


def raise_state_version(session: Session, *, endpoint_id: int | None = None, name: str | None = None) -> None:
    """One more on the endpoint's ``state_version`` (by id or name; an unknown one changes nothing)."""
    statement = update(EndpointRow).values(state_version=EndpointRow.state_version + 1)
    if endpoint_id is not None:
        statement = statement.where(EndpointRow.id == endpoint_id)
    else:
        statement = statement.where(EndpointRow.name == name)
    session.execute(statement)
