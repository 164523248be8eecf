"""``loopwise endpoint`` commands that guard an endpoint: autoscaling policies and guarded rollouts."""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.cli._common import console, open_store, print_json
from loopwise.cli.endpoint import NameArgument, app
from loopwise.serving.rollout import plan_of


@app.command()
def autoscale(
    name: NameArgument,
    variant: Annotated[str, typer.Argument(help="The production variant to scale.")],
    target: Annotated[
        float | None, typer.Option(help="Invocations per instance per period to hold (the course: 2.0).")
    ] = None,
    min_instances: Annotated[
        int, typer.Option("--min", min=1, help="Fewest instances (worker processes) on each server.")
    ] = 1,
    max_instances: Annotated[
        int, typer.Option("--max", min=1, help="Most instances (worker processes) on each server.")
    ] = 2,
    scale_out_cooldown: Annotated[float, typer.Option(min=0, help="Seconds between scale-outs.")] = 60.0,
    scale_in_cooldown: Annotated[
        float, typer.Option(min=0, help="Seconds after any change before a scale-in.")
    ] = 300.0,
    period: Annotated[float, typer.Option(min=1, help="The metric's period in seconds.")] = 60.0,
    off: Annotated[bool, typer.Option("--off", help="Remove the variant's policy.")] = False,
) -> None:
    """Attach a target-tracking policy on InvocationsPerInstance to a variant (or remove it with --off);
    a running server applies it within a second. The count it sets is per server: with several servers
    on one database, one of them decides from all their load and every server runs that many."""
    from loopwise.errors import EndpointConfigError
    from loopwise.serving.config import Autoscaling
    from loopwise.serving.service import set_autoscaling

    if off == (target is not None):
        raise EndpointConfigError(
            "give --target to attach a policy, or --off to remove it", [("target", "missing")]
        )
    policy = None
    if target is not None:
        try:
            policy = Autoscaling(
                target=target,
                min_instances=min_instances,
                max_instances=max_instances,
                scale_out_cooldown_s=scale_out_cooldown,
                scale_in_cooldown_s=scale_in_cooldown,
                period_s=period,
            )
        except ValueError as exc:
            raise EndpointConfigError(f"bad autoscaling policy: {exc}", [("autoscaling", str(exc))]) from None
    with open_store() as store:
        endpoint = set_autoscaling(store, name, variant, policy)
    console.print(f"{endpoint.name}: {endpoint.current.note} (configuration {endpoint.current.version})")


@app.command()
def rollout(
    name: NameArgument,
    variant: Annotated[str, typer.Argument(help="The production variant to shift traffic to.")],
    canary: Annotated[
        float | None, typer.Option(min=0.1, max=99.9, help="Canary: this percent first, then all of it.")
    ] = None,
    linear: Annotated[int | None, typer.Option(min=1, max=100, help="Linear: this many equal steps.")] = None,
    bake: Annotated[float, typer.Option(min=1, help="Seconds each step bakes before the next.")] = 600.0,
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Roll back when the variant's 5XX rate is above this.")
    ] = 0.05,
    max_p99_ms: Annotated[
        float | None, typer.Option(help="Roll back when the variant's p99 latency (ms) is above this.")
    ] = None,
) -> None:
    """Shift production traffic to a variant in guarded steps (--canary PERCENT or --linear STEPS), each
    baking --bake seconds; a running `loopwise server` advances it and rolls it back when an alarm fires."""
    from loopwise.errors import EndpointConfigError
    from loopwise.serving.rollout import RolloutPlan
    from loopwise.serving.service import start_rollout

    if (canary is None) == (linear is None):
        raise EndpointConfigError("give --canary PERCENT or --linear STEPS", [("plan", "missing or both")])
    alarms = {"max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms}
    plan = (
        RolloutPlan.canary(canary, bake, **alarms)
        if canary is not None
        else RolloutPlan.linear(linear or 1, bake, **alarms)
    )
    with open_store() as store:
        started = start_rollout(store, name, variant, plan)
    steps = ", ".join(f"{share:.0%}" for share in plan.shares)
    console.print(f"rollout {started.id} of {variant} on {name}: {steps}, {bake:g} s a step", highlight=False)


@app.command("rollout-status")
def rollout_status(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rollout as JSON.")] = False,
) -> None:
    """The endpoint's latest rollout: its step, status, and why it was rolled back."""
    from dataclasses import asdict

    from loopwise.serving.service import latest_rollout

    with open_store() as store:
        latest = latest_rollout(store, name)
    if as_json:
        print_json({**asdict(latest), "plan": latest.plan})
        return
    console.print(
        f"rollout {latest.id} of {latest.variant} on {name}: {latest.status.value}, step "
        f"{latest.step + 1}/{len(plan_of(latest).shares)} ({plan_of(latest).shares[latest.step]:.0%})"
        + (f"; {latest.reason}" if latest.reason else ""),
        highlight=False,
    )


@app.command("attach-review")
def attach_review(
    name: NameArgument,
    flow: Annotated[
        str | None, typer.Option(help="The flow definition whose conditions start loops.")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="A variant to review (repeat); default: production.")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Detach the endpoint's flow.")] = False,
) -> None:
    """Send the endpoint's uncertain predictions to people: each prediction is checked against the flow's
    activation conditions and those that fire start a human loop (a running server applies it within a
    second)."""
    from loopwise.errors import EndpointConfigError
    from loopwise.serving.service import attach_review as attach

    if off == (flow is not None):
        raise EndpointConfigError(
            "give --flow NAME to attach a flow, or --off to detach it", [("flow", "missing")]
        )
    with open_store() as store:
        endpoint = attach(store, name, flow, tuple(variant) if variant else None)
    console.print(f"{endpoint.name}: {endpoint.current.note} (configuration {endpoint.current.version})")
