"""``loopwise review``: flow definitions and human loops (the Augmented AI part)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, short_time
from loopwise.review.conditions import flow_condition
from loopwise.review.loops import describe_flow

if TYPE_CHECKING:
    from loopwise.review.records import Flow

app = typer.Typer(help="Human review: flow definitions, human loops, and their answers as training data.")
flow_app = typer.Typer(help="Flow definitions: who reviews, the task, and when predictions go to people.")
loop_app = typer.Typer(help="Human loops: start, describe, list, stop, delete.")
app.add_typer(flow_app, name="flow")
app.add_typer(loop_app, name="loop")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LoopName = Annotated[str, typer.Argument(help="The human loop's name.")]
FlowName = Annotated[str, typer.Argument(help="The flow definition's name.")]


@flow_app.command("create")
def flow_create(
    name: FlowName,
    team: Annotated[str, typer.Option(help="The team whose members work the loops.")],
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category", help="LABEL=short instruction, in keyboard order; repeat. Default: the course's."
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="The task's title.")] = None,
    answer_key: Annotated[
        str, typer.Option(help="The answer's key in output.json (the course: sentiment).")
    ] = "",
    task_count: Annotated[int, typer.Option(min=1, max=9, help="Workers who answer each loop.")] = 1,
    task_time_limit: Annotated[str, typer.Option(help="How long a worker holds a loop's task.")] = "5m",
    lifetime: Annotated[str, typer.Option(help="How long a loop waits for answers before it fails.")] = "1d",
    confidence_below: Annotated[
        float | None, typer.Option(help="Start a loop when the top class's probability is below this.")
    ] = None,
    margin_below: Annotated[
        float | None, typer.Option(help="... when the top two are closer than this.")
    ] = None,
    entropy_above: Annotated[
        float | None, typer.Option(help="... when the normalized entropy is above this.")
    ] = None,
    class_below: Annotated[
        list[str] | None, typer.Option("--class-below", help="CLASS=THRESHOLD: per predicted class; repeat.")
    ] = None,
    predicted_in: Annotated[
        list[str] | None,
        typer.Option("--predicted-in", help="... when the predicted class is this one; repeat."),
    ] = None,
    audit: Annotated[float | None, typer.Option(help="... for a random PERCENT of predictions.")] = None,
    combine: Annotated[
        str, typer.Option(help="How the options above combine: any (Or) or all (And).")
    ] = "any",
    conditions: Annotated[
        Path | None, typer.Option(help="A YAML or JSON file with a condition tree (all / any), instead.")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="A URL that gets each loop's status changes.")] = None,
    max_open_loops: Annotated[
        int | None,
        typer.Option(
            help="At most this many loops open; when full, a more uncertain prediction replaces one."
        ),
    ] = None,
    max_loops_per_hour: Annotated[
        int | None, typer.Option(help="At most this many new loops in any rolling hour (replacements count).")
    ] = None,
    max_loops_per_invocation: Annotated[
        int, typer.Option(help="At most this many loops from one request (its most uncertain texts).")
    ] = 100,
    as_json: AsJson = False,
) -> None:
    """Create a flow definition. With no condition, every prediction of an attached endpoint goes to
    people; with no budget, every one that fires gets a loop."""
    from loopwise._durations import parse_duration
    from loopwise.review.service import create_flow

    thresholds = {"confidence_below": confidence_below, "margin_below": margin_below}
    thresholds |= {"entropy_above": entropy_above, "audit": audit}
    tree = _condition_tree(thresholds, class_below, predicted_in, combine, conditions)
    with open_store() as store:
        flow = create_flow(
            store, name, team=team, **_task(category, title, answer_key), task_count=task_count,
            task_time_limit_s=int(parse_duration(task_time_limit, "--task-time-limit")),
            lifetime_s=int(parse_duration(lifetime, "--lifetime")), conditions=tree, webhook=webhook,
            max_open_loops=max_open_loops, max_loops_per_hour=max_loops_per_hour,
            max_loops_per_invocation=max_loops_per_invocation,
        )  # fmt: skip
    _print_flow(flow, tree is not None, as_json)


def _condition_tree(
    thresholds: dict[str, float | None],
    class_below: list[str] | None,
    predicted_in: list[str] | None,
    combine: str,
    conditions: Path | None,
) -> Any:
    """The activation conditions from ``flow create``'s options (one leaf per option given, combined by
    ``combine``) or read from the ``--conditions`` file; None when there are none."""
    import yaml

    from loopwise.errors import ReviewError

    leaves: list[dict[str, Any]] = [{key: value} for key, value in thresholds.items() if value is not None]
    if class_below:
        pairs = [c.partition("=") for c in class_below]
        try:
            leaves.append({"class_below": {label: float(t) for label, _, t in pairs}})
        except ValueError:
            raise ReviewError(f"--class-below takes CLASS=THRESHOLD, got {class_below}") from None
    if predicted_in:
        leaves.append({"predicted_in": list(predicted_in)})
    if combine not in ("any", "all"):
        raise ReviewError(f"--combine: any or all, got {combine!r}")
    if conditions is not None:
        if leaves:
            raise ReviewError("give --conditions FILE or the condition options, not both")
        return yaml.safe_load(conditions.read_text(encoding="utf-8"))
    if leaves:
        return leaves[0] if len(leaves) == 1 else {combine: leaves}
    return None


def _task(category: list[str] | None, title: str | None, answer_key: str) -> dict[str, Any]:
    """The task people see: the categories given, or the course's with its title and instructions."""
    from loopwise.labeling.jobs import (
        COURSE_CATEGORIES,
        COURSE_FULL_INSTRUCTIONS,
        COURSE_TITLE,
        parse_category,
    )

    course = not category
    return {
        "categories": [parse_category(c) for c in category] if category else list(COURSE_CATEGORIES),
        "title": title or (COURSE_TITLE if course else None),
        "short_instructions": "Check the model's answer, preselected; change it if it is wrong."
        if course
        else "",
        "full_instructions": COURSE_FULL_INSTRUCTIONS if course else "",
        "answer_key": answer_key or ("sentiment" if course else "label"),
    }


