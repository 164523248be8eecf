"""Settling human loops: a loop whose item has all its answers is completed (consolidated, output.json
written, ground truth recorded for its inference), one past its lifetime fails with reason Expired.
Each status change is recorded for the flow's webhook (:mod:`loopwise.review.events`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loopwise.review.events import record_event
from loopwise.review.records import HumanLoop

if TYPE_CHECKING:
    from loopwise.storage import Store


def settle(store: Store, *, now: datetime | None = None, only: HumanLoop | None = None) -> dict[str, int]:
    """Complete the loops whose items have all their answers and fail those past their lifetime (or just
    ``only``); returns how many of each. Safe to run from several servers: a loop ends once."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        if only is not None:
            answered = [only] if only.item_id is not None and uow.review.item_complete(only.item_id) else []
            expired = [only] if not answered and only.expires_at <= now else []
        else:
            answered, expired = uow.review.answered(), uow.review.expired(now)
    completed = sum(_complete(store, loop, now) for loop in answered)
    failed = 0
    for loop in expired:
        with store.uow() as uow:
            if uow.review.end(
                loop.id, "Failed", now, reason="Expired: no answer within the task availability lifetime"
            ):
                uow.review.withdraw(loop.item_id, now)
                record_event(uow, loop, "Failed", now)
                failed += 1
    return {"completed": completed, "failed": failed}


def _complete(store: Store, loop: HumanLoop, now: datetime) -> bool:
    """Consolidate the loop's answers, write output.json, and mark it Completed with its ground truth
    recorded for its inference, in one transaction (the file is written first: a crash leaves the loop
    in progress, and the next settle writes the same file again)."""
    from loopwise.labeling.consolidation import Vote, consolidate
    from loopwise.serving.records import Feedback

    with store.uow() as uow:
        flow = uow.review.flow(loop.flow)
        answers = uow.review.answers(loop.item_id) if loop.item_id is not None else []
    assert flow is not None
    if not answers:
        return False
    votes = [Vote(0, a["email"], a["label"]) for a in answers]
    consolidated = consolidate(votes, flow.labels, "majority")
    label, confidence = consolidated.labels[0], consolidated.confidence[0]
    from loopwise.review.output import output_document

    document = output_document(flow, loop, answers, label, confidence)
    # committed before the loop says Completed; two settles at once stage apart and the first commit
    # stays (both hold the same answers)
    data = json.dumps(document, indent=2, default=str).encode()
    output_uri = store.artifacts.put_bytes(f"review/{flow.name}/{loop.name}", "output.json", data)
    with store.uow() as uow:
        if not uow.review.end(loop.id, "Completed", now, output_uri=output_uri):
            return False
        # ground truth for the inference (monitoring's model quality and the A/B report join on it);
        # an inference of several texts gets it from feedback, which names a label for each text
        if loop.inference_id and loop.endpoint and (loop.activation or {}).get("texts", 1) == 1:
            uow.feedback.put(loop.endpoint, [Feedback(loop.inference_id, (label,))])
        record_event(uow, loop, "Completed", now)
    return True
