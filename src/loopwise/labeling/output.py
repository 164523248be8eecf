"""A job's results: consolidation stored on its items, the output manifest in Ground Truth's format,
CSV and JSON lines, and a new data set version ready for training.

The output manifest has one line per labeled item: the input line's fields, the label's index among the
job's categories under the job's name, and ``<job>-metadata`` with ``class-name``, ``confidence``,
``human-annotated`` (``yes``; ``no`` for a machine label), ``creation-date``, ``job-name``
(``labeling-job/<job>``) and ``type`` (``groundtruth/text-classification``), as Ground Truth writes it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopwise.errors import LabelingError
from loopwise.labeling.consolidation import Consolidated, Method, Vote, consolidate
from loopwise.labeling.lookup import find_job

if TYPE_CHECKING:
    from loopwise.data.records import DatasetVersion
    from loopwise.labeling.records import LabelingJob
    from loopwise.storage import Store

Format = Literal["manifest", "jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("manifest", "jsonl", "csv")


@dataclass(frozen=True)
class LabeledItem:
    position: int
    source: str
    extra: dict[str, Any]
    label: str
    confidence: float
    labeled_by: str
    #: a machine label's model version and the confidence threshold it passed
    machine_model: str | None
    machine_threshold: float | None
    answers: int
    labeled_at: datetime


def consolidate_job(store: Store, name: str, method: Method = "dawid-skene") -> tuple[Consolidated, Path]:
    """Consolidate the job's answers onto its items (complete items; every answered item once the job
    has ended) and write ``consolidation.json`` beside it; returns the figures and that file."""
    job = find_job(store, name)
    with store.uow() as uow:
        answers = uow.labeling.answers(job.id)
        complete = set(uow.labels.item_ids(job.id, status="complete"))
    ended = job.status != "InProgress"
    votes = [Vote(a.item_id, a.worker, a.label) for a in answers if ended or a.item_id in complete]
    if not votes:
        raise LabelingError(
            f"job {name} has no {'answers' if ended else 'complete items'} to consolidate yet"
        )
    result = consolidate(votes, job.labels, method, per_item=job.workers_per_item)
    with store.uow() as uow:
        uow.labels.set_labels(
            job.id, {i: (result.labels[i], result.confidence[i]) for i in result.labels}, by="human"
        )
    document = {
        **result.to_dict(),
        "job": job.name,
        "answers": len(votes),
        "at": datetime.now(UTC).isoformat(),
    }
    data = (json.dumps(document, indent=2) + "\n").encode()
    uri = store.artifacts.put_bytes(
        f"labeling/{job.name}/consolidation", "consolidation.json", data, replace=True
    )
    return result, store.artifacts.local_file(uri)


def labeled_items(store: Store, job: LabelingJob) -> list[LabeledItem]:
    with store.uow() as uow:
        return [LabeledItem(**row) for row in uow.labels.labeled_items(job.id)]


def _labeled(store: Store, job: LabelingJob) -> list[LabeledItem]:
    items = labeled_items(store, job)
    if not items:
        command = f"loopwise label job consolidate {job.name}"
        raise LabelingError(f"job {job.name} has no labeled item yet: run `{command}`")
    return items


def output_lines(job: LabelingJob, items: list[LabeledItem]) -> Iterator[dict[str, Any]]:
    """Ground Truth's output manifest, a line per labeled item."""
    index = {label: i for i, label in enumerate(job.labels)}
    for item in items:
        yield {
            "source": item.source,
            **item.extra,
            job.name: index[item.label],
            f"{job.name}-metadata": {
                "confidence": round(item.confidence, 4),
                "job-name": f"labeling-job/{job.name}",
                "class-name": item.label,
                "human-annotated": "yes" if item.labeled_by == "human" else "no",
                "creation-date": item.labeled_at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "type": "groundtruth/text-classification",
                **_machine(item),
            },
        }


def export_job(store: Store, name: str, path: Path, format: Format = "manifest") -> int:
    """Write the job's labeled items to ``path``; returns how many."""
    if format not in FORMATS:
        raise LabelingError(f"unknown format {format!r}: use {', '.join(FORMATS)}")
    job = find_job(store, name)
    items = _labeled(store, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        if format == "manifest":
            for line in output_lines(job, items):
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        elif format == "jsonl":
            for item in items:
                handle.write(json.dumps(_flat(item), ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=list(_flat(items[0])))
            writer.writeheader()
            for item in items:
                writer.writerow(_flat(item))
    partial.replace(path)  # a reader never sees half a file
    return len(items)


def _machine(item: LabeledItem) -> dict[str, Any]:
    if item.labeled_by != "machine":
        return {}
    return {"model-version": item.machine_model, "threshold": round(item.machine_threshold or 0.0, 4)}


def _flat(item: LabeledItem) -> dict[str, Any]:
    return {
        "position": item.position,
        "source": item.source,
        "label": item.label,
        "confidence": round(item.confidence, 4),
        "labeled_by": item.labeled_by,
        "machine_model": item.machine_model or "",
        "answers": item.answers,
    }


def to_dataset(
    store: Store, name: str, dataset: str, *, train: float = 0.8, validation: float = 0.1, test: float = 0.1
) -> DatasetVersion:
    """A new version of data set ``dataset`` from the job's labeled items (text and label), split for
    training (``train``/``validation``/``test`` shares; 0.8/0.1/0.1 unless told)."""
    from loopwise.data.service import import_rows

    job = find_job(store, name)
    items = _labeled(store, job)
    rows = ((item.source, item.label) for item in items)
    return import_rows(
        store, rows, name=dataset, labels=job.labels, train=train, validation=validation, test=test
    )
