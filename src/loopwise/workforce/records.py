"""The private workforce's people, teams and tokens, as the rest of loopwise sees them (not rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["admin", "reviewer", "worker", "service"]


#: admin: everything; reviewer: labels and reviews, sees the work of the teams they belong to; worker:
#: labels the items of their teams' jobs, sees only their own answers; service: a program's account,
#: invokes endpoints, sends feedback and reads their figures (no labeling, no management)
ROLES: tuple[Role, ...] = ("admin", "reviewer", "worker", "service")


Permission = Literal["account", "invoke", "observe", "label", "review", "manage"]


#: what each role may do; every route of the server names the one permission it needs
#: (``loopwise.api.auth.POLICY``): account = one's own password, sign-out and profile; invoke = endpoint
#: invocations and feedback; observe = endpoints, metrics, alerts; label = the labeling queue of one's
#: teams; review = the answers and review queues of one's teams; manage = everything an admin does
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "admin": frozenset({"account", "invoke", "observe", "label", "review", "manage"}),
    "reviewer": frozenset({"account", "observe", "label", "review"}),
    "worker": frozenset({"account", "label"}),
    "service": frozenset({"account", "invoke", "observe"}),
}


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

    def can(self, permission: Permission) -> bool:
        return not self.disabled and permission in ROLE_PERMISSIONS[self.role]


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class ApiToken:
    """An API token as an admin sees it: never its secret (only its sha256 is stored, ``digest``, which
    the server's credentials cache is keyed by)."""

    id: int
    email: str
    name: str
    created_at: datetime
    #: to the minute at best (``storage.repositories.workforce.TOKEN_USE_RESOLUTION``); None: never used
    last_used_at: datetime | None
    revoked_at: datetime | None
    digest: str

    def to_dict(self) -> dict[str, object]:
        """What the API and the CLI show: everything but the digest."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
