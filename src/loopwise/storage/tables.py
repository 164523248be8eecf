"""SQLAlchemy tables: the only ORM module. Rows never leave the storage package; repositories map them
to the domain objects of each capability."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
        UniqueConstraint("name", "content_hash", name="uq_dataset_versions_name_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[Any]] = mapped_column(JSON)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetSplitRow(Base):
    __tablename__ = "dataset_splits"

    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(50), primary_key=True)
    uri: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    label_counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    backend: Mapped[str] = mapped_column(String(50))
    base_model: Mapped[str] = mapped_column(Text)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    artifact_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_version: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RunMetricRow(Base):
    __tablename__ = "run_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(50))
    uri: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    code_version: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: set when a tuning job removed this version's checkpoint to keep only its best ones
    checkpoint_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class EvaluationRow(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    model_ref: Mapped[str] = mapped_column(Text)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    split: Mapped[str] = mapped_column(String(50))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TuningJobRow(Base):
    __tablename__ = "tuning_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    study_name: Mapped[str] = mapped_column(String(200))
    best_trial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the best model's one evaluation on the test split
    test_evaluation_id: Mapped[int | None] = mapped_column(ForeignKey("evaluations.id"), nullable=True)


class EndpointRow(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    #: the version of endpoint_configs in force
    config_version: Mapped[int] = mapped_column(Integer)
    #: one more at every change of the endpoint's live state beside its configuration (the autoscaler's
    #: instance counts in ``variant_scales``, a bandit's evidence in ``bandit_arms``), so that the
    #: servers see such a change by reading this row alone
    state_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EndpointConfigRow(Base):
    """Every configuration an endpoint had, numbered from 1; never changed once written."""

    __tablename__ = "endpoint_configs"
    __table_args__ = (UniqueConstraint("endpoint_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: why this version was made (created, weights updated, ...)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FeedbackRow(Base):
    """Ground truth or a reward posted for an inference; posting again for the same inference replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("endpoint", "inference_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    inference_id: Mapped[str] = mapped_column(String(64))
    #: the true label of each text of the inference, in order
    labels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RolloutRow(Base):
    """A guarded traffic shift to one variant (canary or linear), advanced by the server's data plane."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    variant: Mapped[str] = mapped_column(String(63))
    #: the plan: shares of traffic for the variant, baking time, alarm thresholds
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the production weights before the rollout (restored by a rollback)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BanditArmRow(Base):
    """A bandit endpoint's evidence for one variant: rewards summed and feedback counted."""

    __tablename__ = "bandit_arms"
    __table_args__ = (UniqueConstraint("endpoint", "variant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    variant: Mapped[str] = mapped_column(String(63))
    #: the sum of rewards in [0, 1] (a correct answer is 1), and how many there were
    rewards: Mapped[float] = mapped_column(Float, default=0.0)
    pulls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MonitoringScheduleRow(Base):
    """A recurring check of an endpoint's captures against a baseline."""

    __tablename__ = "monitoring_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    baseline: Mapped[str] = mapped_column(String(128))
    kinds: Mapped[list[str]] = mapped_column(JSON)
    every_s: Mapped[float] = mapped_column(Float)
    window_s: Mapped[float] = mapped_column(Float)
    action: Mapped[str | None] = mapped_column(String(63), nullable=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertRow(Base):
    """A violation found by a monitoring run."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    variant: Mapped[str | None] = mapped_column(String(63), nullable=True)
    check: Mapped[str] = mapped_column(String(32))
    constraint: Mapped[str] = mapped_column(String(63))
    observed: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitoring_schedules.id", ondelete="SET NULL"), nullable=True
    )
    report: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookRow(Base):
    """A registered receiver of alerts and pipeline run events."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    #: the key its deliveries are signed with (``loopwise.webhooks``); kept so the server can sign
    secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDeliveryRow(Base):
    """The webhook outbox: one event for one URL, until a 2xx answer (at least once). Monitoring alerts,
    human loops' status changes and pipeline runs are all queued here (``loopwise.webhooks``). The body,
    URL and secret are those of when it was queued; rotating a webhook's secret re-signs what waits."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the ``X-Loopwise-Delivery`` value, the same on every retry
    delivery_id: Mapped[str] = mapped_column(String(100), unique=True)
    #: the ``X-Loopwise-Event`` value (``loopwise.alert`` ...)
    event: Mapped[str] = mapped_column(String(63))
    #: what it is about (``alert:7``, ``human-loop:NAME``, ``pipeline-run:3``)
    subject: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    #: the registered webhook it goes to, if any: deleting the webhook drops its deliveries
    webhook_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=True, index=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: extra headers (``X-Loopwise-Alert-Id`` ...)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkerRow(Base):
    """A member of the private workforce: an admin, reviewer or worker who signs in."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    #: argon2id, in the PHC string format (parameters and salt included)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SignInFailureRow(Base):
    """Failed sign-ins in a row for one email from one client address (whether or not the email has an
    account, so a lock says nothing about which emails do); the pair is locked for a while after too
    many. Never per account alone: nobody can lock an account out from every address."""

    __tablename__ = "sign_in_failures"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class SignInAddressFailureRow(Base):
    """A failed sign-in from one client address, whatever the email: the servers count them together
    to slow a guesser spraying many emails (``workforce.service.ADDRESS_LIMIT`` in a window)."""

    __tablename__ = "sign_in_address_failures"
    __table_args__ = (Index("ix_sign_in_address_failures_address_at", "address", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class TeamRow(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TeamMemberRow(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)


class WebSessionRow(Base):
    """A signed-in browser: only the token's sha256 is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiTokenRow(Base):
    """A program's credential for one worker: only the token's sha256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("worker_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LabelingJobRow(Base):
    """A labeling job: items from a manifest, categories with instructions, a team, N workers per item."""

    __tablename__ = "labeling_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    #: [{"label": ..., "description": ...}] in the order of their keyboard shortcuts
    categories: Mapped[list[Any]] = mapped_column(JSON)
    short_instructions: Mapped[str] = mapped_column(Text)
    full_instructions: Mapped[str] = mapped_column(Text)
    workers_per_item: Mapped[int] = mapped_column(Integer)
    task_time_limit_s: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blind: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str] = mapped_column(String(1000))
    items_count: Mapped[int] = mapped_column(Integer)
    #: automated labeling's settings and rounds so far (None: people label everything)
    auto_label: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LabelingItemRow(Base):
    """One text to label. ``answers_count + holds`` never exceeds the job's workers per item: holds are
    taken and answers counted by conditional UPDATEs (``labeling.service``)."""

    __tablename__ = "labeling_items"
    __table_args__ = (
        UniqueConstraint("job_id", "position"),
        Index("ix_labeling_items_queue", "job_id", "status", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("labeling_jobs.id", ondelete="CASCADE"))
    #: the item's line (from 1) in the input manifest
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    #: the manifest line's other fields, kept for the output manifest
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    answers_count: Mapped[int] = mapped_column(Integer, default=0)
    holds: Mapped[int] = mapped_column(Integer, default=0)
    #: open (people answer it), complete (it has its answers, or a machine label), waiting (automated
    #: labeling holds it back until a model labels it or picks it for people)
    status: Mapped[str] = mapped_column(String(20))
    #: the consolidated (or machine) label, its confidence, and who gave it: human or machine
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    labeled_by: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: automated labeling: the item's part (seed, holdout, active: people; None: not sent to people yet)
    pool: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: a value to show preselected (a human loop's model prediction); None for labeling jobs
    initial: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: a machine label's model version and the confidence threshold it passed
    machine_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    machine_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelingAssignmentRow(Base):
    """A worker's hold on an item and, once submitted, their answer: one row per (item, worker)."""

    __tablename__ = "labeling_assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "worker_id"),
        Index("ix_labeling_assignments_state", "job_id", "state", "expires_at"),
        Index("ix_labeling_assignments_worker", "worker_id", "job_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("labeling_jobs.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("labeling_items.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    #: held, submitted, skipped or expired
    state: Mapped[str] = mapped_column(String(20))
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: seconds from the hold to the answer
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class LabelingReviewRow(Base):
    """A likely wrong label (cleanlab's) waiting for a reviewer, and the decision once taken."""

    __tablename__ = "labeling_reviews"
    __table_args__ = (Index("ix_labeling_reviews_queue", "job_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("labeling_jobs.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("labeling_items.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    suggested: Mapped[str] = mapped_column(String(100))
    self_confidence: Mapped[float] = mapped_column(Float)
    #: open, kept (the label stays) or changed (the decided label replaced it)
    status: Mapped[str] = mapped_column(String(16))
    decided_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewFlowRow(Base):
    """A flow definition (Augmented AI's): who reviews (the team of its labeling job), the task template,
    workers per loop, time limits and when predictions go to people. Its loops are items of its job."""

    __tablename__ = "review_flows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("labeling_jobs.id"), unique=True)
    #: the answer's key in output.json (the course: "sentiment")
    answer_key: Mapped[str] = mapped_column(String(63))
    task_count: Mapped[int] = mapped_column(Integer)
    lifetime_s: Mapped[int] = mapped_column(Integer)
    #: the activation condition tree (``review.conditions``); None: every prediction goes to people
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    webhook: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the key the webhook's deliveries are signed with (``loopwise.webhooks``)
    webhook_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: the budget (``review.budget``): at most this many loops open at once (None: no bound) ...
    max_open_loops: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ... and this many started in any rolling hour (None: no bound)
    max_loops_per_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the most loops one invocation of an attached endpoint starts (its most uncertain texts)
    max_loops_per_invocation: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    #: Active, or Deleted (its loops stay readable)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HumanLoopRow(Base):
    """One prediction (or any input) sent to people: its flow, its item in the flow's labeling job, its
    status, and where it came from when an endpoint started it."""

    __tablename__ = "human_loops"
    __table_args__ = (
        Index("ix_human_loops_flow", "flow_id", "id"),
        Index("ix_human_loops_due", "status", "expires_at"),
        Index("ix_human_loops_open", "flow_id", "status", "confidence"),
        Index("ix_human_loops_started", "flow_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("review_flows.id"))
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("labeling_items.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: InProgress, Completed, Failed, Stopping, Stopped
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    inference_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    endpoint: Mapped[str | None] = mapped_column(String(63), nullable=True)
    variant: Mapped[str | None] = mapped_column(String(63), nullable=True)
    #: the activation conditions' results when an endpoint started the loop
    activation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: the prediction's top probability when an endpoint started the loop (lower: more uncertain)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PipelineRow(Base):
    """A pipeline's latest file (checked before it was stored)."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PipelineRunRow(Base):
    """One run of a pipeline: its state, what started it, and why it failed. ``active`` holds the
    pipeline's name while the run is Running (NULL otherwise) and is unique: a pipeline runs once at a
    time, however many triggers fire together."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_pipeline", "pipeline_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    #: the pipeline file as it was when the run started (a later edit changes no run in flight)
    spec: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    active: Mapped[str | None] = mapped_column(String(63), nullable=True, unique=True)
    trigger: Mapped[str] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PipelineStepRow(Base):
    """One step of one run: its state, its outputs once it succeeded, its log and its error."""

    __tablename__ = "pipeline_steps"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    position: Mapped[int] = mapped_column(Integer)
    #: Pending, Running, Succeeded, Failed
    status: Mapped[str] = mapped_column(String(16))
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DutyLeaseRow(Base):
    """Who runs a background duty now (``storage.leases``): one row a duty, taken over when it expires.

    ``expires_at`` is the database's clock plus the lease's time to live, so hosts whose clocks differ
    agree on it; ``token`` grows by one on every change of holder and fences the duty's writes."""

    __tablename__ = "duty_leases"

    duty: Mapped[str] = mapped_column(String(63), primary_key=True)
    #: ``host:pid:uuid`` of the server process that holds it (empty once released)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VariantScaleRow(Base):
    """An autoscaled variant's instance count on every server, as the autoscaler last set it, with the
    times (the database's clock) its cooldowns count from."""

    __tablename__ = "variant_scales"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(63), primary_key=True)
    instances: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scaled_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScalingEventRow(Base):
    """One decision of the autoscaler: a variant's instance count per server, before and after."""

    __tablename__ = "scaling_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    instances_before: Mapped[int] = mapped_column(Integer)
    instances_after: Mapped[int] = mapped_column(Integer)
    #: invocations per instance over the policy's period, across the servers
    metric: Mapped[float] = mapped_column(Float)
    invocations: Mapped[int] = mapped_column(Integer)
    #: the servers whose load was counted
    replicas: Mapped[int] = mapped_column(Integer)


class VariantLoadRow(Base):
    """What one server reported of an autoscaled variant's traffic: its invocations over the policy's
    period and its live instances, at ``reported_at`` (the database's clock). The autoscaler sums the
    fresh reports of every server."""

    __tablename__ = "variant_loads"

    #: the reporting server (``storage.leases.new_holder``)
    replica: Mapped[str] = mapped_column(String(200), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    variant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocations: Mapped[int] = mapped_column(Integer)
    period_s: Mapped[float] = mapped_column(Float)
    instances: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
