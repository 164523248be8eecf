"""``loopwise monitor``: baselines, and data quality and drift checks of captured traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from loopwise.cli._common import console, open_store, print_json, progress_bar
from loopwise.cli._devices import DeviceOption, PrecisionOption, onnx_placement

app = typer.Typer(help="Model monitoring: baselines from training data; data quality and drift of traffic.")


@app.command()
def baseline(
    dataset: Annotated[str, typer.Option(help="The data set the model learned from (NAME or NAME:VERSION).")],
    model: Annotated[str, typer.Option(help="The model version (NAME:VERSION or NAME@ALIAS).")],
    name: Annotated[
        str | None, typer.Option(help="The baseline's name (default: the model's, as NAME-vVERSION).")
    ] = None,
    split: Annotated[str, typer.Option(help="The split to describe.")] = "train",
    max_texts: Annotated[int, typer.Option(min=20, help="At most this many texts (a random sample).")] = 5000,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Statistics of the training data with the model's answers on it (text lengths, empty / garbled /
    out-of-vocabulary rates, predicted classes, confidences, a reference sample of sentence embeddings)
    and suggested constraints: statistics.json and constraints.json (edit it to change a check)."""
    from loopwise.monitoring.service import create_baseline

    if (device, precision) != ("auto", "auto"):  # auto resolves without torch: ONNX Runtime decides
        device, precision = onnx_placement(device, precision)
    with open_store() as store:
        directory = create_baseline(
            store,
            dataset,
            model,
            name=name,
            split=split,
            max_texts=max_texts,
            progress=lambda message: console.print(message, highlight=False),
            device=device,
            precision=precision,
        )
    console.print(f"baseline written to {directory}", highlight=False)
    console.print(f"edit {directory / 'constraints.json'} to change what is checked", highlight=False)


