"""``loopwise label``: labeling jobs for the private workforce."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, short_time

app = typer.Typer(help="Labeling jobs: create from a manifest or a data set, list, status, stop.")
job_app = typer.Typer(help="Labeling jobs: create, list, status, stop.")
app.add_typer(job_app, name="job")

JobName = Annotated[str, typer.Argument(help="The job's name.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


TeamOption = Annotated[str, typer.Option(help="The team whose workers label the items.")]
ManifestOption = Annotated[
    Path | None,
    typer.Option(help='Input manifest: JSON lines {"source": text, ...} (Ground Truth\'s) or a CSV.'),
]
TextFieldOption = Annotated[
    str, typer.Option(help="The manifest's field (or CSV column) that holds the text.")
]
DatasetOption = Annotated[
    str | None, typer.Option(help="Label a registered data set's split instead (NAME or NAME:VERSION).")
]
SplitOption = Annotated[str, typer.Option(help="The data set's split to label.")]
CategoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        help="A category as LABEL=short instruction, in keyboard order (1, 2, ...); repeat. "
        "Default: the course's sentiment categories 1, 0, -1.",
    ),
]
TitleOption = Annotated[str | None, typer.Option(help="The task's title workers see.")]
ShortInstructionsOption = Annotated[str | None, typer.Option(help="One line shown above every item.")]
FullInstructionsOption = Annotated[Path | None, typer.Option(help="A text file with the full instructions.")]
WorkersPerItemOption = Annotated[
    int, typer.Option(min=1, max=9, help="How many workers answer each item (1 to 9).")
]
TaskTimeLimitOption = Annotated[
    str, typer.Option(help="How long a worker holds an item before it goes back to the queue.")
]
LifetimeOption = Annotated[str, typer.Option(help="How long the job takes answers.")]
BlindOption = Annotated[
    bool, typer.Option("--blind/--no-blind", help="Whether workers never see each other's answers.")
]
AutoLabelOption = Annotated[
    bool,
    typer.Option(
        "--auto-label",
        help="Automated labeling: people label a random seed, a model labels what it reaches the "
        "target accuracy on, the most informative rest goes to people, round after round.",
    ),
]
TargetAccuracyOption = Annotated[
    float, typer.Option(help="Automated labeling: the machine labels' accuracy to reach.")
]
SeedShareOption = Annotated[float, typer.Option(help="Automated labeling: the random seed set's share.")]
BatchShareOption = Annotated[
    float, typer.Option(help="Automated labeling: the share of items sent to people per round.")
]
StrategyOption = Annotated[
    str, typer.Option(help="Automated labeling: margin, entropy, diversity or random.")
]
ModelsOption = Annotated[
    str,
    typer.Option(
        help="Automated labeling: the candidate models compared each round, comma-separated: tfidf, "
        "embeddings (the bundled MiniLM's sentence embeddings), finetune (from 2,000 answers on)."
    ),
]
AuditShareOption = Annotated[
    float,
    typer.Option(help="Automated labeling: the share of each batch drawn at random to validate thresholds."),
]


@job_app.command("create")
def create(
    name: JobName,
    team: TeamOption,
    manifest: ManifestOption = None,
    text_field: TextFieldOption = "source",
    dataset: DatasetOption = None,
    split: SplitOption = "train",
    category: CategoryOption = None,
    title: TitleOption = None,
    short_instructions: ShortInstructionsOption = None,
    full_instructions: FullInstructionsOption = None,
    workers_per_item: WorkersPerItemOption = 1,
    task_time_limit: TaskTimeLimitOption = "5m",
    lifetime: LifetimeOption = "10d",
    blind: BlindOption = True,
    auto_label: AutoLabelOption = False,
    target_accuracy: TargetAccuracyOption = 0.95,
    seed_share: SeedShareOption = 0.1,
    batch_share: BatchShareOption = 0.05,
    strategy: StrategyOption = "margin",
    models: ModelsOption = "tfidf,embeddings,finetune",
    audit_share: AuditShareOption = 0.5,
    as_json: AsJson = False,
) -> None:
    """Create a labeling job. The manifest is checked whole first: a malformed line is reported with its
    number and nothing is imported."""
    from loopwise._durations import parse_duration
    from loopwise.errors import LabelingError
    from loopwise.labeling.jobs import parse_category
    from loopwise.labeling.manifest import read_manifest
    from loopwise.labeling.planning import AutoLabelSettings
    from loopwise.labeling.service import create_labeling_job

    if (manifest is None) == (dataset is None):
        raise LabelingError("give --manifest FILE or --dataset NAME (with --split), one of the two")
    automated = (
        AutoLabelSettings(
            target_accuracy=target_accuracy,
            seed_share=seed_share,
            batch_share=batch_share,
            strategy=strategy,  # type: ignore[arg-type]
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            audit_share=audit_share,
        )
        if auto_label
        else None
    )
    categories = [parse_category(c) for c in category] if category else None
    full = full_instructions.read_text(encoding="utf-8") if full_instructions else ""
    with open_store() as store:
        items = read_manifest(manifest, text_field=text_field) if manifest is not None else None
        job = create_labeling_job(
            store,
            name,
            team=team,
            items=items,
            dataset=dataset,
            split=split,
            source=str(manifest) if manifest is not None else "",
            categories=categories,
            title=title,
            short_instructions=short_instructions,
            full_instructions=full,
            workers_per_item=workers_per_item,
            task_time_limit_s=int(parse_duration(task_time_limit, "--task-time-limit")),
            lifetime=timedelta(seconds=parse_duration(lifetime, "--lifetime")),
            blind=blind,
            auto_label=automated,
        )
    if as_json:
        print_json(job.to_dict())
        return
    console.print(
        f"labeling job {job.name} (id {job.id}): {job.items_count} items for team {job.team}, "
        f"{job.workers_per_item} worker(s) each; workers label at /label/jobs/{job.id}",
        highlight=False,
    )


@job_app.command("list")
def list_jobs(as_json: AsJson = False) -> None:
    """Every labeling job with its status and progress."""
    from loopwise.labeling.service import all_progress

    with open_store() as store:
        figures = all_progress(store)
    if as_json:
        print_json([f.to_dict() for f in figures])
        return
    table = Table("name", "id", "team", "status", "items done", "answers", "held", "created")
    for f in figures:
        table.add_row(
            f.job.name,
            str(f.job.id),
            f.job.team,
            f.job.status,
            f"{f.complete}/{f.items}",
            f"{f.answers}/{f.answers_needed} ({f.share_done:.0%})",
            str(f.held_now),
            short_time(f.job.created_at),
        )
    console.print(table)


@job_app.command("status")
def status(
    name: JobName, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """A job's progress and, per worker, answers, skips, median time, answers per hour and agreement
    with the other workers' majority; with automated labeling, each round's chosen model and candidates'
    validation accuracy, machine labels, certified threshold, and why the latest round labeled no more
    (--json: the rounds as stored, under "rounds"; null without automated labeling)."""
    from loopwise.cli._label_rounds import print_rounds
    from loopwise.labeling.rounds import stored_rounds
    from loopwise.labeling.service import find_job, progress

    with open_store() as store:
        figures = progress(store, find_job(store, name))
        rounds = stored_rounds(store, figures.job.id)
    if as_json:
        print_json({**figures.to_dict(), "rounds": rounds})
        return
    job = figures.job
    console.print(
        f"{job.name}: {job.status}; {figures.complete}/{figures.items} items complete, "
        f"{figures.answers}/{figures.answers_needed} answers ({figures.share_done:.0%}), "
        f"{figures.held_now} held now",
        highlight=False,
    )
    table = Table("worker", "answers", "skipped", "median s", "per hour", "agreement")
    for w in figures.workers:
        table.add_row(
            w.worker,
            str(w.answers),
            str(w.skipped),
            "-" if w.median_seconds is None else f"{w.median_seconds:.1f}",
            "-" if w.per_hour is None else f"{w.per_hour:.0f}",
            "-" if w.agreement is None else f"{w.agreement:.0%}",
        )
    console.print(table)
    if rounds is not None:
        print_rounds(rounds)


@job_app.command("stop")
def stop(name: JobName) -> None:
    """Stop a job: it takes no more answers; what was answered stays."""
    from loopwise.labeling.service import stop_job

    with open_store() as store:
        job = stop_job(store, name)
    console.print(f"{job.name}: {job.status}")


@job_app.command("consolidate")
def consolidate_command(
    name: JobName,
    method: Annotated[
        str, typer.Option(help="dawid-skene (each worker's confusion matrix learnt) or majority.")
    ] = "dawid-skene",
    as_json: AsJson = False,
) -> None:
    """Consolidate the answers: a label and a confidence per item, each worker's estimated quality, and
    the agreement (Krippendorff's alpha, Fleiss' kappa)."""
    from loopwise.labeling.output import consolidate_job

    with open_store() as store:
        result, report = consolidate_job(store, name, method)  # type: ignore[arg-type]
    if as_json:
        print_json({**result.to_dict(), "report": str(report)})
        return
    figures = result.to_dict()
    console.print(
        f"{name}: {figures['items']} items consolidated by {result.method}; Krippendorff's alpha "
        f"{_figure(figures['krippendorff_alpha'])}, Fleiss' kappa {_figure(figures['fleiss_kappa'])}",
        highlight=False,
    )
    table = Table("worker", "estimated quality")
    for worker, quality in figures["worker_quality"].items():
        table.add_row(worker, f"{quality:.1%}")
    console.print(table)
    console.print(f"report: {report}", highlight=False)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@job_app.command("export")
def export(
    name: JobName,
    output: Annotated[Path, typer.Option(help="Where to write the labeled items.")],
    format: Annotated[
        str, typer.Option(help="manifest (Ground Truth's output manifest), jsonl or csv.")
    ] = "manifest",
) -> None:
    """Write the labeled items: Ground Truth's output manifest (the label and its -metadata), CSV or JSON
    lines."""
    from loopwise.labeling.output import export_job

    with open_store() as store:
        count = export_job(store, name, output, format)  # type: ignore[arg-type]
    console.print(f"{count} labeled items written to {output}", highlight=False)


@job_app.command("to-dataset")
def to_dataset_command(
    name: JobName,
    dataset: Annotated[str, typer.Option(help="The data set to add a version to (made when new).")],
    train: Annotated[float, typer.Option(help="Share of the items for training.")] = 0.8,
    validation: Annotated[float, typer.Option(help="Share for validation.")] = 0.1,
    test: Annotated[float, typer.Option(help="Share for the test split.")] = 0.1,
) -> None:
    """Register the labeled items as a new data set version, split and ready for `loopwise train`."""
    from loopwise.labeling.output import to_dataset

    with open_store() as store:
        version = to_dataset(store, name, dataset, train=train, validation=validation, test=test)
    rows = ", ".join(f"{split} {info.rows}" for split, info in version.splits.items())
    console.print(f"data set {version.ref}: {rows}", highlight=False)


@job_app.command("auto-label")
def auto_label_command(name: JobName, as_json: AsJson = False) -> None:
    """Run a round of automated labeling now (the server runs them by itself as people finish each
    batch): compare the candidate models on people's answers, certify a threshold, label by machine
    what reaches it, send the next batch."""
    from loopwise.labeling.auto import run_round

    with open_store() as store:
        report = run_round(store, name)
    if as_json:
        print_json(report.to_dict())
        return
    certificate = report.certificate
    threshold = certificate.get("threshold")
    chosen = report.model_choice.get("chosen", "-")
    console.print(
        f"{name} round {report.round} ({report.model or 'no model: the job is complete'}, {chosen}): "
        f"{report.machine_labeled} labeled by machine at threshold "
        f"{'-' if threshold is None else f'{threshold:.3f}'}, {report.sent_to_people} sent to people "
        f"({report.audit} at random), {report.waiting} waiting",
        highlight=False,
    )
    if certificate.get("why_not_more"):
        console.print(f"why not more: {certificate['why_not_more']}", highlight=False)


@job_app.command("find-errors")
def find_errors(name: JobName, as_json: AsJson = False) -> None:
    """Flag likely wrong labels with cleanlab (out-of-sample probabilities of a TF-IDF model) and open a
    review for each; reviewers decide them at /review/jobs/ID."""
    from loopwise.labeling.label_errors import find_label_errors

    with open_store() as store:
        found = find_label_errors(store, name)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table = Table("item", "label", "suggested", "p(label)", "text", title=f"{len(found)} new reviews")
    for review in found[:50]:
        table.add_row(
            str(review.position),
            review.label,
            review.suggested,
            f"{review.self_confidence:.2f}",
            review.source[:80],
        )
    console.print(table)