def _print_flow(flow: Flow, has_conditions: bool, as_json: bool) -> None:
    if as_json:
        secret = {"webhook_secret": flow.webhook_secret} if flow.webhook_secret else {}
        print_json({**describe_flow(flow, reveal_webhook=True), **secret})
        return
    shown = json.dumps(flow_condition(flow).to_dict()) if has_conditions else "every prediction"
    kept = (
        f"; at most {flow.max_open_loops or 'any number of'} open, "
        f"{flow.max_loops_per_hour or 'any number'} new an hour"
        if flow.max_open_loops or flow.max_loops_per_hour
        else ""
    )
    console.print(
        f"flow definition {flow.name}: team {flow.team}, {flow.task_count} worker(s) a loop; "
        f"starts on {shown}{kept}"
    )
    if flow.webhook_secret:
        console.print(f"webhook signing secret (shown once): {flow.webhook_secret}", highlight=False)


Reveal = Annotated[
    bool, typer.Option("--reveal", help="Show webhook URLs whole (they are secrets: an admin's eyes only).")
]


@flow_app.command("list")
def flow_list(as_json: AsJson = False, reveal: Reveal = False) -> None:
    """Every flow definition with its loops by status (webhook URLs redacted unless --reveal)."""
    from loopwise.review.service import list_flows, loop_counts

    with open_store() as store:
        flows = list_flows(store)
        counts = loop_counts(store, flows)
    if as_json:
        print_json([{**describe_flow(f, reveal_webhook=reveal), "loops": counts[f.name]} for f in flows])
        return
    table = Table("flow", "status", "team", "workers a loop", "conditions", "loops")
    for f in flows:
        loops = ", ".join(f"{n} {s}" for s, n in sorted(counts[f.name].items())) or "-"
        shown = describe_flow(f)["activation_conditions"]
        conditions = "-" if shown is None else json.dumps(shown)
        table.add_row(f.name, f.status, f.team, str(f.task_count), conditions, loops)
    console.print(table)


@flow_app.command("describe")
def flow_describe(name: FlowName, reveal: Reveal = False) -> None:
    """A flow definition as JSON, with its loops' counts (its webhook URL redacted unless --reveal)."""
    from loopwise.review.service import find_flow, loop_counts

    with open_store() as store:
        flow = find_flow(store, name)
        counts = loop_counts(store, [flow])[flow.name]
    print_json({**describe_flow(flow, reveal_webhook=reveal), "loops": counts})


