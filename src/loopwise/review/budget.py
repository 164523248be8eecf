"""A flow's budget: as many loops as its reviewers can keep up with, the most useful ones first.

A flow may bound its open loops (``max_open_loops``, N) and the loops it starts in any rolling hour
(``max_loops_per_hour``, M). :func:`plan` decides, for a batch of loops about to start, which start,
which take the place of an open loop, and which are refused:

- while fewer than N loops are open, a loop starts;
- when N are open, a prediction's loop starts only if it is more uncertain (its ``confidence``, the top
  probability, is lower) than the least uncertain open loop that nobody has claimed yet (no hold, no
  answer): that loop ends ``Stopped``, reason ``Replaced``, and the new one takes its place; otherwise it
  is recorded ``Stopped`` at once, reason ``BudgetFull`` (its name was already returned with the
  prediction: describing it says why nobody reviews it);
- every loop that starts counts towards M, a replacement too: M bounds how many new items reach the
  reviewers' queue an hour (each replacement is an item they had in view taken away and a new one put
  in), so beyond M nothing starts, replacement or not, until the hour rolls on (reason ``HourlyLimit``).

A loop with no confidence (one a program started by name) never replaces one and is never replaced.
The caller runs the plan in the transaction that holds the flow's lock (``start_predicted``), so
concurrent writers never open more than N.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopwise.review.records import Flow, HumanLoop

#: bounds of the budget's settings (a flow definition refuses others, naming the field)
MAX_OPEN = (1, 1_000_000)
MAX_PER_HOUR = (1, 10_000_000)
MAX_PER_INVOCATION = (1, 10_000)
DEFAULT_PER_INVOCATION = 100


@dataclass
class Plan:
    """What a batch does: ``start`` (loops that start), ``replace`` (an open loop and the loop that
    takes its place, which starts too), ``refuse`` (a loop recorded Stopped at once, with its reason)."""

    start: list[Mapping[str, Any]] = field(default_factory=list)
    replace: list[tuple[HumanLoop, Mapping[str, Any]]] = field(default_factory=list)
    refuse: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)


def bounded(flow: Flow) -> bool:
    """Whether the flow has a budget at all (an unbounded flow skips the counting)."""
    return flow.max_open_loops is not None or flow.max_loops_per_hour is not None


def plan(
    flow: Flow,
    loops: Sequence[Mapping[str, Any]],
    *,
    open_loops: int,
    started_last_hour: int,
    replaceable: Sequence[HumanLoop],
) -> Plan:
    """Decide the batch ``loops`` (each may carry ``confidence``) given the flow's ``open_loops`` now,
    the loops it started in the last hour, and its ``replaceable`` loops (open, unclaimed, with a
    confidence), least uncertain first. Pure: it reads and changes nothing."""
    room_hour = (
        math.inf if flow.max_loops_per_hour is None else max(0, flow.max_loops_per_hour - started_last_hour)
    )
    free = math.inf if flow.max_open_loops is None else max(0, flow.max_open_loops - open_loops)
    decided = Plan()
    victims = iter(replaceable)
    victim = next(victims, None)
    for loop in sorted(loops, key=_uncertainty):
        confidence = loop.get("confidence")
        if room_hour <= 0:
            decided.refuse.append(
                (
                    loop,
                    f"HourlyLimit: flow {flow.name} started its {flow.max_loops_per_hour} loops of the last "
                    "hour; raise its max_loops_per_hour to review more",
                )
            )
        elif free > 0:
            decided.start.append(loop)
            free -= 1
            room_hour -= 1
        elif confidence is not None and victim is not None and confidence < (victim.confidence or 0.0):
            decided.replace.append((victim, loop))
            victim = next(victims, None)
            room_hour -= 1
        else:
            shown = "" if confidence is None else f" (confidence {confidence:.4f})"
            decided.refuse.append(
                (
                    loop,
                    f"BudgetFull: flow {flow.name} has its {flow.max_open_loops} open loops, each claimed "
                    f"or at least as uncertain as this prediction{shown}",
                )
            )
    return decided


def replaced_reason(flow: Flow, victim: HumanLoop, successor: Mapping[str, Any]) -> str:
    """The reason a loop ends when a more uncertain prediction takes its place."""
    return (
        f"Replaced: flow {flow.name} has its {flow.max_open_loops} open loops; loop {successor['name']} is "
        f"more uncertain (confidence {successor['confidence']:.4f} < {victim.confidence or 0.0:.4f})"
    )


def _uncertainty(loop: Mapping[str, Any]) -> float:
    """Most uncertain first; a loop with no confidence (asked for by name) before all."""
    confidence = loop.get("confidence")
    return -1.0 if confidence is None else float(confidence)
