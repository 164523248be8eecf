"""``loopwise endpoint`` commands that read a running server: per-variant metrics and shadow reports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from loopwise.cli._common import console, open_store, print_json
from loopwise.cli.endpoint import NameArgument, app

#: an API token for the server (role service, reviewer or admin)
Token = Annotated[
    str | None,
    typer.Option(
        envvar="LOOPWISE_TOKEN", help="An API token for the server (`loopwise workforce token create`)."
    ),
]


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
    token: Token = None,
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

    rows = _server_get(url, token, f"/api/v1/endpoints/{name}/metrics", period=period, window=window)["rows"]
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
        title = f"{name}: per-variant metrics ({period} s periods)"
        if plot is not None:
            drawn = variant_metrics_png(rows, plot, title=title)
        else:
            with open_store() as store:
                drawn = store.artifacts.write_with(
                    f"serving/{name}/metrics-{datetime.now():%Y%m%d-%H%M%S}",
                    lambda folder: variant_metrics_png(rows, folder / "metrics.png", title=title),
                )
        console.print(f"plot: {drawn}", highlight=False)


@app.command("shadow-report")
def shadow_report(
    name: NameArgument,
    url: Annotated[
        str, typer.Option(help="The loopwise server that serves the endpoint.")
    ] = "http://127.0.0.1:8080",
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Each shadow variant against production: texts compared, agreement, and the per-class flip matrix
    (production's label -> the shadow's)."""
    from rich.table import Table

    report = _server_get(url, token, f"/api/v1/endpoints/{name}/shadow")["shadows"]
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


def _server_get(url: str, token: str | None, path: str, **params: Any) -> dict[str, Any]:
    import httpx

    from loopwise.errors import EndpointError

    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = httpx.get(f"{url.rstrip('/')}{path}", params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"cannot reach the loopwise server at {url} ({exc}); start it with `loopwise server`"
        ) from None
    if answer.status_code == 401:
        raise EndpointError(
            "the server wants an API token: pass --token or set LOOPWISE_TOKEN (an admin makes one with "
            "`loopwise workforce token create EMAIL --name NAME`)"
        )
    if answer.status_code != 200:
        raise EndpointError(f"the server answered {answer.status_code}: {answer.json()['error']['message']}")
    return dict(answer.json())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"
