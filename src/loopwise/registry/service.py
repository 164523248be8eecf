"""Registering model versions, resolving references and managing aliases."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loopwise
from loopwise.registry.records import ModelVersion
from loopwise.registry.versions import check_name, parse_model_ref

if TYPE_CHECKING:
    from loopwise.data.records import DatasetVersion
    from loopwise.evaluation.records import EvaluationRecord
    from loopwise.storage import Store
    from loopwise.storage.session import UnitOfWork


@cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return loopwise.__version__
    return f"{loopwise.__version__}+g{sha}{'.dirty' if dirty else ''}"


def register(
    uow: UnitOfWork,
    name: str,
    *,
    backend: str,
    uri: str,
    labels: list[str],
    run_id: str | None = None,
    dataset_version_id: int | None = None,
    parent: str | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    description: str = "",
) -> ModelVersion:
    """Add the next version of model ``name``; ``parent`` is a reference to the version it derives from."""
    parent_id = resolve(uow, parent).id if parent else None
    return uow.models.add(
        check_name(name),
        backend=backend,
        uri=uri,
        labels=labels,
        code_version=code_version(),
        run_id=run_id,
        dataset_version_id=dataset_version_id,
        parent_id=parent_id,
        params=params,
        metrics=metrics,
        description=description,
    )


def resolve(uow: UnitOfWork, ref: str) -> ModelVersion:
    return uow.models.resolve(parse_model_ref(ref))


def set_alias(uow: UnitOfWork, ref: str, alias: str) -> ModelVersion:
    """Point ``alias`` (for example ``champion``) of the model at the version ``ref`` names."""
    version = resolve(uow, ref)
    uow.models.set_alias(version, check_name(alias, "alias"))
    return uow.models.get_by_id(version.id)


def lineage(uow: UnitOfWork, ref: str) -> list[ModelVersion]:
    """The version and its ancestors, newest first."""
    chain = [resolve(uow, ref)]
    seen = {chain[0].id}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen:
        parent = uow.models.get_by_id(chain[-1].parent_id)
        seen.add(parent.id)
        chain.append(parent)
    return chain


@dataclass(frozen=True)
class VersionDetails:
    """A model version with its lineage: the data set it learned from, its ancestors (parent first) and
    its evaluations."""

    version: ModelVersion
    dataset: DatasetVersion | None
    ancestors: list[ModelVersion]
    evaluations: list[EvaluationRecord]


def list_versions(store: Store, name: str | None = None) -> list[ModelVersion]:
    """Every version (of model ``name`` when given), as the repository orders them."""
    with store.uow() as uow:
        return uow.models.list(name)


def get_version(store: Store, model_version_id: int) -> ModelVersion:
    with store.uow() as uow:
        return uow.models.get_by_id(model_version_id)


def describe_version(store: Store, ref: str) -> VersionDetails:
    """The version ``ref`` names, with its data set, ancestors and evaluations (read in one unit of work)."""
    with store.uow() as uow:
        version = resolve(uow, ref)
        dataset = uow.datasets.get_by_id(version.dataset_version_id) if version.dataset_version_id else None
        ancestors = lineage(uow, ref)[1:]
        evaluations = uow.evaluations.for_model(version.id)
    return VersionDetails(version, dataset, ancestors, evaluations)


def point_alias(store: Store, ref: str, alias: str) -> ModelVersion:
    """:func:`set_alias` in a unit of work of its own: the version the alias now points at."""
    with store.uow() as uow:
        return set_alias(uow, ref, alias)


def remove_alias(store: Store, ref: str, alias: str) -> None:
    """Remove ``alias`` of the model ``ref`` names (its version part, if any, is ignored)."""
    with store.uow() as uow:
        uow.models.remove_alias(parse_model_ref(ref).name, alias)
