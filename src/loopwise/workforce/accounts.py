"""The private workforce's people and teams, as the rest of loopwise sees them (never database rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["admin", "reviewer", "worker"]
#: admin: everything; reviewer: labels and reviews, sees the work of the teams they belong to; worker:
#: labels the items of their teams' jobs, sees only their own answers
ROLES: tuple[Role, ...] = ("admin", "reviewer", "worker")


@dataclass(frozen=True)
class Worker:
    id: int
    email: str
    name: str
    role: Role
    #: a temporary password was set (by an admin): it must be changed before any work
    must_change_password: bool
    disabled: bool
    teams: tuple[str, ...]
    created_at: datetime
    #: sign-ins are refused until then after repeated failures
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    members: tuple[str, ...]