@flow_app.command("rotate-secret")
def flow_rotate_secret(name: FlowName) -> None:
    """A new signing secret for the flow's webhook, shown once; the old one stops at once."""
    from loopwise.review.service import rotate_webhook_secret

    with open_store() as store:
        flow = rotate_webhook_secret(store, name)
    console.print(f"flow {flow.name}: new webhook signing secret (shown once): {flow.webhook_secret}")


@flow_app.command("delete")
def flow_delete(name: FlowName) -> None:
    """Stop the flow's loops in progress and take no new ones; everything stays readable."""
    from loopwise.review.service import delete_flow

    with open_store() as store:
        flow = delete_flow(store, name)
    console.print(f"flow definition {flow.name}: {flow.status}")


@loop_app.command("start")
def loop_start(
    name: LoopName,
    flow: Annotated[str, typer.Option(help="The flow definition.")],
    input_content: Annotated[
        str,
        typer.Option("--input", help='The input content, JSON: {"taskObject": text, "initialValue": label}.'),
    ],
) -> None:
    """Start a human loop (the same name with the same input again returns it)."""
    from loopwise.review.service import start_loop

    with open_store() as store:
        loop, made = start_loop(store, name, flow, input_content)
    console.print(f"human loop {loop.name}: {loop.status}" + ("" if made else " (it existed already)"))


@loop_app.command("describe")
def loop_describe(
    name: LoopName, output: Annotated[bool, typer.Option("--output", help="Print output.json.")] = False
) -> None:
    """A human loop as JSON (Augmented AI's DescribeHumanLoop), or its output.json."""
    from loopwise.review.output import read_output
    from loopwise.review.service import describe_loop

    with open_store() as store:
        loop = describe_loop(store, name)
    print_json(read_output(store, loop) if output else loop.to_dict())


@loop_app.command("list")
def loop_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow's loops.")] = None,
    status: Annotated[
        str | None, typer.Option(help="InProgress, Completed, Failed, Stopping or Stopped.")
    ] = None,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Newest first.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    as_json: AsJson = False,
) -> None:
    """Human loops, oldest first unless told."""
    from loopwise.review.service import list_loops

    with open_store() as store:
        loops, _ = list_loops(store, flow=flow, status=status, descending=newest_first, max_results=limit)
    if as_json:
        print_json([loop.to_dict() for loop in loops])
        return
    table = Table("loop", "flow", "status", "created", "inference", "text")
    for loop in loops:
        text = loop.input.get("taskObject", "")
        table.add_row(
            loop.name, loop.flow, loop.status, short_time(loop.created_at), loop.inference_id or "-",
            text if len(text) <= 60 else text[:57] + "...",
        )  # fmt: skip
    console.print(table)


@loop_app.command("stop")
def loop_stop(name: LoopName) -> None:
    """Stop a loop in progress: a worker's hold on it is withdrawn, a later answer refused."""
    from loopwise.review.service import stop_loop

    with open_store() as store:
        loop = stop_loop(store, name)
    console.print(f"human loop {loop.name}: {loop.status}")


@loop_app.command("delete")
def loop_delete(name: LoopName) -> None:
    """Delete a loop that has ended (its output.json stays)."""
    from loopwise.review.service import delete_loop

    with open_store() as store:
        delete_loop(store, name)
    console.print(f"human loop {name}: deleted")


@app.command("export")
def export(
    flow: FlowName,
    output: Annotated[Path | None, typer.Option(help="Write the completed loops as JSON lines here.")] = None,
    as_dataset: Annotated[
        str | None, typer.Option("--as-dataset", help="Make a new version of this data set from them.")
    ] = None,
) -> None:
    """The completed loops' answers as training data: JSON lines (text, label, where it came from) or a new
    data set version."""
    from loopwise.errors import ReviewError
    from loopwise.review import output as output_

    if output is None and as_dataset is None:
        raise ReviewError("give --output FILE, --as-dataset NAME, or both")
    with open_store() as store:
        if output is not None:
            count = output_.export(store, flow, output)
            console.print(f"{count} completed loop(s) of {flow} written to {output}")
        if as_dataset is not None:
            version = output_.export_dataset(store, flow, as_dataset)
            console.print(f"data set {version.ref}: the completed loops of {flow} (their labels from people)")
