"""``loopwise demo``: the course loop on the reviews data, offline, on the embedded default.

Fetch and verify the data, prepare the course split, tune MiniLM's fine-tuning with loopwise's
default tuning (Bayesian search with the median stopping rule) on a compute budget counted in training
examples, train the best configuration again on the whole training split (the final fit, outside the
budget), evaluate that final model once on the test split, write the tuning report, register the final
model as the champion, then the course's Lab 2: the final model and the best trial's model as VariantA
and VariantB of an endpoint at 50/50, the course's three sentences sent 100 times over HTTP, per-variant
metrics and plots, all traffic shifted to VariantB without a restart, again, and the course's autoscaling
policy attached; then the endpoint watched: a baseline, the test split's reviews as traffic with their
labels as feedback, then the same reviews as a broken upstream system sends them, with the alerts this
raises and the monitoring report; then the course's Lab 3: reviews labeled by a private workforce, and the
endpoint's uncertain predictions sent to people through a flow definition's human loops; then the loop
closes by itself: a retraining pipeline triggered by those new labels warm-starts the champion on them,
compares, deploys the candidate as a canary, A/B tests it on live reviews and promotes or retires it; and the
console is left running at a printed local address.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopwise.cli._common import console, open_store, settings

if TYPE_CHECKING:
    from loopwise.cli._course_lab3 import LabelingOutcome
    from loopwise.cli._course_retrain import RetrainOutcome
    from loopwise.cli._course_review import ReviewOutcome
    from loopwise.evaluation.records import EvaluationRecord
    from loopwise.registry.records import ModelVersion
    from loopwise.storage import Store
    from loopwise.tuning.records import TuningJob
    from loopwise.tuning.spec import TuningSpec

COURSE_TEST_ACCURACY = 0.767


def demo(
    file: Annotated[
        Path | None, typer.Option(help="A local copy of the reviews CSV (verified, then cached).")
    ] = None,
    budget: Annotated[
        int,
        typer.Option(min=1, help="The tuning job's compute budget: training examples over all its trials."),
    ] = 12_000,
    per_trial: Annotated[
        int, typer.Option(min=1, help="The most training examples one trial may use.")
    ] = 4_000,
    max_trials: Annotated[int, typer.Option(min=1, help="The most trials the tuning job runs.")] = 8,
    final_epochs: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Epochs of the final fit (the best configuration on the whole training split, after the "
            "search; outside the budget). Default: the best trial's (3); 0: no final fit, the best "
            "trial's model is the champion.",
        ),
    ] = None,
    max_seq_length: Annotated[
        int, typer.Option(min=8, max=512, help="Longest input in tokens; longer texts are cut.")
    ] = 128,
    name: Annotated[str, typer.Option(help="Registered model name.")] = "reviews-sentiment",
    serve: Annotated[
        bool,
        typer.Option(help="At the end, leave the console running (Ctrl-C stops it); --no-serve to exit."),
    ] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The console's port on 127.0.0.1.")] = 8080,
) -> None:
    """Run the course loop: data -> course split -> tune MiniLM -> train the best configuration on the
    whole training split -> evaluate it on the test split -> tuning report -> register it as champion ->
    deploy two variants (Lab 2) -> monitor them -> label reviews with a private workforce and send
    uncertain predictions to people (Lab 3) -> a retraining pipeline that starts by itself from their
    labels: retrain, compare, canary, A/B test, promote -> the console left running."""
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews
    from loopwise.registry.service import point_alias
    from loopwise.tuning.report import write_tuning_report
    from loopwise.tuning.service import job_attrs

    started = time.monotonic()
    current = settings()
    console.rule("1. data")
    csv_path = fetch_reviews(current, source_file=file)
    console.print(f"reviews CSV verified: {csv_path}")
    with open_store() as store:
        dataset = prepare_reviews(store, csv_path)
        sizes = " / ".join(f"{s} {info.rows:,}" for s, info in dataset.splits.items())
        console.print(f"course split {dataset.ref}: {sizes}")

        console.rule("2. tune all-MiniLM-L6-v2 (default: Bayesian search + median-rule early stopping)")
        limits = _Limits(budget, per_trial, max_trials, max_seq_length, final_epochs)
        spec = _tuning_spec(store, dataset.ref, name, limits)
        job, trials = _tune(store, spec)

        which = "final" if spec.final_fit.enabled else "best"
        console.rule(f"3. the {which} model on the test split (evaluated once; tuning never saw it)")
        best, evaluation = _best_on_test(store, job, trials)

        console.rule("4. tuning report")
        attrs = job_attrs(store, job.name)
        report = store.artifacts.write_with(
            f"tuning/{job.name}/report", lambda folder: write_tuning_report(job, trials, folder, attrs=attrs)
        )

        console.rule("5. register")
        champion = point_alias(store, best.ref, "champion")
        console.print(f"{champion.ref} is {champion.name}@champion")

        labs = _course_labs(
            store, job, trials, champion.ref, dataset=dataset.ref, csv_path=csv_path, model=name,
            steps=max(1, per_trial // 16),
        )  # fmt: skip
    _print_outputs(report.html, evaluation.report_uri, labs)
    console.print(f"took {time.monotonic() - started:.0f} s")
    if serve:
        _serve_console(port)


@dataclass(frozen=True)
class _Labs:
    """What the course's labs (steps 6 to 10) left behind."""

    plots: list[Path]
    monitoring: Path
    labeling: LabelingOutcome
    reviewed: ReviewOutcome
    retrained: RetrainOutcome


