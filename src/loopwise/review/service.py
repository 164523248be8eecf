"""Human review's services: the human loop runtime (start, describe, list, stop, delete), and deleting
a flow. Flow definitions are made in :mod:`loopwise.review.flows`, loops settled (completed or expired)
in :mod:`loopwise.review.settling`; their public names are importable from here too, as every adapter
imports them. A flow's budget (``budget``) is kept where loops are written
(:mod:`loopwise.review.starting`, for ``start_loop`` and an endpoint's predictions alike).

The server settles loops every second; describing a loop settles it first, so a caller polling
describe sees Completed as soon as the last answer is in. Each status change is offered to the flow's
webhook through an outbox (at least once, retried with backoff), signed (:mod:`loopwise.webhooks`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopwise.errors import HumanLoopConflictError, NotFoundError, ReviewError
from loopwise.review.events import LOOP_EVENT as LOOP_EVENT
from loopwise.review.events import deliver_events as deliver_events
from loopwise.review.events import record_event
from loopwise.review.flows import DEFAULT_LIFETIME_S as DEFAULT_LIFETIME_S
from loopwise.review.flows import LIFETIME_S as LIFETIME_S
from loopwise.review.flows import all_loops as all_loops
from loopwise.review.flows import create_flow as create_flow
from loopwise.review.flows import find_flow as find_flow
from loopwise.review.flows import list_flows as list_flows
from loopwise.review.flows import rotate_webhook_secret as rotate_webhook_secret
from loopwise.review.flows import sees as sees
from loopwise.review.loops import check_input, check_name, content_hash
from loopwise.review.records import STATUSES, Flow, HumanLoop
from loopwise.review.settling import settle as settle
from loopwise.review.starting import start_predicted as start_predicted
from loopwise.review.starting import start_within_budget

if TYPE_CHECKING:
    from collections.abc import Iterable

    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

MAX_RESULTS = 100


def loop_counts(store: Store, flows: Iterable[Flow]) -> dict[str, dict[str, int]]:
    """Each flow's human loops counted by status, by flow name (read in one unit of work)."""
    with store.uow() as uow:
        return {flow.name: uow.review.count(flow.id) for flow in flows}


def delete_flow(store: Store, name: str, worker: Worker | None = None) -> Flow:
    """The flow takes no new loops; its loops in progress are stopped; all stay readable."""
    flow = find_flow(store, name, worker)
    with store.uow() as uow:  # first: no loop starts after this
        uow.review.set_flow_status(flow.id, "Deleted")
    for loop in all_loops(store, flow, status="InProgress"):
        stop_loop(store, loop.name)
    return find_flow(store, name)


def start_loop(
    store: Store, name: str, flow_name: str, content: Any, worker: Worker | None = None
) -> tuple[HumanLoop, bool]:
    """Start loop ``name`` of the flow for ``content`` (``{"taskObject": text, "initialValue": label}``).
    Starting the same name with the same content again returns the loop (``False``: not new); with
    other content it is refused (:class:`HumanLoopConflictError`), as it is when the flow's budget is
    full (a loop asked for by name never replaces one)."""
    check_name(name)
    flow = find_flow(store, flow_name, worker)
    if flow.status != "Active":
        raise HumanLoopConflictError(f"flow definition {flow.name} is {flow.status}: it starts no loops")
    checked = check_input(flow, content)
    digest = content_hash(checked)
    now = datetime.now(UTC)
    with store.uow() as uow:
        made, refused = start_within_budget(
            uow, flow, [{"name": name, "input": checked, "content_hash": digest}], now, record_refused=False
        )
        loop = uow.review.loop(name)
    if refused:
        raise HumanLoopConflictError(
            f"human loop {name} not started: {refused[0][1]}; stop an open loop or try again later"
        )
    if loop is None:
        raise HumanLoopConflictError(f"flow definition {flow.name} was deleted: it starts no loops")
    if not made and (loop.content_hash != digest or loop.flow != flow.name):
        raise HumanLoopConflictError(
            f"a human loop named {name!r} exists already with other input or another flow: "
            "pick another name (the same name with the same input returns that loop)"
        )
    return loop, bool(made)


def describe_loop(store: Store, name: str, worker: Worker | None = None) -> HumanLoop:
    loop = _loop(store, name, worker)
    if loop.status == "InProgress":
        settle(store, only=loop)
        loop = _loop(store, name)
    return loop


def list_loops(
    store: Store,
    *,
    flow: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    inference_id: str | None = None,
    descending: bool = False,
    max_results: int = MAX_RESULTS,
    next_token: str | None = None,
    worker: Worker | None = None,
) -> tuple[list[HumanLoop], str | None]:
    """A page of loops and the token of the next page (None: the last page); only the loops of the
    flows ``worker`` may see."""
    if status is not None and status not in STATUSES:
        raise ReviewError(f"status {status!r}: one of {', '.join(STATUSES)}")
    if not 1 <= max_results <= 1000:
        raise ReviewError(f"max results: 1 to 1000, got {max_results}")
    after_id = _read_token(next_token)
    flow_id = find_flow(store, flow, worker).id if flow is not None else None
    teams = None if worker is None or worker.role == "admin" else set(worker.teams)
    with store.uow() as uow:
        page = uow.review.loops(
            flow_id=flow_id,
            status=status,
            created_after=created_after,
            created_before=created_before,
            inference_id=inference_id,
            after_id=after_id,
            descending=descending,
            limit=max_results + 1,
            teams=teams,
        )
    more = len(page) > max_results
    page = page[:max_results]
    return page, (_token(page[-1].id) if more else None)


def stop_loop(store: Store, name: str, worker: Worker | None = None) -> HumanLoop:
    """Stop a loop in progress: Stopped, its item out of the queue, a worker's hold on it withdrawn (a
    later answer is refused, the loop never completes). Stopping an ended loop changes nothing."""
    loop = _loop(store, name, worker)
    now = datetime.now(UTC)
    with store.uow() as uow:
        if uow.review.end(loop.id, "Stopped", now):
            uow.review.withdraw(loop.item_id, now)
            record_event(uow, loop, "Stopped", now)
    return _loop(store, name)


def delete_loop(store: Store, name: str, worker: Worker | None = None) -> None:
    """Delete an ended loop (stop one in progress first); its output.json stays."""
    loop = _loop(store, name, worker)
    if loop.status in ("InProgress", "Stopping"):
        raise HumanLoopConflictError(
            f"human loop {name} is {loop.status}: stop it first (`loopwise review loop stop`)"
        )
    with store.uow() as uow:
        uow.review.delete_loop(loop)


def _loop(store: Store, name: str, worker: Worker | None = None) -> HumanLoop:
    """The loop, when ``worker`` may see its flow (the same 'not found' otherwise)."""
    with store.uow() as uow:
        loop = uow.review.loop(name)
        flow = uow.review.flow(loop.flow) if loop is not None and worker is not None else None
    if loop is None or (flow is not None and not sees(worker, flow.team)):
        raise NotFoundError(f"no human loop {name!r}; see `loopwise review loop list`")
    return loop


def _token(last_id: int) -> str:
    return f"after-{last_id}"


def _read_token(token: str | None) -> int | None:
    if not token:
        return None
    head = token.removeprefix("after-")
    if not (head.isascii() and head.isdigit()) or len(head) > 19 or int(head) >= 2**63:
        raise ReviewError(f"NextToken {token[:80]!r} is not one this server gave")
    return int(head)
