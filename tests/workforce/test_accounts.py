"""The workforce's accounts on SQLite and PostgreSQL: the first admin (exactly one, even when raced),
workers with temporary passwords that must be changed, teams, sign-in with lock-out, disabling,
sessions and API tokens kept as hashes only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from loopwise.errors import AccountError, AuthError, NotFoundError
from loopwise.storage import Store
from loopwise.storage.tables import ApiTokenRow, WebSessionRow, WorkerRow
from loopwise.workforce import service
from loopwise.workforce.passwords import check_policy, hash_password, verify_password

PASSWORD = "correct horse battery"


def test_passwords_are_argon2id_and_checked_against_a_policy() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD) and not verify_password(hashed, PASSWORD + "!")
    assert not verify_password("not a hash", PASSWORD)
    assert hash_password(PASSWORD) != hashed  # salted
    for weak, reason in (
        ("short", "at least 10"),
        ("aaaaaaaaaaaa", "repeated"),
        ("me@shop.example", "email"),
    ):
        with pytest.raises(AccountError, match=reason):
            check_policy(weak, "me@shop.example")


def test_the_first_admin_is_made_once_even_when_raced(store: Store) -> None:
    made: list[str] = []
    refused: list[str] = []

    def attempt(i: int) -> None:
        try:
            made.append(service.create_admin(store, f"Admin{i}@Shop.example", PASSWORD).email)
        except AccountError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len(refused) == 3 and "an admin exists already" in refused[0]
    admin = service.sign_in(store, made[0].upper(), PASSWORD)  # emails compare lower-case
    assert admin.role == "admin" and not admin.must_change_password and admin.email == made[0].lower()
    with store.uow() as uow:
        stored = uow.session.scalars(select(WorkerRow.password_hash)).all()
    assert len(stored) == 1 and stored[0].startswith("$argon2id$")


def test_a_worker_signs_in_with_a_temporary_password_then_must_change_it(store: Store) -> None:
    service.create_team(store, "reviews-team")
    worker, temporary = service.create_worker(store, "ann@shop.example", teams=("reviews-team",))
    assert worker.role == "worker" and worker.must_change_password and worker.teams == ("reviews-team",)
    assert len(temporary) >= 16
    signed = service.sign_in(store, "ann@shop.example", temporary)
    assert signed.must_change_password
    with pytest.raises(AccountError, match="at least 10"):
        service.change_password(store, "ann@shop.example", temporary, "short")
    with pytest.raises(AccountError, match="differ"):
        service.change_password(store, "ann@shop.example", temporary, temporary)
    changed = service.change_password(store, "ann@shop.example", temporary, PASSWORD)
    assert not changed.must_change_password
    with pytest.raises(AuthError, match="wrong email or password"):
        service.sign_in(store, "ann@shop.example", temporary)
    assert service.sign_in(store, "ann@shop.example", PASSWORD).email == "ann@shop.example"
    with store.uow() as uow:
        assert uow.workforce.find_team("reviews-team").members == ("ann@shop.example",)  # type: ignore[union-attr]


def test_bad_requests_are_refused_with_what_was_wrong(store: Store) -> None:
    service.create_worker(store, "bob@shop.example")
    with pytest.raises(AccountError, match="has an account already"):
        service.create_worker(store, "BOB@shop.example")
    with pytest.raises(AccountError, match="unknown role"):
        service.create_worker(store, "carl@shop.example", role="owner")
    with pytest.raises(AccountError, match="not an email"):
        service.create_worker(store, "carl")
    with pytest.raises(NotFoundError, match="no team 'ghosts'"):
        service.create_worker(store, "dora@shop.example", teams=("ghosts",))
    with store.uow() as uow:  # nothing of the refused account was kept
        assert uow.workforce.find("dora@shop.example") is None
    service.create_team(store, "night-shift")
    with pytest.raises(AccountError, match="exists already"):
        service.create_team(store, "night-shift")
    with pytest.raises(AccountError, match="team name"):
        service.create_team(store, "no spaces please")


def test_failures_lock_an_email_from_one_address_and_unknown_emails_look_the_same(store: Store) -> None:
    service.create_admin(store, "root@shop.example", PASSWORD)
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def refusals(email: str, password: str, address: str, at: datetime, times: int = 1) -> set[str]:
        said = set()
        for _ in range(times):
            with pytest.raises(AuthError) as refused:
                service.sign_in(store, email, password, address=address, now=at)
            said.add(str(refused.value))
        return said

    known = refusals("root@shop.example", "wrong password!", "203.0.113.9", now, service.LOCK_AFTER)
    unknown = refusals("nobody@shop.example", "wrong password!", "203.0.113.9", now, service.LOCK_AFTER)
    assert known == unknown == {"sign-in refused: wrong email or password"}
    # locked, for that address: even the right password; an unknown email says exactly the same
    later = now + timedelta(minutes=1)
    locked = refusals("root@shop.example", PASSWORD, "203.0.113.9", later)
    assert locked == refusals("nobody@shop.example", "anything at all", "203.0.113.9", later)
    assert "failed attempts in a row from this address" in locked.pop()
    # never the account alone: its owner signs in from another address meanwhile
    signed = service.sign_in(store, "root@shop.example", PASSWORD, address="198.51.100.7", now=later)
    assert signed.email == "root@shop.example"
    after = now + service.LOCK_FOR + timedelta(seconds=1)
    assert service.sign_in(store, "root@shop.example", PASSWORD, address="203.0.113.9", now=after)
    # a success clears the count: four failures more do not lock it again
    refusals("root@shop.example", "wrong password!", "203.0.113.9", after, service.LOCK_AFTER - 1)
    assert service.sign_in(store, "root@shop.example", PASSWORD, address="203.0.113.9", now=after)


def test_an_unknown_email_takes_as_long_as_a_wrong_password(store: Store) -> None:
    service.create_admin(store, "root@shop.example", PASSWORD)

    def seconds(email: str) -> float:
        import time

        started = time.perf_counter()
        for i in range(3):
            with pytest.raises(AuthError):
                service.sign_in(store, email, "wrong password!", address=f"192.0.2.{i}")
        return time.perf_counter() - started

    seconds("root@shop.example")  # warm: the dummy hash is made at the first unknown email
    seconds("nobody@shop.example")
    known, unknown = seconds("root@shop.example"), seconds("nobody@shop.example")
    assert 0.5 < unknown / known < 2, (known, unknown)  # argon2id's work either way


def test_sessions_and_tokens_are_kept_as_hashes_and_end_with_the_account(store: Store) -> None:
    worker, temporary = service.create_worker(store, "eve@shop.example", role="reviewer")
    now = datetime.now(UTC)
    signed = service.start_session(store, worker, now=now)
    assert service.session_worker(store, signed.token)[0].email == "eve@shop.example"
    assert service.session_worker(store, signed.token)[1] == signed.csrf_token
    with pytest.raises(AuthError, match="sign in again"):
        service.session_worker(store, signed.token, now=now + service.SESSION_LIFETIME)
    token = service.create_token(store, "eve@shop.example", "labeling-bot")
    assert token.startswith("lw_") and service.token_worker(store, token).role == "reviewer"
    with pytest.raises(AccountError, match="already"):
        service.create_token(store, "eve@shop.example", "labeling-bot")
    with store.uow() as uow:
        stored = [
            *uow.session.scalars(select(WebSessionRow.token_hash)),
            *uow.session.scalars(select(ApiTokenRow.token_hash)),
        ]
    assert signed.token not in stored and token not in stored and all(len(h) == 64 for h in stored)

    # disabling ends every session and revokes every token; signing in is refused
    service.set_disabled(store, "eve@shop.example")
    with pytest.raises(AuthError):
        service.session_worker(store, signed.token)
    with pytest.raises(AuthError, match="revoked"):
        service.token_worker(store, token)
    with pytest.raises(AuthError, match="disabled"):
        service.sign_in(store, "eve@shop.example", temporary)
    with pytest.raises(AuthError, match="lw_"):
        service.token_worker(store, "not-a-token")
    # enabled again: old credentials stay dead, new ones work
    service.set_disabled(store, "eve@shop.example", False)
    with pytest.raises(AuthError):
        service.token_worker(store, token)
    second = service.start_session(store, service.sign_in(store, "eve@shop.example", temporary))
    assert service.end_session(store, second.token) and not service.end_session(store, second.token)
    with pytest.raises(AuthError):
        service.session_worker(store, second.token)


def test_accounts_and_teams_are_found_and_listed(store: Store) -> None:
    assert not service.has_admin(store)
    assert service.find_worker(store, "ana@example.com") is None
    assert service.find_team(store, "raters") is None
    service.create_team(store, "raters")
    service.create_worker(store, "ana@example.com", teams=("raters",))
    service.create_admin(store, "boss@example.com", PASSWORD)
    assert service.has_admin(store)
    found = service.find_worker(store, "  Ana@Example.COM ")  # emails compare lower-case
    assert found is not None and found.email == "ana@example.com" and found.teams == ("raters",)
    team = service.find_team(store, "raters")
    assert team is not None and team.members == ("ana@example.com",)
    assert {w.email for w in service.list_workers(store)} == {"ana@example.com", "boss@example.com"}
    assert [t.name for t in service.list_teams(store)] == ["raters"]
    with pytest.raises(AccountError, match="not an email"):
        service.find_worker(store, "nobody")
