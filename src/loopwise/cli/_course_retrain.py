"""The loop closing by itself, as the main job's last step: a retraining pipeline whose trigger is the new
labels of the workforce's labeling job and the reviewers' human loops. The server starts it on its own;
it gathers those labels with the course split's training rows into a new data set version, warm-starts
the champion with the tuning job's best hyperparameters on it, compares the candidate with the champion on
the test split, deploys it on the course's endpoint as a canary and on to an even A/B split, waits for
the sequential test on live reviews (the course data's reviews that its split left out, their ratings
arriving as ground truth), and promotes or retires it. The main job only sends the traffic and prints
what the pipeline does."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.pipelines.records import PipelineRun
    from loopwise.storage import Store

PIPELINE = "course-retrain"
#: the A/B test's planned size: predictions with feedback in each arm before "no significant difference"
MAX_LABELLED = 400

TEMPLATE = """\
name: {pipeline}
# starts by itself once new labels arrive from the workforce or the reviewers
triggers:
  - new_labels: 1
steps:
  - name: gather
    uses: gather-labels
    with: {{dataset: reviews-retrain, base: "{dataset}", labeling_jobs: [{job}], review_flows: [{flow}]}}
  - name: train
    uses: train
    with: {{dataset: "${{gather.dataset}}", tuning_job: {tuning_job}, base_model: "{model}@champion",
           model_name: {model}, params: {{epochs: 1, steps_per_epoch: {steps}}}}}
  - name: compare
    uses: compare
    with: {{champion: "{model}@champion", candidate: "${{train.model}}", dataset: "{dataset}"}}
  - name: canary
    uses: canary
    with: {{endpoint: {endpoint}, model: "${{train.model}}", percent: 10, share: 50, bake: 5s,
           min_requests: 5, poll: 0.5s, timeout: 10m}}
  - name: ab
    uses: ab-test
    with: {{endpoint: {endpoint}, candidate: "${{canary.variant}}", config: "${{canary.config}}",
           min_effect: 0.02, max_labelled: {max_labelled}, poll: 1s, timeout: 30m}}
  - name: promote
    uses: promote
    with: {{model: "${{train.model}}", comparison: "${{compare.verdict}}", endpoint: {endpoint},
           variant: "${{canary.variant}}", ab: "${{ab.decision}}"}}
"""


@dataclass(frozen=True)
class RetrainOutcome:
    pipeline: Path
    run: PipelineRun


def course_retrain(
    store: Store,
    *,
    csv_path: Path,
    dataset: str,
    tuning_job: str,
    model: str,
    labeling_job: str,
    flow: str,
    endpoint: str,
    steps: int,
) -> RetrainOutcome:
    from loopwise.app import background_server
    from loopwise.client import Client
    from loopwise.pipelines import service
    from loopwise.workforce.service import program_token

    text = TEMPLATE.format(
        pipeline=PIPELINE, dataset=dataset, job=labeling_job, flow=flow, tuning_job=tuning_job,
        model=model, steps=steps, endpoint=endpoint, max_labelled=MAX_LABELLED,
    )  # fmt: skip
    uri = store.artifacts.put_bytes(f"pipelines/{PIPELINE}", f"{PIPELINE}.yaml", text.encode(), replace=True)
    path = store.artifacts.local_file(uri)
    spec, _ = service.create_pipeline(store, path)
    console.print(f"pipeline {spec.name}: {' -> '.join(s.name for s in spec.order())} ({path})")
    known = {r.id for r in service.list_runs(store, PIPELINE, limit=1000)}
    traffic = _live_reviews(store, csv_path, dataset)
    with (
        background_server(store, pipeline_interval_s=2.0) as (url, _),
        Client(url, token=program_token(store, "course-main-job")) as client,
    ):
        run = _wait_started(store, known)
        console.print(f"run {run.id} started by itself: {run.trigger}")
        shown: dict[str, str] = {}
        sent = 0
        while run.status == "Running":
            for _ in range(20):  # live reviews, their ratings arriving as ground truth
                text, label = traffic[sent % len(traffic)]
                answer = client.predict(endpoint, [text])
                client.feedback(endpoint, [{"inference_id": answer["inference_id"], "label": label}])
                sent += 1
            run = service.get_run(store, run.id)
            _print_changes(run, shown)
        _print_changes(run, shown)
    console.print(f"{sent} live reviews sent while the pipeline ran, each with its rating as feedback")
    if run.status != "Succeeded":
        console.print(f"[red]run {run.id} {run.status}: {run.error}[/red]")
    return RetrainOutcome(path, run)


def _live_reviews(store: Store, csv_path: Path, dataset: str) -> list[tuple[str, str]]:
    """The course CSV's reviews that the course split left out, shuffled, with their sentiment."""
    import numpy as np

    from loopwise.data.recipes import reviews_splits
    from loopwise.data.service import get_dataset
    from loopwise.data.splits import read_split
    from loopwise.data.versions import parse_dataset_ref

    found = get_dataset(store, *parse_dataset_ref(dataset))
    used: set[str] = set()
    for split in found.splits:
        used.update(read_split(store.artifacts.local_file(found.split(split).uri))[0])
    everything = reviews_splits(
        csv_path, balance=False, dropna="needed", train=1.0, validation=0.0, test=0.0
    ).frames["train"]
    rows = [(t, y) for t, y in zip(everything["text"], everything["label"], strict=True) if t not in used]
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


def _wait_started(store: Store, known: set[int], timeout_s: float = 120.0) -> PipelineRun:
    from loopwise.pipelines import service

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = [r for r in service.list_runs(store, PIPELINE, limit=1000) if r.id not in known]
        if fresh:
            return fresh[0]
        time.sleep(0.5)
    raise RuntimeError(f"pipeline {PIPELINE} did not start by itself within {timeout_s:.0f} s")


def _print_changes(run: PipelineRun, shown: dict[str, str]) -> None:
    """Each step as it starts and ends: its state, and its outputs or error once it has them."""
    for step in run.steps:
        if shown.get(step.name) == step.status or step.status == "Pending":
            continue
        shown[step.name] = step.status
        if step.status == "Running":
            console.print(f"  {step.name}: running", highlight=False)
        elif step.status == "Succeeded":
            console.print(f"  {step.name}: succeeded {_brief(step.outputs or {})}", highlight=False)
        else:
            console.print(f"  [red]{step.name}: {step.status}: {step.error}[/red]", highlight=False)


def _brief(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in outputs.items() if k not in ("report",))
