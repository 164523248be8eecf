"""The workforce: workers, teams, browser sessions and API tokens (tokens are kept as sha256 only)."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.storage.tables import (
    ApiTokenRow,
    SignInAddressFailureRow,
    SignInFailureRow,
    TeamMemberRow,
    TeamRow,
    WebSessionRow,
    WorkerRow,
    utcnow,
)
from loopwise.workforce.records import ApiToken, Team, Worker

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

    # --- sign-in failures, per (email, client address) -------------------------------------------

    def sign_in_locked_until(self, email: str, address: str) -> datetime | None:
        """Until when sign-ins for ``email`` from ``address`` are refused (None: they are not)."""
        return self.session.scalar(
            select(SignInFailureRow.locked_until).where(
                SignInFailureRow.email == email, SignInFailureRow.address == address
            )
        )

    def sign_in_failed(
        self, email: str, address: str, now: datetime, *, lock_after: int, lock_until: datetime
    ) -> None:
        """Count a failed sign-in of the pair; at ``lock_after`` failures in a row the pair is locked
        until ``lock_until`` and its count starts again. Pairs untouched for a day are forgotten."""
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        self.session.execute(  # the pair's first failure, made by one of two requests racing for it
            dialect.insert(SignInFailureRow)
            .values(email=email, address=address, failures=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["email", "address"])
        )
        row = self.session.get(
            SignInFailureRow, (email, address), with_for_update=True, populate_existing=True
        )
        assert row is not None
        row.failures += 1
        row.updated_at = now
        if row.failures >= lock_after:
            row.locked_until, row.failures = lock_until, 0
        self.session.flush()
        self.session.execute(
            delete(SignInFailureRow).where(SignInFailureRow.updated_at < now - timedelta(days=1))
        )

    def sign_in_succeeded(self, email: str, address: str) -> None:
        self.session.execute(
            delete(SignInFailureRow).where(
                SignInFailureRow.email == email, SignInFailureRow.address == address
            )
        )

    def address_failures(self, address: str, since: datetime) -> builtins.list[datetime]:
        """When ``address``'s failed sign-ins since ``since`` happened (any email), oldest first."""
        return list(
            self.session.scalars(
                select(SignInAddressFailureRow.failed_at)
                .where(SignInAddressFailureRow.address == address, SignInAddressFailureRow.failed_at >= since)
                .order_by(SignInAddressFailureRow.failed_at)
            )
        )

    def address_failed(self, address: str, now: datetime, *, forget_before: datetime) -> None:
        """Count a failed sign-in from ``address``; every address's failures before ``forget_before``
        are forgotten (the table holds one window of failures)."""
        self.session.add(SignInAddressFailureRow(address=address, failed_at=now))
        self.session.execute(
            delete(SignInAddressFailureRow).where(SignInAddressFailureRow.failed_at < forget_before)
        )
        self.session.flush()

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

    def end_sessions(self, worker_id: int, *, keep: str | None = None) -> builtins.list[str]:
        """End every live session of the worker but the one whose digest is ``keep``; returns the
        digests of those it ended (for the credentials cache to forget)."""
        query = select(WebSessionRow).where(
            WebSessionRow.worker_id == worker_id, WebSessionRow.ended_at.is_(None)
        )
        ended, now = [], utcnow()
        for row in self.session.scalars(query.with_for_update()):
            if row.token_hash != keep:
                row.ended_at = now
                ended.append(row.token_hash)
        self.session.flush()
        return ended

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

    def tokens(self, email: str | None = None) -> builtins.list[ApiToken]:
        """The API tokens of one worker (or of all), oldest first, revoked ones included."""
        query = (
            select(ApiTokenRow, WorkerRow.email)
            .join(WorkerRow, WorkerRow.id == ApiTokenRow.worker_id)
            .order_by(ApiTokenRow.id)
        )
        if email is not None:
            query = query.where(WorkerRow.id == self._require(email).id)
        return [_token(row, owner) for row, owner in self.session.execute(query).tuples()]

    def revoke_token(
        self, *, token_id: int | None = None, email: str | None = None, name: str | None = None
    ) -> ApiToken | None:
        """Revoke a live token, named by its id or by its worker's email and its name; returns it, or
        None when it is revoked already. :class:`NotFoundError` when there is no such token."""
        query = select(ApiTokenRow)
        if token_id is not None:
            query = query.where(ApiTokenRow.id == token_id)
        else:
            assert email is not None and name is not None
            query = query.where(ApiTokenRow.worker_id == self._require(email).id, ApiTokenRow.name == name)
        row = self.session.scalar(query.with_for_update())
        if row is None:
            named = f"id {token_id}" if token_id is not None else f"{name!r} of {email}"
            raise NotFoundError(f"no API token {named}; see `loopwise workforce token list`")
        if row.revoked_at is not None:
            return None
        row.revoked_at = utcnow()
        self.session.flush()
        owner = self.session.get(WorkerRow, row.worker_id)
        return _token(row, owner.email if owner is not None else "")

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
        )

    def _team(self, row: TeamRow) -> Team:
        members = self.session.scalars(
            select(WorkerRow.email)
            .join(TeamMemberRow, TeamMemberRow.worker_id == WorkerRow.id)
            .where(TeamMemberRow.team_id == row.id)
            .order_by(WorkerRow.email)
        )
        return Team(row.id, row.name, tuple(members))


def _token(row: ApiTokenRow, email: str) -> ApiToken:
    return ApiToken(row.id, email, row.name, row.created_at, row.last_used_at, row.revoked_at, row.token_hash)
