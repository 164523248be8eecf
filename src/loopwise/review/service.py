"""Human review's services: flow definitions, the human loop runtime (start, describe, list, stop,
delete), and settling loops: a loop whose item has its answers is completed (consolidated, output.json
written, ground truth recorded for its inference), one past its lifetime fails with reason Expired.
A flow's budget (``budget``) is kept where loops are written (``start_predicted``, ``start_loop``).

The server settles loops every second; describing a loop settles it first, so a caller polling
describe sees Completed as soon as the last answer is in. Each status change is offered to the flow's
webhook through an outbox (at least once, retried with backoff), signed (:mod:`loopwise.webhooks`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopwise import webhooks
from loopwise.errors import HumanLoopConflictError, NotFoundError, ReviewError, StorageError
from loopwise.labeling.jobs import MAX_WORKERS_PER_ITEM, TASK_TIME_LIMIT_S, check_categories
from loopwise.labeling.records import Category
from loopwise.review import budget
from loopwise.review.conditions import parse_condition
from loopwise.review.events import LOOP_EVENT as LOOP_EVENT
from loopwise.review.events import deliver_events as deliver_events
from loopwise.review.events import record_event
from loopwise.review.loops import check_input, check_name, content_hash
from loopwise.review.records import STATUSES, Flow, HumanLoop

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

#: Augmented AI's bounds for a task's availability lifetime: 60 seconds to 12 days (its default: 1 day)
LIFETIME_S = (60, 12 * 24 * 3600)
DEFAULT_LIFETIME_S = 24 * 3600
MAX_RESULTS = 100
#: the event (``X-Loopwise-Event``) and body ``type`` of a loop's status change


def create_flow(
    store: Store,
    name: str,
    *,
    team: str,
    categories: list[Category],
    title: str | None = None,
    short_instructions: str = "",
    full_instructions: str = "",
    answer_key: str = "label",
    task_count: int = 1,
    task_time_limit_s: int = 300,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    conditions: Any = None,
    webhook: str | None = None,
    max_open_loops: int | None = None,
    max_loops_per_hour: int | None = None,
    max_loops_per_invocation: int = budget.DEFAULT_PER_INVOCATION,
) -> Flow:
    """A flow definition: its team works its loops in the labeling UI; ``conditions`` (see
    :mod:`loopwise.review.conditions`) say which of an attached endpoint's predictions start one; the
    budget (:mod:`loopwise.review.budget`) bounds its open loops, its new loops an hour (None: no
    bound) and the loops one invocation starts. With a ``webhook``, the flow gets a signing secret
    (``Flow.webhook_secret``: show it once, to its maker)."""
    check_name(name, "flow definition")
    for field, value, (least, most) in (
        ("max_open_loops", max_open_loops, budget.MAX_OPEN),
        ("max_loops_per_hour", max_loops_per_hour, budget.MAX_PER_HOUR),
        ("max_loops_per_invocation", max_loops_per_invocation, budget.MAX_PER_INVOCATION),
    ):
        if value is not None and (isinstance(value, bool) or not least <= value <= most):
            raise ReviewError(f"{field}: a whole number from {least:,} to {most:,}, got {value!r}")
    check_categories(categories)
    labels = [c.label for c in categories]
    condition = parse_condition(conditions, labels)
    if not 1 <= task_count <= MAX_WORKERS_PER_ITEM:
        raise ReviewError(f"task count (workers per loop): 1 to {MAX_WORKERS_PER_ITEM}, got {task_count}")
    low, high = TASK_TIME_LIMIT_S
    if not low <= task_time_limit_s <= high:
        raise ReviewError(f"task time limit: {low} to {high} seconds, got {task_time_limit_s}")
    if not LIFETIME_S[0] <= lifetime_s <= LIFETIME_S[1]:
        raise ReviewError(
            f"task availability lifetime: {LIFETIME_S[0]} to {LIFETIME_S[1]} seconds, got {lifetime_s}"
        )
    if not answer_key.strip() or len(answer_key) > 63:
        raise ReviewError(f"answer key {answer_key!r}: 1 to 63 characters")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ReviewError(f"webhook {webhook!r}: an http:// or https:// URL")
    try:
        with store.uow() as uow:
            if uow.review.flow(name) is not None:
                raise ReviewError(f"a flow definition {name!r} exists already: pick another name")
            found = uow.workforce.find_team(team)
            if found is None:
                raise NotFoundError(f"no team {team!r}; make it with `loopwise workforce team create {team}`")
            uow.review.add_flow(
                name=name,
                job={
                    "team_id": found.id,
                    "created_by": None,
                    "categories": categories,
                    "title": title or name,
                    "short_instructions": short_instructions,
                    "full_instructions": full_instructions,
                    "workers_per_item": task_count,
                    "task_time_limit_s": task_time_limit_s,
                },
                answer_key=answer_key,
                task_count=task_count,
                lifetime_s=lifetime_s,
                conditions=condition.to_dict() if conditions is not None else None,
                webhook=webhook,
                webhook_secret=webhooks.new_secret() if webhook else None,
                max_open_loops=max_open_loops,
                max_loops_per_hour=max_loops_per_hour,
                max_loops_per_invocation=max_loops_per_invocation,
            )
            flow = uow.review.flow(name)
    except StorageError:  # the same name made at the same moment by another request
        raise ReviewError(f"a flow definition {name!r} exists already: pick another name") from None
    assert flow is not None
    return flow


def sees(worker: Worker | None, team: str) -> bool:
    """Whether ``worker`` may see the flows and loops of ``team``: an admin sees all, anyone else their
    teams' (as labeling jobs); no worker is the local operator (the CLI), who sees all."""
    return worker is None or worker.role == "admin" or team in worker.teams


