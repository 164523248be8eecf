"""``loopwise ab``: A/B decisions between an endpoint's production variants."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from loopwise.cli._common import console, open_store, print_json

app = typer.Typer(help="A/B tests between production variants: traffic, latency, quality and a verdict.")


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    alpha: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="False-positive rate, however often you look.")
    ] = 0.05,
    min_effect: Annotated[
        float, typer.Option(min=0, max=1, help="A difference in accuracy smaller than this is no difference.")
    ] = 0.01,
    promote: Annotated[
        bool, typer.Option("--promote", help="Shift all traffic to the winner, if there is one.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Traffic per variant (with a sample-ratio-mismatch test), latency, accuracy from the feedback joined
    to captured requests, always-valid sequential tests (mSPRT) against the control, and a verdict:
    winner, keep running, no difference, or invalid split."""
    from rich.table import Table

    from loopwise.serving.ab_report import ab_report
    from loopwise.serving.service import promote as promote_variant

    with open_store() as store:
        found = ab_report(store, name, alpha=alpha, min_effect=min_effect)
        promoted = None
        if promote and found["winner"] is not None:
            promoted = promote_variant(store, name, found["winner"])
    if as_json:
        print_json({**found, "promoted": None if promoted is None else promoted.current.version})
        return
    srm = found["sample_ratio_mismatch"]
    console.print(
        f"[bold]{name}[/bold] (configuration {found['config_version']}): "
        f"{found['captured_requests']} captured requests, {found['feedback']} with feedback; traffic split "
        + ("[red]BROKEN[/red]" if srm["broken"] else "ok")
        + f" (SRM p = {srm['p_value']:.3g})"
    )
    table = Table()
    for column in ("variant", "weight", "requests", "latency mean / p99", "labelled", "accuracy"):
        table.add_column(column)
    for variant, figures in found["variants"].items():
        latency = figures["latency_ms"]
        table.add_row(
            variant,
            f"{figures['weight']:g}",
            str(figures["requests"]),
            "-" if latency is None else f"{latency['mean']:.2f} / {latency['p99']:.2f} ms",
            str(figures["labelled"]),
            "-" if figures["accuracy"] is None else f"{figures['accuracy']:.3f}",
        )
    console.print(table)
    for c in found["comparisons"]:
        console.print(
            f"{c['challenger']} - {c['control']}: {_points(c['difference'])} "
            f"(always-valid {1 - c['alpha']:.1%} interval {_points(c['low'])} to {_points(c['high'])}, "
            f"p = {c['p_value']:.3g})",
            highlight=False,
        )
    verdict = found["verdict"] + (f": {found['winner']}" if found["winner"] else "")
    console.print(f"verdict: [bold]{verdict}[/bold]")
    if promoted is not None:
        console.print(
            f"promoted {found['winner']}: all traffic now (configuration {promoted.current.version})"
        )
    elif promote:
        console.print("nothing promoted: there is no winner yet")


def _points(value: Any) -> str:
    return "nan" if value != value else f"{value * 100:+.1f} points"
