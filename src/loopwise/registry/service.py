"""Registering model versions, resolving references and managing aliases."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loopwise
from loopwise.registry.records import ModelVersion
from loopwise.registry.versions import check_name, parse_model_ref

if TYPE_CHECKING:
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