def find_flow(store: Store, name: str, worker: Worker | None = None) -> Flow:
    """The flow, when ``worker`` may see it (the same 'not found' otherwise: nothing leaks)."""
    with store.uow() as uow:
        flow = uow.review.flow(name)
    if flow is None or not sees(worker, flow.team):
        raise NotFoundError(f"no flow definition {name!r}; see `loopwise review flow list`")
    return flow


def list_flows(store: Store, worker: Worker | None = None) -> list[Flow]:
    with store.uow() as uow:
        return [f for f in uow.review.flows() if sees(worker, f.team)]


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
        made, refused = _start(
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


def start_predicted(store: Store, flow: Flow, loops: list[dict[str, Any]]) -> list[str]:
    """Loops that an endpoint's predictions started (names derived from their inference ids, so a retry
    never doubles one), within the flow's budget: one the budget refuses is recorded Stopped with its
    reason (its name went back with the prediction). Returns the names made now."""
    with store.uow() as uow:
        made, _ = _start(uow, flow, loops, datetime.now(UTC), record_refused=True)
    return made


def _start(
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
    from loopwise.serving.feedback import Feedback

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
    key = f"review/{flow.name}/{loop.name}/output.json"
    path = store.artifacts.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".output-{uuid.uuid4().hex}.json")  # two settles at once write apart
    with staged.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, default=str))
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the loop says Completed
    staged.replace(path)
    with store.uow() as uow:
        if not uow.review.end(loop.id, "Completed", now, output_uri=store.artifacts.uri(key)):
            return False
        # ground truth for the inference (monitoring's model quality and the A/B report join on it);
        # an inference of several texts gets it from feedback, which names a label for each text
        if loop.inference_id and loop.endpoint and (loop.activation or {}).get("texts", 1) == 1:
            uow.feedback.put(loop.endpoint, [Feedback(loop.inference_id, (label,))])
        record_event(uow, loop, "Completed", now)
    return True


def rotate_webhook_secret(store: Store, name: str) -> Flow:
    """A new secret for the flow's webhook (its queued events are signed with it; the old one stops at
    once); show ``webhook_secret`` once."""
    flow = find_flow(store, name)
    if not flow.webhook:
        raise ReviewError(f"flow definition {name!r} has no webhook: nothing to sign")
    with store.uow() as uow:
        uow.review.set_webhook_secret(name, webhooks.new_secret())
    return find_flow(store, name)


def _loop(store: Store, name: str, worker: Worker | None = None) -> HumanLoop:
    """The loop, when ``worker`` may see its flow (the same 'not found' otherwise)."""
    with store.uow() as uow:
        loop = uow.review.loop(name)
        flow = uow.review.flow(loop.flow) if loop is not None and worker is not None else None
    if loop is None or (flow is not None and not sees(worker, flow.team)):
        raise NotFoundError(f"no human loop {name!r}; see `loopwise review loop list`")
    return loop


def all_loops(store: Store, flow: Flow, *, status: str | None = None) -> Iterable[HumanLoop]:
    after: int | None = None
    while True:
        with store.uow() as uow:
            page = uow.review.loops(flow_id=flow.id, status=status, after_id=after, limit=500)
        yield from page
        if len(page) < 500:
            return
        after = page[-1].id


def _token(last_id: int) -> str:
    return f"after-{last_id}"


def _read_token(token: str | None) -> int | None:
    if not token:
        return None
    head = token.removeprefix("after-")
    if not (head.isascii() and head.isdigit()) or len(head) > 19 or int(head) >= 2**63:
        raise ReviewError(f"NextToken {token[:80]!r} is not one this server gave")
    return int(head)
