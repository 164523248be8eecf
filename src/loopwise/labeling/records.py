"""Labeling jobs, their categories, tasks, assignments and answers, manifest items and label-error reviews,
as storage returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

JobStatus = Literal["InProgress", "Completed", "Stopped", "Expired"]


#: an item needs answers (open) or has all it needs (complete)
ItemStatus = Literal["open", "complete"]


@dataclass(frozen=True)
class Category:
    """A label a worker can choose; its description is the short instruction shown beside it."""

    label: str
    description: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "description": self.description}


@dataclass(frozen=True)
class LabelingJob:
    id: int
    name: str
    title: str
    team: str
    categories: tuple[Category, ...]
    short_instructions: str
    full_instructions: str
    workers_per_item: int
    task_time_limit_s: int
    expires_at: datetime
    blind: bool
    status: JobStatus
    source: str
    items_count: int
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.categories]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "team": self.team,
            "categories": [c.to_dict() for c in self.categories],
            "short_instructions": self.short_instructions,
            "full_instructions": self.full_instructions,
            "workers_per_item": self.workers_per_item,
            "task_time_limit_s": self.task_time_limit_s,
            "expires_at": self.expires_at.isoformat(),
            "blind": self.blind,
            "status": self.status,
            "source": self.source,
            "items_count": self.items_count,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


@dataclass(frozen=True)
class Task:
    """An item a worker holds until ``expires_at``: answer it once (submit), skip it, or let it expire."""

    assignment_id: int
    item_id: int
    position: int
    source: str
    expires_at: datetime
    #: the value shown preselected (a human loop's model prediction), if any
    initial: str | None = None
    #: other workers' answers so far, shown only when the job is not blind
    others: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment_id": self.assignment_id,
            "item_id": self.item_id,
            "position": self.position,
            "source": self.source,
            "expires_at": self.expires_at.isoformat(),
            "initial": self.initial,
            "others": list(self.others),
        }


@dataclass(frozen=True)
class Assignment:
    """A worker's hold on an item, whatever became of it: held, submitted, skipped or expired."""

    id: int
    job_id: int
    worker_id: int
    state: Literal["held", "submitted", "skipped", "expired", "withdrawn"]
    expires_at: datetime
    task: Task

    def why_not_held(self, now: datetime) -> str:
        """Why an answer or a skip of this assignment is refused at ``now``."""
        if self.state == "submitted":
            return "this item's answer was submitted already: an answer is stored once"
        if self.state == "skipped":
            return "this item was skipped"
        if self.state == "withdrawn":
            return "this task was withdrawn: its human loop was stopped or ended; take the next one"
        if self.state == "expired" or self.expires_at <= now:
            return "the time limit for this item ran out and it went back to the queue: take the next one"
        return "this assignment is a live hold"


@dataclass(frozen=True)
class Answer:
    """A submitted answer (a worker sees only their own)."""

    assignment_id: int
    item_id: int
    position: int
    worker: str
    label: str
    submitted_at: datetime
    seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment_id": self.assignment_id,
            "item_id": self.item_id,
            "position": self.position,
            "worker": self.worker,
            "label": self.label,
            "submitted_at": self.submitted_at.isoformat(),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class WorkerFigures:
    worker: str
    answers: int
    skipped: int
    median_seconds: float | None
    #: answers per hour of the time between their first and last answer
    per_hour: float | None
    #: share of their answers that agree with the majority of the other workers on the same item
    agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Progress:
    job: LabelingJob
    items: int
    complete: int
    answers: int
    answers_needed: int
    held_now: int
    #: automated labeling: items the machine labeled, and items held back from people for now
    machine_labeled: int = 0
    waiting: int = 0
    workers: tuple[WorkerFigures, ...] = field(default_factory=tuple)

    @property
    def share_done(self) -> float:
        return self.answers / self.answers_needed if self.answers_needed else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.to_dict(),
            "items": self.items,
            "complete": self.complete,
            "answers": self.answers,
            "answers_needed": self.answers_needed,
            "held_now": self.held_now,
            "machine_labeled": self.machine_labeled,
            "waiting": self.waiting,
            "share_done": round(self.share_done, 4),
            "workers": [w.to_dict() for w in self.workers],
        }


@dataclass(frozen=True)
class ManifestItem:
    #: the item's line in the manifest (from 1; a CSV's header is line 1)
    position: int
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Review:
    id: int
    job_id: int
    item_id: int
    position: int
    source: str
    label: str
    suggested: str
    #: the out-of-sample probability of the item's label (low: likely wrong)
    self_confidence: float
    status: str
    decided_label: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        document = dict(self.__dict__)
        document["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return document
