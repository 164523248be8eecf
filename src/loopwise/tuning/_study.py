"""The Optuna side of a tuning job: its storage in loopwise's database, and its study.

Optuna keeps its tables (``studies``, ``trials``...) and its own ``alembic_version`` in the same database
as loopwise's; loopwise's schema revision lives in ``loopwise_alembic_version``, so the two never clash.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage

from loopwise.tuning.strategies import make_pruner, make_sampler

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.records import TuningJob
    from loopwise.tuning.spec import TuningSpec


def optuna_storage(
    store: Store,
    *,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
) -> RDBStorage:
    """Optuna's storage over the store's database (a new engine; dispose it with ``engine.dispose()``).

    ``heartbeat_s``: the heartbeat interval of running trials, with ``grace_s`` the silence after which
    a trial counts as stale."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if heartbeat_s is None:
        return RDBStorage(store.settings.resolved_database_url)
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(
            store.settings.resolved_database_url,
            heartbeat_interval=heartbeat_s,
            grace_period=grace_s,
        )


def create_study(storage: RDBStorage, spec: TuningSpec) -> optuna.Study:
    """A new study named after the job; raises ``optuna.exceptions.DuplicatedStudyError`` if it exists."""
    return optuna.create_study(
        storage=storage,
        study_name=spec.name,
        direction=spec.objective.direction,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
    )


def load_study(
    storage: RDBStorage,
    job: TuningJob,
    spec: TuningSpec,
    *,
    sampler: bool = True,
    train_size: int | None = None,
) -> optuna.Study:
    """The job's study with the spec's sampler (a plain random one when ``sampler`` is False: a trial
    process only reports, it samples nothing) and pruner (``train_size``: the training split's rows)."""
    return optuna.load_study(
        study_name=job.study_name,
        storage=storage,
        sampler=make_sampler(spec) if sampler else optuna.samplers.RandomSampler(),
        pruner=make_pruner(spec, train_size),
    )
