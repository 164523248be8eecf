"""``loopwise endpoint``: endpoints with production and shadow variants."""

from __future__ import annotations

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
            "(instances: worker processes on each server; also role=shadow, shadow_share, "
            "precision=int8|fp16, max_batch_size, max_wait_ms, and "
            "device=cpu|cuda|cuda:N|auto: a GPU variant serves fp16 on ONNX Runtime's CUDA provider, "
            "falling back to the CPU with a warning).",
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
        print_json(endpoint.to_dict())
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
                **endpoint.to_dict(),
                "history": [h.to_dict() for h in history],
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
        print_json([e.to_dict() for e in endpoints])
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
def feedback(
    name: NameArgument,
    file: Annotated[
        Path, typer.Argument(help='JSON lines: {"inference_id": ..., "label": ...} (or labels, reward).')
    ],
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Record feedback for inference ids not in the endpoint's capture, and labels none of its "
            "models has (refused otherwise).",
        ),
    ] = False,
) -> None:
    """Post ground truth (or rewards) for the endpoint's inferences; an inference's earlier feedback is
    replaced. It joins the captured requests in `loopwise ab report`. An inference id must be in the
    endpoint's capture (or have feedback already), and labels among its models' classes, unless
    --allow-unknown."""
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
        new = record_feedback(store, name, parsed, allow_unknown=allow_unknown)
    console.print(f"{name}: feedback for {len(parsed)} inferences recorded ({new} new)")


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


def _print_endpoint(endpoint: Any) -> None:
    from rich.table import Table

    console.print(
        f"endpoint [bold]{endpoint.name}[/bold]: {endpoint.status.value} "
        f"(configuration {endpoint.current.version})"
    )
    if endpoint.failure_reason:
        console.print(f"[red]failed: {endpoint.failure_reason}[/red]", highlight=False)
    from loopwise.classifiers._providers import describe_device

    shares = endpoint.config.traffic_shares()
    table = Table()
    for column in (
        "variant",
        "role",
        "model",
        "traffic",
        "instances a server",
        "device",
        "precision",
        "batching",
    ):
        table.add_column(column)
    for v in endpoint.config.variants:
        traffic = f"{shares[v.name]:.0%}" if v.role == "production" else f"copy of {v.shadow_share:.0%}"
        table.add_row(
            v.name,
            v.role,
            v.model,
            traffic,
            str(v.instances),
            describe_device(v.device),
            v.precision,
            f"{v.max_batch_size} / {v.max_wait_ms:g} ms",
        )
    console.print(table)
