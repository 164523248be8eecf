"""``loopwise endpoint``: endpoints with production and shadow variants."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from loopwise.cli._common import console, err_console, open_store, print_json, short_time

app = typer.Typer(help="Endpoints: variants of models behind one name, weighted traffic, shadow copies.")

NameArgument = Annotated[str, typer.Argument(help="The endpoint's name.")]


@app.command()
def create(
    name: NameArgument,
    config: Annotated[
        Path | None, typer.Option("--config", help="A YAML endpoint configuration (a 'variants' list).")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="A variant as key=value pairs, repeatable: "
            "name=VariantA,model=reviews-sentiment@champion,weight=50,instances=1 "
            "(also role=shadow, shadow_share, precision=int8, max_batch_size, max_wait_ms).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the endpoint as JSON.")] = False,
) -> None:
    """Create an endpoint from variants (--variant, repeatable) or a YAML file (--config), export its
    models to ONNX and check that each loads; it ends InService or Failed (with the reason)."""
    from loopwise.errors import EndpointConfigError
    from loopwise.serving.config import load_endpoint_config, parse_endpoint_config, parse_variant_option
    from loopwise.serving.service import create_endpoint

    if (config is None) == (not variant):
        raise EndpointConfigError(
            "give the variants either with --variant (repeatable) or in a file with --config, not both",
            [("variants", "missing or given twice")],
        )
    checked = (
        load_endpoint_config(config)
        if config is not None
        else parse_endpoint_config(
            {"variants": [parse_variant_option(v) for v in variant or []]}, source="--variant"
        )
    )
    with open_store() as store:
        out = err_console if as_json else console  # --json keeps stdout for the JSON
        endpoint = create_endpoint(
            store, name, checked, progress=lambda message: out.print(message, highlight=False)
        )
    if as_json:
        print_json(_endpoint_json(endpoint))
    else:
        _print_endpoint(endpoint)
    if endpoint.failure_reason:
        raise typer.Exit(1)


@app.command()
def describe(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the endpoint as JSON.")] = False,
) -> None:
    """The endpoint's status, its variants with their traffic shares, and its configuration history."""
    from loopwise.serving.service import describe_endpoint

    with open_store() as store:
        endpoint, history = describe_endpoint(store, name)
    if as_json:
        print_json(
            {
                **_endpoint_json(endpoint),
                "history": [
                    {
                        "version": h.version,
                        "note": h.note,
                        "created_at": h.created_at,
                        "config": h.config.to_dict(),
                    }
                    for h in history
                ],
            }
        )
        return
    _print_endpoint(endpoint)
    console.print("configurations:")
    for item in history:
        mark = "*" if item.version == endpoint.current.version else " "
        console.print(f" {mark} {item.version}  {short_time(item.created_at)}  {item.note}", highlight=False)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Every endpoint with its status, configuration version and variants."""
    from rich.table import Table

    from loopwise.serving.service import list_endpoints

    with open_store() as store:
        endpoints = list_endpoints(store)
    if as_json:
        print_json([_endpoint_json(e) for e in endpoints])
        return
    table = Table(title="endpoints")
    for column in ("name", "status", "config", "variants", "updated"):
        table.add_column(column)
    for e in endpoints:
        shares = e.config.traffic_shares()
        variants = ", ".join(
            f"{v.name} {shares[v.name]:.0%}" if v.role == "production" else f"{v.name} (shadow)"
            for v in e.config.variants
        )
        table.add_row(e.name, e.status.value, str(e.current.version), variants, short_time(e.updated_at))
    console.print(table)


@app.command("update-weights")
def update_weights(
    name: NameArgument,
    weights: Annotated[
        list[str], typer.Argument(help="New weights as Variant=weight, e.g. VariantA=0 VariantB=100.")
    ],
) -> None:
    """Shift traffic between production variants without redeploying: records a new configuration
    version and puts it in force."""
    from loopwise.errors import EndpointConfigError
    from loopwise.serving.service import update_weights as update

    parsed: dict[str, float] = {}
    for item in weights:
        variant, sep, value = item.partition("=")
        try:
            parsed[variant.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not variant.strip():
            raise EndpointConfigError(
                f"{item!r}: write Variant=weight, e.g. VariantB=100", [("weights", f"bad weight {item!r}")]
            )
    with open_store() as store:
        endpoint = update(store, name, parsed)
    _print_endpoint(endpoint)


@app.command()
def autoscale(
    name: NameArgument,
    variant: Annotated[str, typer.Argument(help="The production variant to scale.")],
    target: Annotated[
        float | None, typer.Option(help="Invocations per instance per period to hold (the course: 2.0).")
    ] = None,
    min_instances: Annotated[int, typer.Option("--min", min=1, help="Fewest instances.")] = 1,
    max_instances: Annotated[int, typer.Option("--max", min=1, help="Most instances.")] = 2,
    scale_out_cooldown: Annotated[float, typer.Option(min=0, help="Seconds between scale-outs.")] = 60.0,
    scale_in_cooldown: Annotated[
        float, typer.Option(min=0, help="Seconds after any change before a scale-in.")
    ] = 300.0,
    period: Annotated[float, typer.Option(min=1, help="The metric's period in seconds.")] = 60.0,
    off: Annotated[bool, typer.Option("--off", help="Remove the variant's policy.")] = False,
) -> None:
    """Attach a target-tracking policy on InvocationsPerInstance to a variant (or remove it with --off);
    a running server applies it within a second."""
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
def feedback(
    name: NameArgument,
    file: Annotated[
        Path, typer.Argument(help='JSON lines: {"inference_id": ..., "label": ...} (or labels, reward).')
    ],
) -> None:
    """Post ground truth (or rewards) for the endpoint's inferences; an inference's earlier feedback is
    replaced. It joins the captured requests in `loopwise ab report`."""
    import json

    from loopwise.errors import EndpointConfigError
    from loopwise.serving.feedback import parse_feedback
    from loopwise.serving.service import record_feedback

    items = []
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EndpointConfigError(f"cannot read {file}: {exc}", [("file", str(exc))]) from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EndpointConfigError(
                    f"{file} line {number} is not JSON: {exc}", [(f"line {number}", "not JSON")]
                ) from None
    parsed = parse_feedback(items, source=str(file))
    with open_store() as store:
        new = record_feedback(store, name, parsed)
    console.print(f"{name}: feedback for {len(parsed)} inferences recorded ({new} new)")


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

    with open_store() as store, store.uow() as uow:
        latest = uow.rollouts.latest(name)
    if as_json:
        print_json({**asdict(latest), "plan": latest.plan.model_dump()})
        return
    console.print(
        f"rollout {latest.id} of {latest.variant} on {name}: {latest.status.value}, step "
        f"{latest.step + 1}/{len(latest.plan.shares)} ({latest.plan.shares[latest.step]:.0%})"
        + (f"; {latest.reason}" if latest.reason else ""),
        highlight=False,
    )


@app.command()
def delete(
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the endpoint and its configuration history (its models stay in the registry)."""
    from loopwise.serving.service import delete_endpoint

    if not yes:
        typer.confirm(f"delete endpoint {name}?", abort=True)
    with open_store() as store:
        delete_endpoint(store, name)
    console.print(f"endpoint {name} deleted")


