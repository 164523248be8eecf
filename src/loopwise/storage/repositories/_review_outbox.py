"""Human loops' status changes in the webhook outbox (part of the review repository): the review service
queues them through ``loopwise.webhooks`` in the transaction that changes the loop; here a flow's new
secret re-signs what waits, and a loop's deliveries are read back."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import String, literal, select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.storage.repositories.webhooks import resign_pending, subject_deliveries
from loopwise.storage.tables import HumanLoopRow, ReviewFlowRow, WebhookDeliveryRow
from loopwise.webhooks.records import LOOP_SUBJECT


class LoopEventOutbox:
    session: Session

    def set_webhook_secret(self, flow_name: str, secret: str) -> None:
        """A flow's new webhook secret, for its queued events too."""
        row = self.session.scalar(select(ReviewFlowRow).where(ReviewFlowRow.name == flow_name))
        if row is None:
            raise NotFoundError(f"no flow definition {flow_name!r}; see `loopwise review flow list`")
        row.webhook_secret = secret
        loops = select(literal(LOOP_SUBJECT, String) + HumanLoopRow.name).where(
            HumanLoopRow.flow_id == row.id
        )
        resign_pending(self.session, secret, WebhookDeliveryRow.subject.in_(loops))

    def events(self, loop_name: str) -> builtins.list[dict[str, Any]]:
        """The loop's queued status changes, oldest first, delivered or not."""
        return subject_deliveries(self.session, LOOP_SUBJECT + loop_name)
