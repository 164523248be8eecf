"""Finding a labeling job, and who may see it: the piece that labeling's service and the modules it
calls (output, automated labeling, label errors) share. It calls nothing of theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise.errors import NotFoundError

if TYPE_CHECKING:
    from loopwise.labeling.records import LabelingJob
    from loopwise.storage import Store
    from loopwise.storage.session import UnitOfWork
    from loopwise.workforce.records import Worker


def visible_jobs(store: Store, worker: Worker) -> list[LabelingJob]:
    """The jobs ``worker`` may see: all for an admin, their teams' for everyone else."""
    with store.uow() as uow:
        return uow.labeling.jobs(None if worker.role == "admin" else set(worker.teams))


def job_for(store: Store, worker: Worker, job_id: int) -> LabelingJob:
    """The job, when ``worker`` may see it (the same 'not found' otherwise: nothing leaks)."""
    with store.uow() as uow:
        return visible(uow, worker, job_id)


def visible(uow: UnitOfWork, worker: Worker, job_id: int) -> LabelingJob:
    """:func:`job_for` in an open unit of work."""
    try:
        job = uow.labeling.job(job_id)
    except NotFoundError:
        job = None
    if job is None or (worker.role != "admin" and job.team not in worker.teams):
        raise NotFoundError(f"no labeling job {job_id} among yours")
    return job


def find_job(store: Store, name: str) -> LabelingJob:
    """The job named ``name`` (for the operator: no visibility check); :class:`NotFoundError` if none."""
    with store.uow() as uow:
        job = uow.labeling.find_job(name)
    if job is None:
        raise NotFoundError(f"no labeling job {name!r}; see `loopwise label job list`")
    return job
