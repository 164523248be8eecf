"""Monitoring the course's endpoint, as a step of the main job: a baseline of the champion on the training
split, the test split's reviews as traffic with their true labels as feedback (checked: data quality,
drift, model quality beside the label-free estimate), then the same reviews as a broken upstream system
would send them (cut short, a tenth garbled), which raises alerts; the HTML report of both."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.storage import Store

#: a broken upstream system: reviews cut at this many characters, every GARBLED_EVERY-th one garbled
CUT_AT = 40
GARBLED_EVERY = 10


def course_monitoring(store: Store, endpoint: str, dataset_ref: str, model_ref: str) -> Path:
    """Watch ``endpoint`` (deployed, serving ``model_ref``) against a baseline of ``model_ref`` on
    ``dataset_ref``'s training split; returns the monitoring report's HTML page."""
    from loopwise.app import background_server
    from loopwise.client import Client
    from loopwise.data.service import get_dataset
    from loopwise.data.splits import read_split
    from loopwise.data.versions import parse_dataset_ref
    from loopwise.monitoring.report import write_report
    from loopwise.monitoring.scheduling import record_alerts
    from loopwise.monitoring.service import create_baseline, run_monitor
    from loopwise.workforce.service import program_token

    name = f"{endpoint}-course"
    folder = create_baseline(
        store, dataset_ref, model_ref, name=name, max_texts=2000, progress=lambda m: console.print(m)
    )
    console.print(f"baseline {name}: {folder}")
    dataset = get_dataset(store, *parse_dataset_ref(dataset_ref))
    texts, labels = read_split(store.artifacts.local_file(dataset.split("test").uri))
    broken = [
        "#### %% 0x3f 0x00 $$ ####" if i % GARBLED_EVERY == 0 else text[:CUT_AT]
        for i, text in enumerate(texts)
    ]
    with (
        background_server(store) as (url, app),
        Client(url, token=program_token(store, "course-main-job")) as client,
    ):
        for phase, sent in (("the test split's reviews", texts), ("a broken upstream system", broken)):
            started = datetime.now(UTC)
            answers = [client.predict(endpoint, [text]) for text in sent]
            if sent is texts:  # their true labels arrive later, as feedback
                feedback = [
                    {"inference_id": a["inference_id"], "label": label}
                    for a, label in zip(answers, labels, strict=True)
                ]
                client.feedback(endpoint, feedback)
            writer = app.state.plane.capture_writers.get(endpoint)
            if writer is not None:
                writer.flush()
            time.sleep(1.0)  # the window ends after the last record
            hours = (datetime.now(UTC) - started).total_seconds() / 3600
            report = run_monitor(store, endpoint, name, hours=hours)
            alerts = record_alerts(store, report)
            _print(phase, len(sent), report, len(alerts))
    return write_report(store, endpoint)


def _print(phase: str, sent: int, report: dict[str, Any], alerts: int) -> None:
    console.print(f"{phase}: {sent} requests")
    for variant, found in report["variants"].items():
        quality = found.get("model_quality") or {}
        figures = f"estimated accuracy {quality['estimated_accuracy']:.3f}" if quality else ""
        if "accuracy" in quality:
            figures += f", accuracy {quality['accuracy']:.3f} on {quality['labelled']} labelled"
        console.print(
            f"  {variant}: {found['texts']} texts, {found['status']} ({found['message']}); {figures}"
        )
        for violation in found["violations"][:6]:
            console.print(f"    - {violation['message']}", highlight=False)
    if alerts:
        console.print(f"  {alerts} alert(s) recorded: `loopwise monitor alerts`")
