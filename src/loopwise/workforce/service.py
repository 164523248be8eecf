"""The workforce's services: the first admin, workers with temporary passwords, teams, sign-in with
lock-out after repeated failures, browser sessions with a CSRF token, and API tokens for programs.

Emails are compared lower-case. A session or token is a random secret given to the caller once; the
database holds only its sha256, so a copy of the database signs nobody in. A failed sign-in never says
whether the email or the password was wrong.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loopwise.errors import AccountError, AuthError
from loopwise.workforce.accounts import ROLES, Team, Worker
from loopwise.workforce.passwords import (
    check_policy,
    hash_password,
    needs_rehash,
    temporary_password,
    verify_password,
)

if TYPE_CHECKING:
    from loopwise.storage import Store

#: failed sign-ins in a row that lock an account, and for how long
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "lw_"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_REFUSED = "sign-in refused: wrong email or password"


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so that an unknown email takes as long as a wrong
    password (made at the first sign-in, not at import)."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SignedIn:
    """A new browser session: the token for its cookie and the CSRF token for its forms."""

    worker: Worker
    token: str
    csrf_token: str
    expires_at: datetime


def normal_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise AccountError(f"{email!r} is not an email address")
    return cleaned


def create_admin(store: Store, email: str, password: str, *, name: str | None = None) -> Worker:
    """The first admin (the first run of a new installation); refused once an admin exists. Safe to
    call from several processes at once: exactly one creates it."""
    from loopwise.storage.locks import named_lock

    email = normal_email(email)
    check_policy(password, email)
    hashed = hash_password(password)
    with named_lock(store.engine, "workforce-first-admin"), store.uow() as uow:
        if uow.workforce.count_admins():
            raise AccountError(
                "an admin exists already: admins create the others (`loopwise workforce worker create "
                "EMAIL --role admin`)"
            )
        return uow.workforce.add_worker(
            email, name or email.split("@")[0], "admin", hashed, must_change=False
        )


def create_worker(
    store: Store, email: str, *, role: str = "worker", name: str | None = None, teams: tuple[str, ...] = ()
) -> tuple[Worker, str]:
    """A new account with a temporary password (returned once; it must be changed at the first
    sign-in), in ``teams``."""
    email = normal_email(email)
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    password = temporary_password()
    hashed = hash_password(password)
    with store.uow() as uow:
        if uow.workforce.find(email) is not None:
            raise AccountError(f"{email} has an account already")
        uow.workforce.add_worker(email, name or email.split("@")[0], role, hashed, must_change=True)
        for team in teams:
            uow.workforce.add_member(team, email)
        return uow.workforce.get(email), password


def create_team(store: Store, name: str) -> Team:
    if not _NAME.match(name):
        raise AccountError(f"team name {name!r}: letters, digits, '.', '_' and '-', at most 63 characters")
    with store.uow() as uow:
        if uow.workforce.find_team(name) is not None:
            raise AccountError(f"a team {name!r} exists already")
        return uow.workforce.add_team(name)


def add_to_team(store: Store, team: str, email: str) -> Team:
    with store.uow() as uow:
        return uow.workforce.add_member(team, normal_email(email))


def sign_in(store: Store, email: str, password: str, *, now: datetime | None = None) -> Worker:
    """The worker whose email and password these are; :class:`AuthError` otherwise, for a disabled
    account, or while an account is locked after LOCK_AFTER failures in a row."""
    now = now or datetime.now(UTC)
    try:
        email = normal_email(email)
    except AccountError:
        raise AuthError(_REFUSED) from None
    with store.uow() as uow:
        worker = uow.workforce.find(email)
        hashed = uow.workforce.password_hash(email) if worker is not None else _dummy_hash()
    right = verify_password(hashed, password)
    if worker is None:
        raise AuthError(_REFUSED)
    if worker.locked_until is not None and worker.locked_until > now:
        raise AuthError(
            f"sign-in refused: {LOCK_AFTER} failed attempts in a row; try again after "
            f"{worker.locked_until:%H:%M} UTC or ask an admin"
        )
    with store.uow() as uow:
        worker = uow.workforce.record_sign_in(
            email, success=right, lock_after=LOCK_AFTER, lock_until=now + LOCK_FOR
        )
        if right and needs_rehash(hashed):
            uow.workforce.set_password(
                email, hash_password(password), must_change=worker.must_change_password
            )
    if not right:
        raise AuthError(_REFUSED)
    if worker.disabled:
        raise AuthError("sign-in refused: this account is disabled; ask an admin")
    return worker


def change_password(store: Store, email: str, old: str, new: str) -> Worker:
    """Set a new password after checking the old one (a temporary one included)."""
    worker = sign_in(store, email, old)
    if new == old:
        raise AccountError("the new password must differ from the old one")
    check_policy(new, worker.email)
    with store.uow() as uow:
        return uow.workforce.set_password(worker.email, hash_password(new), must_change=False)


def set_disabled(store: Store, email: str, disabled: bool = True) -> Worker:
    """Disable (or enable again) an account; disabling ends its sessions and revokes its tokens."""
    with store.uow() as uow:
        return uow.workforce.set_disabled(normal_email(email), disabled)


def start_session(store: Store, worker: Worker, *, now: datetime | None = None) -> SignedIn:
    now = now or datetime.now(UTC)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + SESSION_LIFETIME
    with store.uow() as uow:
        uow.workforce.add_session(worker.id, _digest(token), csrf, expires_at)
    return SignedIn(worker, token, csrf, expires_at)


def session_worker(store: Store, token: str, *, now: datetime | None = None) -> tuple[Worker, str]:
    """The worker of a live session and its CSRF token; :class:`AuthError` when it is not one."""
    with store.uow() as uow:
        found = uow.workforce.session_of(_digest(token), now or datetime.now(UTC))
    if found is None:
        raise AuthError("not signed in, or the session has ended: sign in again")
    return found


def end_session(store: Store, token: str) -> bool:
    """Sign out: the session ends (False when it was not a live one)."""
    with store.uow() as uow:
        return uow.workforce.end_session(_digest(token))


def create_token(store: Store, email: str, name: str) -> str:
    """A new API token for ``email``'s account, returned once."""
    if not _NAME.match(name):
        raise AccountError(f"token name {name!r}: letters, digits, '.', '_' and '-', at most 63 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.uow() as uow:
        worker = uow.workforce.get(normal_email(email))
        if worker.disabled:
            raise AccountError(f"{worker.email} is disabled: enable it before giving it a token")
        if name in uow.workforce.token_names(worker.id):
            raise AccountError(
                f"{worker.email} has a token named {name!r} already: revoke it or pick another"
            )
        uow.workforce.add_token(worker.id, name, _digest(token))
    return token


def token_worker(store: Store, token: str) -> Worker:
    """The worker of a live API token; :class:`AuthError` when it is not one."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("not an API token of loopwise (they start with lw_)")
    with store.uow() as uow:
        worker = uow.workforce.token_of(_digest(token))
    if worker is None:
        raise AuthError("the API token is not valid or was revoked")
    return worker


def revoke_token(store: Store, email: str, name: str) -> bool:
    with store.uow() as uow:
        return uow.workforce.revoke_token(normal_email(email), name)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def program_token(store: Store, purpose: str, *, email: str = "programs@loopwise.local") -> str:
    """A new API token for one of loopwise's own programs (the main job, a benchmark) on the service
    account ``email``, made when missing with a password nobody is told: it can invoke endpoints and
    read their figures, and cannot sign in to the web UI."""
    email = normal_email(email)
    with store.uow() as uow:
        found = uow.workforce.find(email)
    if found is None:
        hashed = hash_password(secrets.token_urlsafe(32))
        with store.uow() as uow:
            if uow.workforce.find(email) is None:
                uow.workforce.add_worker(email, "programs", "service", hashed, must_change=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return create_token(store, email, f"{purpose}-{stamp}-{secrets.token_hex(3)}")
