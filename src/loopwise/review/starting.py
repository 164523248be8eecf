"""Where human loops are written: in one transaction, the flow's row locked, within its budget
(:mod:`loopwise.review.budget`). Both the loop runtime (``review.service.start_loop``) and the live path
(``review.activation``: an endpoint's predictions) start loops here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopwise.review import budget
from loopwise.review.events import record_event

if TYPE_CHECKING:
    from loopwise.review.records import Flow
    from loopwise.storage import Store


def start_predicted(store: Store, flow: Flow, loops: list[dict[str, Any]]) -> list[str]:
    """Loops that an endpoint's predictions started (names derived from their inference ids, so a retry
    never doubles one), within the flow's budget: one the budget refuses is recorded Stopped with its
    reason (its name went back with the prediction). Returns the names made now."""
    with store.uow() as uow:
        made, _ = start_within_budget(uow, flow, loops, datetime.now(UTC), record_refused=True)
    return made


def start_within_budget(
    uow: Any, flow: Flow, loops: list[dict[str, Any]], now: datetime, *, record_refused: bool
) -> tuple[list[str], list[tuple[Any, str]]]:
    """Start ``loops`` in this transaction, the flow's row locked, within its budget (see
    :mod:`loopwise.review.budget`); returns the names made and the loops refused with their reasons."""
    if uow.review.lock_flow(flow.id) != "Active":
        return [], []  # a deleted flow starts no loop (an endpoint may still name it for a moment)
    taken = uow.review.existing([loop["name"] for loop in loops])
    fresh = list({loop["name"]: loop for loop in loops if loop["name"] not in taken}.values())
    if not budget.bounded(flow) or not fresh:
        return uow.review.start_loops(flow, fresh, now), []
    plan = budget.plan(
        flow,
        fresh,
        open_loops=uow.review.open_count(flow.id),
        started_last_hour=uow.review.started_since(flow.id, now - timedelta(hours=1)),
        replaceable=uow.review.replaceable(flow.id, len(fresh)) if flow.max_open_loops else [],
    )
    starting, refused = list(plan.start), list(plan.refuse)
    for victim, successor in plan.replace:
        reason = budget.replaced_reason(flow, victim, successor)
        if uow.review.release(victim.item_id, now) and uow.review.end(
            victim.id, "Stopped", now, reason=reason
        ):
            record_event(uow, victim, "Stopped", now)
            starting.append(successor)
        else:  # a worker claimed it meanwhile: it stays, and the newcomer waits its turn
            refused.append(
                (successor, f"BudgetFull: flow {flow.name} has its {flow.max_open_loops} open loops")
            )
    made = uow.review.start_loops(flow, starting, now)
    if record_refused:
        for reason in dict.fromkeys(r for _, r in refused):
            group = [loop for loop, r in refused if r == reason]
            made += uow.review.start_loops(flow, group, now, refused=reason)
    return made, refused
