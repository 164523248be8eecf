"""The unit of work: one session scope that commits, rolls back, and maps database errors to
:class:`~loopwise.errors.StorageError`. Repositories hang off it. Inside a background duty's pass
(:func:`loopwise.storage.fencing.fenced`) every commit first checks the duty's lease, in the same
transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from loopwise.errors import LoopwiseError, StorageError
from loopwise.storage.fencing import current_fence
from loopwise.storage.repositories import (
    BanditRepository,
    DatasetRepository,
    EndpointRepository,
    EvaluationRepository,
    FeedbackRepository,
    LabelingRepository,
    LabelsRepository,
    LeaseRepository,
    ModelRepository,
    MonitoringRepository,
    PipelineRepository,
    ReviewRepository,
    RolloutRepository,
    RunRepository,
    ScalingRepository,
    TuningJobRepository,
    WebhookOutboxRepository,
    WorkforceRepository,
)


class UnitOfWork:
    """``with UnitOfWork(factory) as uow: ...`` commits on a clean exit and rolls back on any error.

    Not thread-safe: each thread or request opens its own.
    """

    datasets: DatasetRepository
    runs: RunRepository
    models: ModelRepository
    evaluations: EvaluationRepository
    tuning_jobs: TuningJobRepository
    endpoints: EndpointRepository
    feedback: FeedbackRepository
    rollouts: RolloutRepository
    bandits: BanditRepository
    monitoring: MonitoringRepository
    workforce: WorkforceRepository
    labeling: LabelingRepository
    labels: LabelsRepository
    review: ReviewRepository
    pipelines: PipelineRepository
    webhooks: WebhookOutboxRepository
    leases: LeaseRepository
    scaling: ScalingRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its `with` block")
        return self._session

    def __enter__(self) -> Self:
        self._session = self._factory()
        self.datasets = DatasetRepository(self._session)
        self.runs = RunRepository(self._session)
        self.models = ModelRepository(self._session)
        self.evaluations = EvaluationRepository(self._session)
        self.tuning_jobs = TuningJobRepository(self._session)
        self.endpoints = EndpointRepository(self._session)
        self.feedback = FeedbackRepository(self._session)
        self.rollouts = RolloutRepository(self._session)
        self.bandits = BanditRepository(self._session)
        self.monitoring = MonitoringRepository(self._session)
        self.workforce = WorkforceRepository(self._session)
        self.labeling = LabelingRepository(self._session)
        self.labels = LabelsRepository(self._session)
        self.review = ReviewRepository(self._session)
        self.pipelines = PipelineRepository(self._session)
        self.webhooks = WebhookOutboxRepository(self._session)
        self.leases = LeaseRepository(self._session)
        self.scaling = ScalingRepository(self._session)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session = self.session
        try:
            if exc_type is None:
                self.commit()
            else:
                session.rollback()
                if isinstance(exc, SQLAlchemyError) and not isinstance(exc, LoopwiseError):
                    raise StorageError(f"database error: {_short(exc)}") from exc
        finally:
            session.close()
            self._session = None

    def commit(self) -> None:
        """Commit what was done so far; the unit of work stays open. Inside a duty's pass the duty's
        lease is checked first: :class:`~loopwise.errors.LeaseLostError` (and nothing committed) when
        another server holds it now."""
        fence = current_fence()
        try:
            if fence is not None:
                self.leases.check(fence.duty, fence.token)
            self.session.commit()
        except SQLAlchemyError as error:
            self.session.rollback()
            raise StorageError(f"the database refused the change: {_short(error)}") from error
        except LoopwiseError:
            self.session.rollback()
            raise


def _short(error: SQLAlchemyError) -> str:
    return str(getattr(error, "orig", None) or error).splitlines()[0]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
