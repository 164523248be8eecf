"""The workforce: workers, teams, browser sessions and API tokens (tokens are kept as sha256 only)."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.storage.tables import ApiTokenRow, TeamMemberRow, TeamRow, WebSessionRow, WorkerRow, utcnow
from loopwise.workforce.accounts import Team, Worker

#: how precisely a token's last use is kept
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


class WorkforceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- workers ---------------------------------------------------------------------------------

    def add_worker(
        self, email: str, name: str, role: str, password_hash: str, *, must_change: bool
    ) -> Worker:
        row = WorkerRow(
            email=email,
            name=name,
            role=role,
            password_hash=password_hash,
            must_change_password=must_change,
            failed_sign_ins=0,
        )
        self.session.add(row)
        self.session.flush()
        return self._worker(row)

    def find(self, email: str) -> Worker | None:
        row = self._row_by_email(email)
        return None if row is None else self._worker(row)

    def get(self, email: str) -> Worker:
        return self._worker(self._require(email))

    def get_by_id(self, worker_id: int) -> Worker:
        row = self.session.get(WorkerRow, worker_id)
        if row is None:
            raise NotFoundError(f"no worker with id {worker_id}")
        return self._worker(row)

    def list(self) -> builtins.list[Worker]:
        return [self._worker(row) for row in self.session.scalars(select(WorkerRow).order_by(WorkerRow.id))]

    def count_admins(self) -> int:
        query = select(func.count()).select_from(WorkerRow).where(WorkerRow.role == "admin")
        return int(self.session.scalar(query) or 0)

    def password_hash(self, email: str) -> str:
        return self._require(email).password_hash

    def set_password(self, email: str, password_hash: str, *, must_change: bool) -> Worker:
        row = self._require(email, lock=True)
        row.password_hash = password_hash
        row.must_change_password = must_change
        row.password_changed_at = utcnow()
        self.session.flush()
        return self._worker(row)

    def record_sign_in(self, email: str, *, success: bool, lock_after: int, lock_until: datetime) -> Worker:
        """Count a failed sign-in (locking the account at ``lock_after`` failures in a row) or clear the
        count after a successful one. The row is locked while it changes."""
        row = self._require(email, lock=True)
        if success:
            row.failed_sign_ins = 0
            row.locked_until = None
        else:
            row.failed_sign_ins += 1
            if row.failed_sign_ins >= lock_after:
                row.locked_until = lock_until
                row.failed_sign_ins = 0
        self.session.flush()
        return self._worker(row)

    def set_disabled(self, email: str, disabled: bool) -> Worker:
        row = self._require(email, lock=True)
        row.disabled_at = utcnow() if disabled else None
        if disabled:  # signed out everywhere, every token revoked
            now = utcnow()
            for session in self.session.scalars(
                select(WebSessionRow).where(
                    WebSessionRow.worker_id == row.id, WebSessionRow.ended_at.is_(None)
                )
            ):
                session.ended_at = now
            for token in self.session.scalars(
                select(ApiTokenRow).where(ApiTokenRow.worker_id == row.id, ApiTokenRow.revoked_at.is_(None))
            ):
                token.revoked_at = now
        self.session.flush()
        return self._worker(row)

    # --- teams -----------------------------------------------------------------------------------

    def add_team(self, name: str) -> Team:
        row = TeamRow(name=name)
        self.session.add(row)
        self.session.flush()
        return Team(row.id, row.name, ())

    def find_team(self, name: str) -> Team | None:
        row = self.session.scalar(select(TeamRow).where(TeamRow.name == name))
        return None if row is None else self._team(row)

    def teams(self) -> builtins.list[Team]:
        return [self._team(row) for row in self.session.scalars(select(TeamRow).order_by(TeamRow.name))]

    def add_member(self, team: str, email: str) -> Team:
        row = self.session.scalar(select(TeamRow).where(TeamRow.name == team))
        if row is None:
            raise NotFoundError(f"no team {team!r}; make it with `loopwise workforce team create {team}`")
        worker = self._require(email)
        exists = self.session.get(TeamMemberRow, (row.id, worker.id))
        if exists is None:
            self.session.add(TeamMemberRow(team_id=row.id, worker_id=worker.id))
            self.session.flush()
        return self._team(row)

    # --- sessions and tokens ---------------------------------------------------------------------

    def add_session(self, worker_id: int, token_hash: str, csrf_token: str, expires_at: datetime) -> None:
        self.session.add(
            WebSessionRow(
                worker_id=worker_id, token_hash=token_hash, csrf_token=csrf_token, expires_at=expires_at
            )
        )
        self.session.flush()

    def session_of(self, token_hash: str, now: datetime) -> tuple[Worker, str] | None:
        """The worker and CSRF token of a live session (not ended, not expired, its worker enabled)."""
        row = self.session.scalar(select(WebSessionRow).where(WebSessionRow.token_hash == token_hash))
        if row is None or row.ended_at is not None or row.expires_at <= now:
            return None
        worker = self.session.get(WorkerRow, row.worker_id)
        if worker is None or worker.disabled_at is not None:
            return None
        return self._worker(worker), row.csrf_token

    def end_session(self, token_hash: str) -> bool:
        row = self.session.scalar(select(WebSessionRow).where(WebSessionRow.token_hash == token_hash))
        if row is None or row.ended_at is not None:
            return False
        row.ended_at = utcnow()
        self.session.flush()
        return True

    def add_token(self, worker_id: int, name: str, token_hash: str) -> None:
        self.session.add(ApiTokenRow(worker_id=worker_id, name=name, token_hash=token_hash))
        self.session.flush()

    def token_names(self, worker_id: int) -> set[str]:
        """The names of the worker's tokens, revoked ones included (a name is used once)."""
        return set(self.session.scalars(select(ApiTokenRow.name).where(ApiTokenRow.worker_id == worker_id)))

    def token_of(self, token_hash: str) -> Worker | None:
        """The worker of a live API token (not revoked, its worker enabled); marks it used."""
        row = self.session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))
        if row is None or row.revoked_at is not None:
            return None
        worker = self.session.get(WorkerRow, row.worker_id)
        if worker is None or worker.disabled_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_RESOLUTION:
            row.last_used_at = now  # not on every request: a write each time serialised them
            self.session.flush()
        return self._worker(worker)

    def revoke_token(self, email: str, name: str) -> bool:
        worker = self._require(email)
        row = self.session.scalar(
            select(ApiTokenRow).where(ApiTokenRow.worker_id == worker.id, ApiTokenRow.name == name)
        )
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        self.session.flush()
        return True

    # --- mapping ---------------------------------------------------------------------------------

    def _row_by_email(self, email: str, lock: bool = False) -> WorkerRow | None:
        query = select(WorkerRow).where(WorkerRow.email == email)
        return self.session.scalar(query.with_for_update() if lock else query)

    def _require(self, email: str, lock: bool = False) -> WorkerRow:
        row = self._row_by_email(email, lock)
        if row is None:
            raise NotFoundError(f"no worker {email!r}; see `loopwise workforce worker list`")
        return row

    def _worker(self, row: WorkerRow) -> Worker:
        teams = self.session.scalars(
            select(TeamRow.name)
            .join(TeamMemberRow, TeamMemberRow.team_id == TeamRow.id)
            .where(TeamMemberRow.worker_id == row.id)
            .order_by(TeamRow.name)
        )
        return Worker(
            row.id,
            row.email,
            row.name,
            row.role,  # type: ignore[arg-type]
            row.must_change_password,
            row.disabled_at is not None,
            tuple(teams),
            row.created_at,
            row.locked_until,
        )

    def _team(self, row: TeamRow) -> Team:
        members = self.session.scalars(
            select(WorkerRow.email)
            .join(TeamMemberRow, TeamMemberRow.worker_id == WorkerRow.id)
            .where(TeamMemberRow.team_id == row.id)
            .order_by(WorkerRow.email)
        )
        return Team(row.id, row.name, tuple(members))