@dataclass(frozen=True)
class _Limits:
    """The demo's options for its tuning job."""

    budget: int
    per_trial: int
    max_trials: int
    max_seq_length: int
    #: None: the best trial's epochs; 0: no final fit
    final_epochs: int | None


def _tuning_spec(store: Store, dataset: str, model: str, limits: _Limits) -> TuningSpec:
    """loopwise's default tuning spec on the course split, under a free job name, with the demo's budget
    and final fit."""
    from loopwise.tuning import builtin_spec_path, load_spec, parse_spec
    from loopwise.tuning.service import free_job_name

    default = load_spec(builtin_spec_path("default_bayesian")).to_dict()
    return parse_spec(
        {
            **default,
            "name": free_job_name(store, model),
            "dataset": dataset,
            "model_name": model,
            "static": {**default["static"], "max_seq_length": limits.max_seq_length},
            "max_trials": limits.max_trials,
            "max_examples_per_trial": limits.per_trial,
            "completion": {**default["completion"], "max_examples": limits.budget},
            "final_fit": {"enabled": limits.final_epochs != 0, "epochs": limits.final_epochs or None},
        },
        source="loopwise demo",
    )


def _tune(store: Store, spec: TuningSpec) -> tuple[TuningJob, list[Any]]:
    """Run the tuning job to its end with a progress bar; exits 1 when it ended without a model."""
    from loopwise.cli.tune import live_progress
    from loopwise.tuning.service import job_trials, run_job, start_job

    start_job(store, spec)
    console.print(
        f"tuning job [bold]{spec.name}[/bold]: up to {spec.max_trials} trials, "
        f"{spec.completion.max_examples:,} training examples in all, "
        f"at most {spec.max_examples_per_trial:,} a trial"
        + (", then a final fit of the best on the whole training split" if spec.final_fit.enabled else "")
    )
    with live_progress(spec) as watch:
        run_job(store, spec.name, progress=_print_trial, watch=watch)
    job, trials = job_trials(store, spec.name)
    if job.best_model_version_id is None:
        console.print(f"[red]the tuning job ended without a model: {job.error}[/red]")
        raise typer.Exit(1)
    return job, trials


def _best_on_test(store: Store, job: TuningJob, trials: list[Any]) -> tuple[ModelVersion, EvaluationRecord]:
    """The job's best model (the final fit's, else the best trial's) and its evaluation on the test split,
    printed with the best trial's validation accuracy; exits 1 when it was not tested."""
    from loopwise.tuning.final_fit import describe
    from loopwise.tuning.service import best_model, job_final_fit

    best, evaluation = best_model(store, job)
    if evaluation is None:
        console.print(f"[red]the best model was not evaluated on the test split: {job.error}[/red]")
        raise typer.Exit(1)
    trial = next(t for t in trials if t.number == job.best_trial)
    console.print(
        f"best trial {trial.number} ({trial.user_attrs.get('model_ref', '-')}): validation accuracy "
        f"{trial.value:.4f} on {trial.user_attrs.get('examples', 0):,} training examples",
        highlight=False,
    )
    fit = job_final_fit(store, job.name)
    if fit:
        console.print(describe(fit), highlight=False, soft_wrap=True)
    figures = _evaluation_figures(evaluation.report_uri)["metrics"]
    low, high = figures["accuracy"]["ci95"]
    console.print(
        f"{'final model' if best.params.get('final_fit') else 'best model'} {best.ref}: test accuracy "
        f"{figures['accuracy']['value']:.4f} (95% CI {low:.3f}-{high:.3f}; the course's model: "
        f"{COURSE_TEST_ACCURACY}), macro F1 {figures['macro_f1']['value']:.4f}",
        highlight=False,
    )
    return best, evaluation


