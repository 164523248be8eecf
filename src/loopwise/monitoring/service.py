"""Monitoring's services: make a baseline from a data set and a model, and check captured traffic of an
endpoint against it (data quality and drift), per variant, into a JSON report."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.errors import DataFormatError, NotFoundError
from loopwise.monitoring import baseline as baselines
from loopwise.monitoring.checks import check_window
from loopwise.monitoring.scan import scan
from loopwise.monitoring.window import Context
from loopwise.registry.versions import check_name

if TYPE_CHECKING:
    from loopwise.monitoring.records import Alert, Schedule, Webhook
    from loopwise.storage import Store

log = logging.getLogger(__name__)

KINDS = ("data-quality", "drift", "model-quality")
#: the file of a monitoring run's report, in its artifact (``monitoring/reports/<endpoint>/<time>``)
REPORT_FILE = "report.json"


def baseline_key(name: str) -> str:
    """The artifact key of baseline ``name``."""
    return f"monitoring/baselines/{check_name(name, 'baseline name')}"


def create_baseline(
    store: Store,
    dataset_ref: str,
    model_ref: str,
    *,
    name: str | None = None,
    split: str = "train",
    max_texts: int = 5000,
    reference_size: int = 1000,
    progress: Callable[[str], None] | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Path:
    """Statistics and suggested constraints of ``split`` of the data set with the model's answers, as a
    baseline folder (replaced whole if it exists; a reader never sees half of one). When the model was
    trained on ``split``, its answers (predicted classes, confidences, embeddings) are taken on the
    held-out split instead. The model runs as endpoints serve it, on ``device`` in ``precision``
    (:func:`loopwise.serving.batch.load_placed`); ``statistics.json`` records where, under
    ``source.placement``. Returns the folder."""
    from loopwise import registry
    from loopwise.data.splits import read_split
    from loopwise.data.versions import parse_dataset_ref
    from loopwise.serving.batch import Placed, load_placed

    dataset_name, dataset_version = parse_dataset_ref(dataset_ref)
    with store.uow() as uow:
        dataset = uow.datasets.get(dataset_name, dataset_version)
        model = registry.resolve(uow, model_ref)
    name = name or f"{model.name}-v{model.version}"
    key = baseline_key(name)
    texts, _ = read_split(store.artifacts.local_file(dataset.split(split).uri))
    if len(texts) > max_texts:
        keep = np.sort(np.random.default_rng(0).choice(len(texts), max_texts, replace=False))
        texts = [texts[i] for i in keep]
    held_out = [name for name in ("validation", "test") if name in dataset.splits and name != split]
    # the model's answers come from texts it did not learn from: the held-out split when it was trained
    # on this split (on its training data it is surer than on any traffic)
    trained_on_it = model.dataset_version_id == dataset.id and split == "train" and held_out
    answered = (
        read_split(store.artifacts.local_file(dataset.split(held_out[0]).uri))[0] if trained_on_it else []
    )
    answered_from = held_out[0] if len(answered) >= 20 else split
    if answered_from == split:
        answered = texts
    if progress:
        progress(
            f"running {model.ref} on {len(answered)} texts of {dataset.ref} ({answered_from}); "
            f"text statistics from {len(texts)} texts ({split})"
        )
    # the model as endpoints serve it (its ONNX export for transformers models): the same answers and
    # sentence embeddings that capture records hold
    classifier = load_placed(store, model, device, precision)
    proba, embeddings = classifier.predict_with_embeddings(answered)
    evaluation = None
    if held_out:
        eval_texts, eval_labels = read_split(store.artifacts.local_file(dataset.split(held_out[0]).uri))
        if eval_texts:  # the same texts as the answers' when those came from the held-out split
            same = answered_from == held_out[0]
            evaluation = (eval_labels, proba if same else classifier.predict_proba(eval_texts))
    source = {
        "dataset": dataset.ref,
        "split": split,
        "answers_from": answered_from,
        "held_out_split": held_out[0] if held_out else None,
        "model": model.ref,
        "placement": Placed.of(classifier).as_dict(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    statistics, constraints, vocab, reference = baselines.compute(
        texts,
        proba,
        classifier.labels,
        embeddings,
        source=source,
        evaluation=evaluation,
        reference_size=reference_size,
    )
    with store.artifacts.writing(key, replace=True) as staged:
        baselines.save(staged, statistics, constraints, vocab, reference)
    return store.artifacts.local(key)


def load_baseline(store: Store, name: str) -> baselines.Baseline:
    key = baseline_key(name)
    if not store.artifacts.exists(key):
        raise NotFoundError(
            f"no baseline {name!r}; make one with "
            f"`loopwise monitor baseline --dataset D --model M --name {name}`"
        )
    return baselines.load(store.artifacts.local(key))


def run_monitor(
    store: Store,
    endpoint: str,
    baseline_name: str,
    *,
    hours: float = 1.0,
    variant: str | None = None,
    kinds: Sequence[str] = KINDS,
    now: datetime | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Check the endpoint's captured records of the last ``hours`` against the baseline, per variant;
    the report is returned and written to ``monitoring/reports/<endpoint>/<time>.json``. ``workers``:
    processes that read the capture files, ``progress`` the files read (see
    :func:`loopwise.monitoring.scan.scan`)."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise DataFormatError(f"unknown monitoring type {', '.join(unknown)}: use {', '.join(KINDS)}")
    baseline = load_baseline(store, baseline_name)
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    ground_truth = _ground_truth(store, endpoint) if "model-quality" in kinds else {}
    found = scan(
        store.artifacts.host_dir("capture"),
        endpoint,
        since,
        now,
        Context.of(baseline, ground_truth),
        variant=variant,
        workers=workers,
        progress=progress,
    )
    variants = {}
    matched: set[str] = set()
    for name, window in found.variants.items():
        matched |= window.matched
        variants[name] = check_window(baseline, window, kinds=kinds).to_dict()
    unmatched = sorted(set(ground_truth) - matched)
    if found.other_labels:
        log.warning(
            "%d captured records of %s have other labels than the baseline's", found.other_labels, endpoint
        )
    report = {
        "endpoint": endpoint,
        "baseline": baseline_name,
        "kinds": list(kinds),
        "window": {"start": since.isoformat(timespec="seconds"), "end": now.isoformat(timespec="seconds")},
        "skipped_lines": found.skipped_lines,
        "records_with_other_labels": found.other_labels,
        # ground truth whose inference id is in no captured record of the window: older traffic, an
        # uncaptured request, or an id the endpoint never gave
        "ground_truth_outside_window": {"count": len(unmatched), "examples": unmatched[:5]},
        "variants": variants,
        "message": "" if variants else f"no captured records of {endpoint} in the window",
    }
    key = f"monitoring/reports/{endpoint}/{now:%Y%m%dT%H%M%S}"
    data = (json.dumps(report, indent=2, default=float) + "\n").encode()
    report["path"] = store.artifacts.put_bytes(key, REPORT_FILE, data, replace=True)
    return report


def _ground_truth(store: Store, endpoint: str) -> dict[str, tuple[str, ...]]:
    """The true labels posted for the endpoint's inferences (feedback, later human review)."""
    with store.uow() as uow:
        items = uow.feedback.for_endpoint(endpoint)
    return {item.inference_id: item.labels for item in items if item.labels is not None}


def list_schedules(store: Store) -> list[Schedule]:
    """Every monitoring schedule."""
    with store.uow() as uow:
        return uow.monitoring.schedules()


def delete_schedule(store: Store, schedule_id: int) -> None:
    """Stop a monitoring schedule (its alerts stay)."""
    with store.uow() as uow:
        uow.monitoring.delete_schedule(schedule_id)


def list_alerts(
    store: Store, *, endpoint: str | None = None, status: str | None = None, limit: int = 100
) -> list[Alert]:
    """Alerts, newest first: of ``endpoint`` and with ``status`` when given, at most ``limit``."""
    with store.uow() as uow:
        return uow.monitoring.alerts(endpoint=endpoint, status=status, limit=limit)


def list_webhooks(store: Store) -> list[Webhook]:
    """The webhooks alerts are sent to."""
    with store.uow() as uow:
        return uow.monitoring.webhooks()


def delete_webhook(store: Store, webhook_id: int) -> None:
    """Stop sending alerts to a webhook."""
    with store.uow() as uow:
        uow.monitoring.delete_webhook(webhook_id)
