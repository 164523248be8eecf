"""The workforce's services: the first admin, workers with temporary passwords, teams, sign-in with
lock-out after repeated failures, browser sessions with a CSRF token, and API tokens for programs.

Emails are compared lower-case. A session or token is a random secret given to the caller once; the
database holds only its sha256, so a copy of the database signs nobody in. A failed sign-in never says
whether the email or the password was wrong, nor whether the email has an account: an unknown email is
checked against a dummy hash (the same time), and failures lock the pair (email, client address) whether
or not the account exists. Never the account alone: the right password from another address still signs
in, so nobody can lock an account (an admin's included) out from everywhere. A password change or reset
ends the account's other sessions.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loopwise.errors import AccountError, AuthError
from loopwise.workforce.passwords import (
    check_policy,
    hash_password,
    needs_rehash,
    temporary_password,
    verify_password,
)
from loopwise.workforce.records import ROLES, ApiToken, Team, Worker

if TYPE_CHECKING:
    from loopwise.storage import Store

#: failed sign-ins in a row that lock an (email, client address) pair, and for how long
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
#: failed sign-ins from one client address (any emails) in a window, past which it must wait
ADDRESS_LIMIT = 20
ADDRESS_WINDOW = timedelta(minutes=5)
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


def sign_in(
    store: Store, email: str, password: str, *, address: str = "local", now: datetime | None = None
) -> Worker:
    """The worker whose email and password these are; :class:`AuthError` otherwise, for a disabled
    account, or while the pair (``email``, ``address``: the client's address) is locked after
    LOCK_AFTER failures in a row. An unknown email takes as long and answers the same as a wrong
    password, and locks the same way."""
    now = now or datetime.now(UTC)
    try:
        email = normal_email(email)
    except AccountError:
        verify_password(_dummy_hash(), password)
        raise AuthError(_REFUSED) from None
    address = address[:64]
    with store.uow() as uow:
        worker = uow.workforce.find(email)
        hashed = uow.workforce.password_hash(email) if worker is not None else _dummy_hash()
        locked_until = uow.workforce.sign_in_locked_until(email, address)
    right = verify_password(hashed, password)  # locked or not, known or not: the same work
    if locked_until is not None and locked_until > now:
        raise AuthError(
            f"sign-in refused: {LOCK_AFTER} failed attempts in a row from this address; try again "
            f"after {locked_until:%H:%M} UTC or ask an admin"
        )
    with store.uow() as uow:
        if worker is None or not right:
            uow.workforce.sign_in_failed(
                email, address, now, lock_after=LOCK_AFTER, lock_until=now + LOCK_FOR
            )
        else:
            uow.workforce.sign_in_succeeded(email, address)
            if needs_rehash(hashed):
                uow.workforce.set_password(
                    email, hash_password(password), must_change=worker.must_change_password
                )
    if worker is None or not right:
        raise AuthError(_REFUSED)
    if worker.disabled:
        raise AuthError("sign-in refused: this account is disabled; ask an admin")
    return worker


def address_wait(
    store: Store,
    address: str,
    *,
    limit: int = ADDRESS_LIMIT,
    window: timedelta = ADDRESS_WINDOW,
    now: datetime | None = None,
) -> int:
    """Seconds until ``address`` may try to sign in again (0: now): it must wait once ``limit`` of its
    sign-ins failed in the last ``window``, whichever emails they named. Counted in the database, so
    every server of one database counts the same failures."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        failures = uow.workforce.address_failures(address[:64], now - window)
    if len(failures) < limit:
        return 0
    # the wait ends when enough of them leave the window that fewer than ``limit`` remain
    frees_at = failures[len(failures) - limit] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))


def address_failed(
    store: Store, address: str, *, window: timedelta = ADDRESS_WINDOW, now: datetime | None = None
) -> None:
    """Count a failed sign-in from ``address`` (see :func:`address_wait`)."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        uow.workforce.address_failed(address[:64], now, forget_before=now - window)


def change_password(
    store: Store, email: str, old: str, new: str, *, address: str = "local", keep_session: str | None = None
) -> Worker:
    """Set a new password after checking the old one (a temporary one included). Every session of the
    account ends but the one whose digest is ``keep_session`` (the browser that changed it); the caller
    also forgets what it keeps of the account's credentials (``Credentials.forget``)."""
    worker = sign_in(store, email, old, address=address)
    if new == old:
        raise AccountError("the new password must differ from the old one")
    check_policy(new, worker.email)
    hashed = hash_password(new)
    with store.uow() as uow:
        changed = uow.workforce.set_password(worker.email, hashed, must_change=False)
        uow.workforce.end_sessions(worker.id, keep=keep_session)
    return changed


def reset_password(store: Store, email: str) -> tuple[Worker, str]:
    """An admin's reset: a new temporary password (returned once, to be changed at the next sign-in);
    every session of the account ends. Its API tokens stay (revoke them one by one)."""
    password = temporary_password()
    hashed = hash_password(password)
    with store.uow() as uow:
        worker = uow.workforce.set_password(normal_email(email), hashed, must_change=True)
        uow.workforce.end_sessions(worker.id)
    return worker, password


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


def list_tokens(store: Store, email: str | None = None) -> list[ApiToken]:
    """The API tokens of ``email``'s account, or of every account: names and dates, never secrets."""
    with store.uow() as uow:
        return uow.workforce.tokens(normal_email(email) if email is not None else None)


def revoke_token(
    store: Store, email: str | None = None, name: str | None = None, *, token_id: int | None = None
) -> ApiToken | None:
    """Revoke the token named ``name`` of ``email``'s account, or the one with ``token_id``; returns it
    (its ``digest`` is what the server's credentials cache forgets), or None when it was revoked
    already. :class:`NotFoundError` when there is no such token."""
    if token_id is None and (email is None or name is None):
        raise AccountError("name the token: its id, or the account's email and the token's name")
    with store.uow() as uow:
        if token_id is not None:
            return uow.workforce.revoke_token(token_id=token_id)
        return uow.workforce.revoke_token(email=normal_email(email or ""), name=name)


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


def list_workers(store: Store) -> list[Worker]:
    """Every account, as the repository orders them."""
    with store.uow() as uow:
        return uow.workforce.list()


def find_worker(store: Store, email: str) -> Worker | None:
    """The account of ``email``, or None when there is none."""
    with store.uow() as uow:
        return uow.workforce.find(normal_email(email))


def list_teams(store: Store) -> list[Team]:
    """Every team with its members."""
    with store.uow() as uow:
        return uow.workforce.teams()


def find_team(store: Store, name: str) -> Team | None:
    """The team ``name``, or None when there is none."""
    with store.uow() as uow:
        return uow.workforce.find_team(name)


def has_admin(store: Store) -> bool:
    """Whether any admin account exists (a new installation has none)."""
    with store.uow() as uow:
        return bool(uow.workforce.count_admins())
