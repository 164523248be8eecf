"""Flow definitions: create (every setting checked against Augmented AI's limits), find, list, read
every loop of one, and rotate the webhook's secret. Who may see a flow: :func:`sees`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from loopwise import webhooks
from loopwise.errors import NotFoundError, ReviewError, StorageError
from loopwise.labeling.jobs import MAX_WORKERS_PER_ITEM, TASK_TIME_LIMIT_S, check_categories
from loopwise.labeling.records import Category
from loopwise.review import budget
from loopwise.review.conditions import parse_condition
from loopwise.review.loops import check_name
from loopwise.review.records import Flow, HumanLoop

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

#: Augmented AI's bounds for a task's availability lifetime: 60 seconds to 12 days (its default: 1 day)
LIFETIME_S = (60, 12 * 24 * 3600)
DEFAULT_LIFETIME_S = 24 * 3600


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
    _check_budget(max_open_loops, max_loops_per_hour, max_loops_per_invocation)
    check_categories(categories)
    condition = parse_condition(conditions, [c.label for c in categories])
    _check_task(task_count, task_time_limit_s, lifetime_s, answer_key, webhook)
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


def _check_budget(
    max_open_loops: int | None, max_loops_per_hour: int | None, max_loops_per_invocation: int
) -> None:
    """Refuse a budget bound outside :mod:`loopwise.review.budget`'s limits."""
    for field, value, (least, most) in (
        ("max_open_loops", max_open_loops, budget.MAX_OPEN),
        ("max_loops_per_hour", max_loops_per_hour, budget.MAX_PER_HOUR),
        ("max_loops_per_invocation", max_loops_per_invocation, budget.MAX_PER_INVOCATION),
    ):
        if value is not None and (isinstance(value, bool) or not least <= value <= most):
            raise ReviewError(f"{field}: a whole number from {least:,} to {most:,}, got {value!r}")


def _check_task(
    task_count: int, task_time_limit_s: int, lifetime_s: int, answer_key: str, webhook: str | None
) -> None:
    """Refuse a task setting outside Augmented AI's limits, or a webhook that is no http(s) URL."""
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


def rotate_webhook_secret(store: Store, name: str) -> Flow:
    """A new secret for the flow's webhook (its queued events are signed with it; the old one stops at
    once); show ``webhook_secret`` once."""
    flow = find_flow(store, name)
    if not flow.webhook:
        raise ReviewError(f"flow definition {name!r} has no webhook: nothing to sign")
    with store.uow() as uow:
        uow.review.set_webhook_secret(name, webhooks.new_secret())
    return find_flow(store, name)


def all_loops(store: Store, flow: Flow, *, status: str | None = None) -> Iterable[HumanLoop]:
    """Every loop of the flow (with ``status``, when given), read 500 at a time."""
    after: int | None = None
    while True:
        with store.uow() as uow:
            page = uow.review.loops(flow_id=flow.id, status=status, after_id=after, limit=500)
        yield from page
        if len(page) < 500:
            return
        after = page[-1].id
