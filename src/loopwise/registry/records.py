"""Model versions and references as storage returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwise.errors import NotFoundError


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    version: int
    backend: str
    uri: str
    labels: list[str]
    code_version: str
    created_at: datetime
    run_id: str | None = None
    dataset_version_id: int | None = None
    parent_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    #: when a tuning job removed the checkpoint (it keeps only its best ones); None: the files are there
    checkpoint_removed_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def require_checkpoint(self) -> None:
        """Raise :class:`NotFoundError` when the checkpoint was removed."""
        if self.checkpoint_removed_at is not None:
            job = self.params.get("tuning_job")
            by = f"tuning job {job!r}" if job else "its tuning job"
            raise NotFoundError(
                f"the checkpoint of model {self.ref} was removed by {by} on "
                f"{self.checkpoint_removed_at:%Y-%m-%d %H:%M}, which keeps only its best checkpoints; "
                f"retrain it with its recorded params (`loopwise models show {self.ref}`)"
            )


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set, or neither for the latest."""

    name: str
    version: int | None = None
    alias: str | None = None