@app.command()
def run(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose captured traffic is checked.")],
    baseline_name: Annotated[str, typer.Option("--baseline", help="The baseline's name.")],
    hours: Annotated[float, typer.Option(min=0.001, help="Check the captures of the last HOURS.")] = 1.0,
    variant: Annotated[str | None, typer.Option(help="Only this variant (default: each).")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--type", help="data-quality, drift and/or model-quality (default: all); repeat for several."
        ),
    ] = None,
    alerts: Annotated[
        bool, typer.Option("--alerts/--no-alerts", help="Record an alert per violation (sent to webhooks).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check an endpoint's captured records against a baseline now, per variant: constraint violations
    (observed value, threshold, examples), drift tests (MMD on embeddings, chi-square and PSI on
    predicted classes, Kolmogorov-Smirnov on confidence and length) and model quality (accuracy and macro
    F1 from ground truth posted as feedback, beside the accuracy estimated from calibrated confidences).
    Writes the report as JSON."""
    from loopwise.monitoring.scheduling import record_alerts
    from loopwise.monitoring.service import KINDS, run_monitor

    with open_store() as store, progress_bar("reading capture files") as update:
        report = run_monitor(
            store,
            endpoint,
            baseline_name,
            hours=hours,
            variant=variant,
            kinds=tuple(kind or KINDS),
            progress=update,
        )
        report["alerts"] = [a.id for a in record_alerts(store, report)] if alerts else []
    if as_json:
        print_json(report)
        return
    _print_report(endpoint, baseline_name, report)


def _print_report(endpoint: str, baseline_name: str, report: dict[str, Any]) -> None:
    """``monitor run``'s report as text: the window, then each variant's checks as a table."""
    console.print(
        f"[bold]{endpoint}[/bold] against baseline {baseline_name}, {report['window']['start']} to "
        f"{report['window']['end']}; {report['skipped_lines']} unreadable capture line(s) skipped"
    )
    outside = report["ground_truth_outside_window"]
    if outside["count"]:
        console.print(
            f"{outside['count']} ground-truth label(s) for inference ids outside this window's captures, "
            f"e.g. {', '.join(outside['examples'][:3])}",
            highlight=False,
        )
    if report["message"]:
        console.print(report["message"], highlight=False)
    for name, found in report["variants"].items():
        colour = {"ok": "green", "violations": "red"}.get(found["status"], "yellow")
        console.print(
            f"\n[bold]{name}[/bold]: {found['records']} records, {found['texts']} texts: "
            f"[{colour}]{found['message']}[/{colour}]",
            highlight=False,
        )
        if found["data_quality"] or found["drift"] or found["model_quality"]:
            console.print(_variant_table(found))
        for violation in found["violations"]:
            for example in violation["examples"][:3]:
                console.print(f"  {violation['constraint']} e.g.: {example[:120]!r}", highlight=False)
    console.print(f"\nreport: {report['path']}", highlight=False)


def _variant_table(found: dict[str, Any]) -> Any:
    """One variant's checks: data quality, drift tests and model quality, each with its verdict."""
    from rich.table import Table

    table = Table()
    for column in ("check", "observed", "threshold / p-value", "verdict"):
        table.add_column(column)
    flagged = {violation["constraint"] for violation in found["violations"]}
    for check, figures in found["data_quality"].items():
        table.add_row(
            check,
            f"{figures['observed']:.2%}",
            f"max {figures['max']:.2%}" + (f", p = {figures['p_value']:.2g}" if "p_value" in figures else ""),
            "[red]violated[/red]" if check in flagged else "ok",
        )
    for check, test in found["drift"].items():
        table.add_row(
            f"drift: {check} ({test['test']})",
            f"effect {test['effect']:.3f}",
            f"p = {test['p_value']:.2g}",
            "[red]drifted[/red]" if check in flagged else "ok",
        )
    quality = found["model_quality"]
    if quality:
        truth = (
            f"accuracy {quality['accuracy']:.1%}, macro F1 {quality['macro_f1']:.3f} on "
            f"{quality['labelled']} labelled texts (estimate's error {quality['estimate_error']:+.1%})"
            if quality["labelled"]
            else "no ground truth yet"
        )
        table.add_row(
            "model quality",
            f"estimated accuracy {quality['estimated_accuracy']:.1%}",
            truth,
            "[red]violated[/red]" if flagged & {"accuracy", "macro_f1", "estimated_accuracy"} else "ok",
        )
    return table


@app.command()
def report(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose checks are reported.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default: monitoring/reports/ENDPOINT/summary).")
    ] = None,
) -> None:
    """One HTML page (and its JSON) of the endpoint's checks so far: drift statistics over time per
    variant, the latest window's length and confidence histograms against the baseline, and accuracy over
    time with the estimate from confidences beside it."""
    from loopwise.monitoring.report import write_report

    with open_store() as store:
        page = write_report(store, endpoint, out)
    console.print(f"report written to {page}", highlight=False)


schedule_app = typer.Typer(help="Monitoring on a schedule, run by `loopwise server`.")
app.add_typer(schedule_app, name="schedule")
webhook_app = typer.Typer(help="Where alerts are POSTed (at least once, retried with backoff).")
app.add_typer(webhook_app, name="webhook")


@schedule_app.command("create")
def schedule_create(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose captures are checked.")],
    baseline_name: Annotated[str, typer.Option("--baseline", help="The baseline's name.")],
    every: Annotated[str, typer.Option(help="How often: 30s, 15m, 1h, 1d.")] = "1h",
    window: Annotated[
        str | None, typer.Option(help="How far back each run looks (default: --every).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--type", help="data-quality, drift and/or model-quality (default: all)."),
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="A named action for this schedule's alerts (e.g. retrain).")
    ] = None,
) -> None:
    """Check ENDPOINT's captures against a baseline every EVERY, in the server's scheduler (first run at
    once); every violation becomes an alert."""
    from loopwise.monitoring.scheduling import create_schedule
    from loopwise.monitoring.service import KINDS

    with open_store() as store:
        made = create_schedule(
            store,
            endpoint,
            baseline_name,
            every=every,
            window=window,
            kinds=tuple(kind or KINDS),
            action=action,
        )
    console.print(
        f"schedule {made.id}: {endpoint} against {baseline_name} every {made.every_s:g} s "
        f"({', '.join(made.kinds)}), run by `loopwise server`",
        highlight=False,
    )