def _endpoint_json(endpoint: Any) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "status": endpoint.status.value,
        "failure_reason": endpoint.failure_reason,
        "config_version": endpoint.current.version,
        "traffic_shares": endpoint.config.traffic_shares(),
        "config": endpoint.config.to_dict(),
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def _print_endpoint(endpoint: Any) -> None:
    from rich.table import Table

    console.print(
        f"endpoint [bold]{endpoint.name}[/bold]: {endpoint.status.value} "
        f"(configuration {endpoint.current.version})"
    )
    if endpoint.failure_reason:
        console.print(f"[red]failed: {endpoint.failure_reason}[/red]", highlight=False)
    shares = endpoint.config.traffic_shares()
    table = Table()
    for column in ("variant", "role", "model", "traffic", "instances", "precision", "batching"):
        table.add_column(column)
    for v in endpoint.config.variants:
        traffic = f"{shares[v.name]:.0%}" if v.role == "production" else f"copy of {v.shadow_share:.0%}"
        table.add_row(
            v.name,
            v.role,
            v.model,
            traffic,
            str(v.instances),
            v.precision,
            f"{v.max_batch_size} / {v.max_wait_ms:g} ms",
        )
    console.print(table)


@app.command()
def metrics(
    name: NameArgument,
    period: Annotated[
        int, typer.Option(min=1, max=3600, help="Seconds per period (CloudWatch's Period).")
    ] = 60,
    window: Annotated[int, typer.Option(min=1, max=3600, help="How many seconds back to look.")] = 3600,
    url: Annotated[
        str, typer.Option(help="The loopwise server that serves the endpoint.")
    ] = "http://127.0.0.1:8080",
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the plot (default: serving/NAME/metrics-TIME.png in the artifacts)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Per-variant Invocations, InvocationsPerInstance, ModelLatency, OverheadLatency, 4XX/5XX errors and
    CPUUtilization by period, as a table and the course's plot (one line per variant)."""
    from rich.table import Table

    from loopwise.serving.plots import variant_metrics_png

    rows = _server_get(url, f"/api/v1/endpoints/{name}/metrics", period=period, window=window)["rows"]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{name}: per-variant metrics, {period} s periods")
    columns = (
        "period",
        "variant",
        "Invocations",
        "InvocationsPerInstance",
        "ModelLatency",
        "OverheadLatency",
        "4XX",
        "5XX",
        "CPUUtilization",
    )
    for column in columns:
        table.add_column(column, justify="right" if column not in ("period", "variant") else "left")
    for row in rows:
        table.add_row(
            datetime.fromtimestamp(row["period_start"]).strftime("%H:%M:%S"),
            row["variant"],
            str(row["Invocations"]),
            f"{row['InvocationsPerInstance']:.1f}",
            _ms(row["ModelLatency"]),
            _ms(row["OverheadLatency"]),
            str(row["Invocation4XXErrors"]),
            str(row["Invocation5XXErrors"]),
            "-" if row["CPUUtilization"] is None else f"{row['CPUUtilization']:.0f}%",
        )
    console.print(table)
    if rows:
        with open_store() as store:
            target = plot or store.artifacts.path(
                f"serving/{name}/metrics-{datetime.now():%Y%m%d-%H%M%S}.png"
            )
        title = f"{name}: per-variant metrics ({period} s periods)"
        console.print(f"plot: {variant_metrics_png(rows, target, title=title)}", highlight=False)


@app.command("shadow-report")
def shadow_report(
    name: NameArgument,
    url: Annotated[
        str, typer.Option(help="The loopwise server that serves the endpoint.")
    ] = "http://127.0.0.1:8080",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Each shadow variant against production: texts compared, agreement, and the per-class flip matrix
    (production's label -> the shadow's)."""
    from rich.table import Table

    report = _server_get(url, f"/api/v1/endpoints/{name}/shadow")["shadows"]
    if as_json:
        print_json(report)
        return
    if not report:
        console.print(f"{name}: no shadow answer compared yet (does it have a shadow variant, and traffic?)")
    for shadow, figures in report.items():
        agreement = figures["agreement"]
        console.print(
            f"[bold]{shadow}[/bold]: {figures['compared']} texts compared, agreement "
            + ("-" if agreement is None else f"{agreement:.1%}")
        )
        labels = sorted(
            {*figures["flip_matrix"], *(b for row in figures["flip_matrix"].values() for b in row)}
        )
        table = Table(title="production label (rows) -> shadow label (columns)")
        table.add_column("")
        for label in labels:
            table.add_column(label, justify="right")
        for a in labels:
            row = figures["flip_matrix"].get(a, {})
            table.add_row(a, *(str(row.get(b, 0)) for b in labels))
        console.print(table)


def _server_get(url: str, path: str, **params: Any) -> dict[str, Any]:
    import httpx

    from loopwise.errors import EndpointError

    try:
        answer = httpx.get(f"{url.rstrip('/')}{path}", params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"cannot reach the loopwise server at {url} ({exc}); start it with `loopwise server`"
        ) from None
    if answer.status_code != 200:
        raise EndpointError(f"the server answered {answer.status_code}: {answer.json()['error']['message']}")
    return dict(answer.json())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"