def _course_labs(
    store: Store,
    job: TuningJob,
    trials: list[Any],
    champion: str,
    *,
    dataset: str,
    csv_path: Path,
    model: str,
    steps: int,
) -> _Labs:
    """Steps 6 to 10: the course's Lab 2, monitoring, Lab 3's labeling and human review, retraining."""
    from loopwise.cli._course_lab2 import ENDPOINT, course_lab2
    from loopwise.cli._course_lab3 import course_labeling
    from loopwise.cli._course_monitor import course_monitoring
    from loopwise.cli._course_retrain import course_retrain
    from loopwise.cli._course_review import course_review

    console.rule("6. deploy two variants, shift traffic, autoscale (the course's Lab 2)")
    other = _variant_b(store, job, trials, champion)
    plots = course_lab2(store, champion, other)

    console.rule("7. monitor the endpoint: baseline, data quality, drift, model quality, alerts")
    monitoring = course_monitoring(store, ENDPOINT, dataset, other)

    console.rule("8. label reviews with a private workforce (the labeling half of the course's Lab 3)")
    labeling = course_labeling(store, dataset)

    console.rule("9. send uncertain predictions to people (the human review half of the course's Lab 3)")
    reviewed = course_review(store, ENDPOINT)

    console.rule(
        "10. the loop closes: a pipeline retrains from the new labels, canaries, A/B tests, promotes"
    )
    retrained = course_retrain(
        store, csv_path=csv_path, dataset=dataset, tuning_job=job.name, model=model,
        labeling_job=labeling.job, flow=reviewed.flow, endpoint=ENDPOINT, steps=steps,
    )  # fmt: skip
    return _Labs(plots, monitoring, labeling, reviewed, retrained)


def _variant_b(store: Store, job: TuningJob, trials: list[Any], champion: str) -> str:
    """Lab 2's VariantB beside the champion: the best trial's model when the champion is its final fit
    (same configuration, the search's share of the data: the A/B shows what the final fit bought), else
    the runner-up trial's model, else the champion again."""
    from loopwise.tuning.service import best_model, runner_up

    best, _ = best_model(store, job)
    trial = next(t for t in trials if t.number == job.best_trial)
    if best.params.get("final_fit") and trial.user_attrs.get("model_ref"):
        return str(trial.user_attrs["model_ref"])
    second = runner_up(store, job, trials)
    return str(second.ref) if second is not None else champion


def _print_outputs(report_html: Path, evaluation_uri: str, labs: _Labs) -> None:
    """Where everything the main job wrote is, and how its retraining pipeline ended."""
    console.rule("done")
    console.print(f"tuning report: {report_html}")
    console.print(f"report: {_local(evaluation_uri)}")
    console.print(f"evaluation.json: {_local(evaluation_uri).parent / 'evaluation.json'}")
    for plot in labs.plots:
        console.print(f"per-variant metrics: {plot}")
    console.print(f"monitoring report: {labs.monitoring}")
    console.print(f"labeling output manifest: {labs.labeling.manifest} (data set {labs.labeling.dataset})")
    console.print(
        f"human loops of flow {labs.reviewed.flow}: {len(labs.reviewed.loops)} completed; "
        f"their answers as training data: {labs.reviewed.examples}"
    )
    console.print(
        "labeling UI: `loopwise server`, then http://127.0.0.1:8080/label (workers and reviewers) and "
        "/console/labeling"
    )
    retrained = labs.retrained
    outputs = retrained.run.outputs()
    console.print(
        f"pipeline run {retrained.run.id} ({retrained.pipeline}): {retrained.run.status}; "
        + (
            f"{outputs['promote']['model']} {outputs['promote']['outcome']}"
            if "promote" in outputs
            else f"{retrained.run.error}"
        )
    )


def _serve_console(port: int) -> None:
    """The console on 127.0.0.1 until Ctrl-C, with an admin account to sign in with (made when there is
    none, its temporary password shown once)."""
    import socket

    import uvicorn

    from loopwise.app import create_app
    from loopwise.workforce import service as workforce

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with open_store() as store:
        if not workforce.has_admin(store):
            _, password = workforce.create_worker(store, "admin@loopwise.local", role="admin")
            console.print(
                f"admin account admin@loopwise.local, temporary password [bold]{password}[/bold] "
                "(shown once; you choose your own at the first sign-in)"
            )
        console.rule("the console")
        console.print(
            f"the loop: http://127.0.0.1:{port}/console/loop  (labeling: /label; Ctrl-C stops the server)",
            highlight=False,
        )
        uvicorn.run(create_app(store, freeze_heap=True), host="127.0.0.1", port=port, log_level="warning")


def _print_trial(trial: Any) -> None:
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
    )
    console.print(
        f"trial {trial.number}: {trial.state.name.lower()} val_acc {value} "
        f"({trial.user_attrs.get('examples', 0):,} examples; {params})",
        highlight=False,
    )


def _local(uri: str) -> Path:
    """This host's copy of an artifact's file (the demo's store is the settings' store)."""
    from loopwise.cli._common import settings
    from loopwise.storage.artifacts import open_artifacts

    return open_artifacts(settings()).local_file(uri)


def _evaluation_figures(report_uri: str) -> dict[str, Any]:
    import json

    return dict(json.loads((_local(report_uri).parent / "evaluation.json").read_text(encoding="utf-8")))