@schedule_app.command("list")
def schedule_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Every monitoring schedule with its next and last run."""
    from loopwise.monitoring.service import list_schedules

    with open_store() as store:
        found = list_schedules(store)
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    for s in found:
        console.print(
            f"{s.id}  {s.endpoint}  {s.baseline}  every {s.every_s:g} s  "
            f"next {s.next_run_at:%Y-%m-%d %H:%M:%S}  last: {s.last_status or '-'}",
            highlight=False,
        )


@schedule_app.command("delete")
def schedule_delete(schedule_id: Annotated[int, typer.Argument(help="The schedule's number.")]) -> None:
    """Stop a monitoring schedule (its alerts stay)."""
    from loopwise.monitoring.service import delete_schedule

    with open_store() as store:
        delete_schedule(store, schedule_id)
    console.print(f"schedule {schedule_id} deleted")


@app.command("alerts")
def alerts_list(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status (alerts are open).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Monitoring's alerts, newest first."""
    from loopwise.monitoring.service import list_alerts

    with open_store() as store:
        found = list_alerts(store, endpoint=endpoint, status=status, limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    for a in found:
        console.print(
            f"{a.id}  {a.created_at:%Y-%m-%d %H:%M:%S}  {a.endpoint}/{a.variant or '-'}  [{a.status}]  "
            f"{a.message}",
            highlight=False,
        )


@webhook_app.command("add")
def webhook_add(url: Annotated[str, typer.Argument(help="An http:// or https:// URL.")]) -> None:
    """POST every new alert to URL (JSON, signed: header X-Loopwise-Signature; X-Loopwise-Delivery and
    X-Loopwise-Alert-Id to drop repeats). Its signing secret is shown once (see loopwise.webhooks.verify)."""
    from loopwise.monitoring.scheduling import add_webhook

    with open_store() as store:
        hook, made = add_webhook(store, url)
    if not made:
        console.print(f"webhook {hook.id} has this URL already (rotate its secret with rotate-secret)")
        return
    console.print(f"webhook {hook.id}: {hook.url}", highlight=False)
    console.print(f"signing secret (shown once): {hook.secret}", highlight=False)


@webhook_app.command("list")
def webhook_list(
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Show the URLs whole (they are secrets: an admin's eyes only).")
    ] = False,
) -> None:
    """The webhooks alerts go to (URLs redacted unless --reveal)."""
    from loopwise.monitoring.service import list_webhooks
    from loopwise.webhooks import redact

    with open_store() as store:
        hooks = list_webhooks(store)
    for hook in hooks:
        console.print(f"{hook.id}  {hook.url if reveal else redact(hook.url)}", highlight=False)


@webhook_app.command("rotate-secret")
def webhook_rotate_secret(webhook_id: Annotated[int, typer.Argument(help="The webhook's number.")]) -> None:
    """A new signing secret for a webhook, shown once; the old one stops at once."""
    from loopwise.monitoring.scheduling import rotate_webhook_secret

    with open_store() as store:
        hook = rotate_webhook_secret(store, webhook_id)
    console.print(f"webhook {hook.id}: new signing secret (shown once): {hook.secret}", highlight=False)


@webhook_app.command("delete")
def webhook_delete(webhook_id: Annotated[int, typer.Argument(help="The webhook's number.")]) -> None:
    """Stop sending alerts to a webhook."""
    from loopwise.monitoring.service import delete_webhook

    with open_store() as store:
        delete_webhook(store, webhook_id)
    console.print(f"webhook {webhook_id} deleted")
